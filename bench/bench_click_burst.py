"""What a burst of clicks costs with nothing else running: 20 progress updates at once, in-process, on
a pool of callback threads as the clicks' process runs them, without chatter, the webhook or the
helpers. Separates the clicks' own cost from what the served benchmark (bench_clicks) adds.

    python -m bench.bench_click_burst                                   # SQLite, 4 threads
    python -m bench.bench_click_burst --database-url postgresql://postgres@127.0.0.1:5432/<scratch db>
    python -m bench.bench_click_burst --threads 1 --switch 0.0001,0.001,0.005

The bot's own composition (`bot.app.compose`, as `collab-bot worker` builds it) on a scratch
database with bench_clicks' 20 cases in step 5 (each with its live case card) and bench_fanout's
fake Open API in its own process. Each burst submits the 20 owners' progress updates (each with the
version its form carries) to the threads at once, every one through `db.urgent` like a real click,
and waits for all; bursts alternate between the given interpreter switch intervals, the first round
of each is not counted. Reported per interval: the burst's wall time and the Python CPU a click took
on its thread (medians).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import served as sv  # noqa: E402
from bench.bench_clicks import click_payload  # noqa: E402
from bench.bench_fanout import serve as serve_fake  # noqa: E402


def live_case_cards(url: str, cases: list[dict]) -> None:
    """Record each case's live case card as the outbox does once it has posted one (nothing is
    delivered here): a case in step 5 has one, and a progress update redraws it rather than
    posting a new one."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    from bot import db
    from bot.models import Case, PostedCard

    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as session, session.begin():
            for case in cases:
                message_id = f"om_live_case_{case['case_id']}"
                session.execute(update(Case).where(Case.id == case["case_id"]).values(card_message_id=message_id))
                session.add(PostedCard(tenant_key=sv.TENANT, chat_id=case["chat"], case_id=case["case_id"],
                                       message_id=message_id, view="case", sent_at=datetime.now(timezone.utc)))
    finally:
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--bursts", type=int, default=8, help="bursts per switch interval")
    ap.add_argument("--switch", default="0.0005", help="comma-separated interpreter switch intervals (s)")
    args = ap.parse_args()
    intervals = [float(x) for x in args.switch.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    url = sv.prepare_db(args.database_url, workdir)
    base, fake = serve_fake(200, "oc_bench_")
    cases = sv.seed_cases(url, [f"oc_bench_{i:05d}" for i in range(20)])
    live_case_cards(url, cases)
    os.environ.update(sv.bot_env(url, base))

    from bot import db
    from bot.app import compose, prepare_to_serve
    from bot.envelope import parse_event
    from bot.settings import Settings

    prepare_to_serve()
    state = compose(Settings(_env_file=None), other_processes=True)
    pool = ThreadPoolExecutor(args.threads)
    versions = [0] * len(cases)

    def click(i: int, step: int) -> float:
        payload = click_payload(cases[i], "update_progress", versions[i], 11 + (step * 7) % 88)
        start = time.thread_time()
        answer = db.urgent(state.dispatcher.callback, payload, parse_event(payload))
        assert getattr(answer, "toast_type", "") == "success", answer
        versions[i] += 1
        return time.thread_time() - start

    results: dict[float, list[tuple[float, float]]] = {}
    before = sys.getswitchinterval()
    try:
        for step in range((args.bursts + 1) * len(intervals)):
            interval = intervals[step % len(intervals)]
            sys.setswitchinterval(interval)
            start = time.perf_counter()
            cpu = sum(f.result() for f in [pool.submit(click, i, step) for i in range(len(cases))])
            wall = time.perf_counter() - start
            sys.setswitchinterval(before)
            if step >= len(intervals):
                results.setdefault(interval, []).append((wall * 1000, cpu * 1000 / len(cases)))
            time.sleep(0.3)
    finally:
        pool.shutdown()
        state.engine.dispose()
        fake.terminate()
        fake.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    engine = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"{engine}; 20 progress updates at once on {args.threads} thread(s); {sv.uptime()}")
    for interval, runs in results.items():
        print(f"  switch interval {interval * 1000:g} ms: burst {statistics.median(w for w, _ in runs):.1f} ms, "
              f"CPU a click {statistics.median(c for _, c in runs):.2f} ms (median of {len(runs)} bursts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
