"""P4 — reminder firing lateness = sent_at − due_at, for 200 reminders due within one minute.

The real outbox sender runs its loop (1 s idle tick, kicked early by the planner) on the real
clock against the fake Open API (loopback, limits on, 20–60 ms latency), with the real Pacer.
Each reminder renders a real standup card from the database at delivery time.

    python -m bench.bench_lateness               # 200 reminders over 60 s (takes ~70 s)
    python -m bench.bench_lateness -n 200 --spread 60 --db postgresql://postgres@127.0.0.1:5432/test_f

Pass: p50 ≤ 1.5 s, p99 ≤ 3 s, max ≤ 5 s.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.bench_fanout import APP_ID, APP_SECRET, TENANT, prepare_db, seed_cases, serve
from bot import db
from bot.clock import SystemClock
from bot.feishu import FeishuClient
from bot.models import Case, Outbox
from bot.outbox import OutboxSender
from bot.pacer import Pacer
from bot.reminders import Policy, outbox

KIND = "bench_standup"


def _render(session, row: Outbox, now: datetime, _policy):
    from cards.reminders import standup_card
    from handlers.reminders import standup_view

    case = session.get(Case, row.case_id)
    return [outbox.SendCard(standup_card(standup_view(session, case, now.date(), now, Policy())))]


async def lateness(n: int, spread: float, url: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare_db(url, Path(tmp))
        engine = db.make_engine(url)
        factory = db.make_sessionmaker(engine)
        chats = [f"oc_late_{i:05d}" for i in range(n)]
        base, proc = serve(n, "oc_late_")
        clock = SystemClock()
        seed_cases(factory, chats, clock.now())
        start = clock.now() + timedelta(seconds=5)
        with factory() as s, s.begin():
            for case in s.scalars(select(Case).order_by(Case.id)):
                i = case.id - 1
                outbox.enqueue(s, tenant_key=TENANT, chat_id=case.chat_id, kind=KIND, fire_key=f"r{i}",
                               due_at=start + timedelta(seconds=spread * i / n), case_id=case.id)
        client = FeishuClient(app_id=APP_ID, app_secret=APP_SECRET, base_url=base, pacer=Pacer())
        await client._tenant_token()
        sender = OutboxSender(factory, client, clock, me="bench", renderers={KIND: _render})
        loop = asyncio.create_task(sender.run_forever(idle_seconds=1.0))
        deadline = time.monotonic() + spread + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            with factory() as s:
                left = s.scalar(select(Outbox.id).where(Outbox.kind == KIND, Outbox.status != "sent").limit(1))
            if left is None:
                break
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        with factory() as s:
            done = list(s.execute(select(Outbox.due_at, Outbox.sent_at).where(Outbox.kind == KIND,
                                                                             Outbox.status == "sent")))
        await client.aclose()
        seen = httpx.get(f"{base}/_bench/stats").json()
        proc.terminate()
        proc.wait(10)
        engine.dispose()
    late = sorted((sent - due).total_seconds() for due, sent in done)
    q = statistics.quantiles(late, n=100) if len(late) > 1 else late * 99
    return {"n": n, "sent": len(late), "spread_s": spread, "p50_s": round(statistics.median(late), 3),
            "p99_s": round(q[98], 3), "max_s": round(late[-1], 3), "min_s": round(late[0], 3),
            "throttled_429": seen["throttled_429"], "groups_with_more": seen["groups_with_more"],
            "distinct_uuids": seen["distinct_uuids"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--spread", type=float, default=60.0)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    print(asyncio.run(lateness(args.n, args.spread, args.db)))


if __name__ == "__main__":
    main()
