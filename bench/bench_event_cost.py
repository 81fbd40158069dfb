"""What one command or click costs the bot, in CPU time and statements, measured in-process and one
at a time, so the figures do not depend on how busy the machine is (the served benchmarks' rates do).

    python -m bench.bench_event_cost                 # SQLite (temp file), 200 of each
    python -m bench.bench_event_cost -n 500 --database-url postgresql://postgres@127.0.0.1:5432/<scratch db>

The real app (`create_app`, background work off), the test suite's Feishu world (sealed events, the
stateful fake Open API in the same process) and a case in step 5 with its case card posted. Each
event goes through the dispatcher as the webhook hands it over: `/进度` is stored (group commit's
`store_many`) and then handled (`process`, as after its answer); a click (the 更新我的进度 button, a
progress update form, 进度跟踪表) is stored and handled in one (`callback`). Reported per kind: the
thread's CPU time for storing and handling, the statements run, and the same for delivering what
it sent (the outbox, against the in-process fake), with and without the fake's own work.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = ("/进度", "更新我的进度", "progress update", "进度跟踪表")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="events of each kind")
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()

    from sqlalchemy import event as sa_event

    from bot import db
    from bot.clock import ManualClock
    from bot.envelope import CardAction, parse_event
    from bot.repository import updates_of
    from feishu_fake import events as ev
    from tests.casefactory import make_case_at_step4, make_plan_published
    from tests.driver import APP_ID, CHAT, LEAD, TECH_DEV, TENANT, VERIFICATION_TOKEN, FeishuWorld

    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    if url.startswith("postgres"):
        from bench.bench_fanout import prepare_db
        url = prepare_db(url, tmp)
    db.upgrade(url)
    clock = ManualClock(datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc))
    world = FeishuWorld(url, clock)
    try:
        case_id = make_case_at_step4(world.state.factory, now=clock.now())
        task_id, _ = make_plan_published(world.state.factory, case_id, now=clock.now())
        world.say(LEAD, "/进度")
        card = world.last_card(title_contains="新品推广页面延迟")["message_id"]
        dispatcher = world.state.dispatcher
        # clicks as the webhook hands them over; a checkout without `callback` stores, then handles
        one_transaction = hasattr(dispatcher, "callback")
        statements: list[str] = []
        sa_event.listen(world.state.engine, "before_cursor_execute",
                        lambda _c, _cur, statement, *_a: statements.append(statement))
        common = dict(app_id=APP_ID, tenant_key=TENANT, token=VERIFICATION_TOKEN)
        # the in-process fake's own work, taken out of the delivery figure: "of which the bot's"
        fake_cpu = [0.0]
        fake_process = world.fake._process

        def timed_fake(request):
            start = time.thread_time()
            try:
                return fake_process(request)
            finally:
                fake_cpu[0] += time.thread_time() - start

        world.fake._process = timed_fake

        def payload(kind: str, i: int) -> dict:
            ms = int(clock.now().timestamp() * 1000)
            if kind == "/进度":
                return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text="/进度", create_ms=ms, **common)
            if kind == "progress update":
                with world.state.factory() as s:
                    version = updates_of(s, task_id)
                return ev.card_action_event(chat_id=CHAT, message_id=card, operator_open_id=TECH_DEV,
                                            form_value={f"s{task_id}": "doing", f"p{task_id}": str(10 + i % 80)},
                                            name=f"track.update~{case_id}~{version}~{task_id}", create_ms=ms, **common)
            action = "track.open" if kind == "更新我的进度" else "track.show"
            return ev.card_action_event(chat_id=CHAT, message_id=card, operator_open_id=TECH_DEV,
                                        value={"a": action, "c": case_id}, create_ms=ms, **common)

        print(f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}; {args.n} of each, one at a time; "
              f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        print("| event | CPU to store and handle | statements | CPU to deliver what it sent | of which the bot's "
              "| statements |")
        print("|---|---|---|---|---|---|")
        for kind in KINDS:
            cpu = sent_cpu = fake_cpu[0] = 0.0
            run = sent = 0
            for i in range(args.n):
                clock.advance(timedelta(seconds=2))
                raw = payload(kind, i)
                parsed = parse_event(raw)
                statements.clear()
                start = time.thread_time()
                if isinstance(parsed, CardAction) and one_transaction:
                    answer = dispatcher.callback(raw, parsed)
                else:
                    assert dispatcher.store(raw, parsed)
                    answer = dispatcher.process(parsed.header.event_id, parsed)
                if isinstance(parsed, CardAction):
                    assert answer is not None and getattr(answer, "toast_type", "") in ("success", "info"), answer
                cpu += time.thread_time() - start
                run += len(statements)
                statements.clear()
                start = time.process_time()
                world.drain()
                sent_cpu += time.process_time() - start
                sent += len(statements)
            n = args.n
            print(f"| {kind} | {cpu / n * 1000:.2f} ms | {run / n:.1f} | {sent_cpu / n * 1000:.2f} ms "
                  f"| {(sent_cpu - fake_cpu[0]) / n * 1000:.2f} ms "
                  f"| {sent / n:.1f} |")
    finally:
        world.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
