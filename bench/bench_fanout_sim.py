"""P3 at company scale on a fake clock: the standup fan-out to 10,000 groups of one tenant.

    python -m bench.bench_fanout_sim                 # N = 10,000 (about 1–3 minutes of real time)
    python -m bench.bench_fanout_sim -n 1000

The real outbox (planner rows from `reconcile_all`, `OutboxSender.run_once`, the reminder
renderers reading the database), the real `FeishuClient` and `Pacer`, and the stateful fake Open
API with Feishu's limits on (50/s and 1,000/min per app, 5/s per chat) answering after 20–60 ms —
all in one event loop whose clock skips idle waits: time moves at the real rate while anything
runs (Python code, database work in threads) and jumps ahead when every task is only waiting
for a timer. So the figure includes the bot's real work and none of the waiting.

Minimum: Feishu allows 50 messages a second and 1,000 a minute per app: N/50 s up to 1,000 groups,
else N/1000 minutes (600 s for 10,000), the figure the issue compares against; because the
minute window slides, the pacer puts the first 1,000 of each minute into its first ~21 s, so the
last send can come before that.
Reported: wall time from the first claim to the last message on the fake clock, its ratio to
N/1000 min, the fake's rate-limit answers (429/99991400 and 230020), distinct uuids and groups
that got exactly one card, the busiest 1 s and 60 s at the fake, and the real time taken.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import selectors
import subprocess
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx

import handlers
from bench.bench_fanout import APP_ID, APP_SECRET, MORNING, MSG, TENANT, prepare_db, seed_cases
from bot import db
from bot.feishu import FeishuClient
from bot.outbox import OutboxSender
from bot.pacer import Pacer
from bot.reminders import Policy, reconcile_all
from feishu_fake import FakeFeishu


class SkippingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Waits for nothing when only timers are pending: the loop's clock jumps instead."""

    loop: "SkippingLoop"

    def select(self, timeout: float | None = None):
        loop = self.loop
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if loop.in_threads:  # database work in a thread: real time passes
            return super().select(0.002 if timeout is None else min(timeout, 0.002))
        if timeout is None:
            return super().select(0.01)
        loop.skipped += timeout
        return ready


class SkippingLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = SkippingSelector()
        selector.loop = self
        super().__init__(selector)
        self.skipped = 0.0
        self.in_threads = 0
        self._origin = time.perf_counter()

    def time(self) -> float:
        return time.perf_counter() - self._origin + self.skipped

    def run_in_executor(self, executor, func, *args):
        self.in_threads += 1
        future = super().run_in_executor(executor, func, *args)

        def done(_f) -> None:
            self.in_threads -= 1
        future.add_done_callback(done)
        return future


class LoopClock:
    """The bot's and the fake's wall clock, driven by the loop's clock."""

    def __init__(self, loop: SkippingLoop, start: datetime) -> None:
        self.loop, self.start = loop, start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.loop.time())


def transport(fake: FakeFeishu, rng: random.Random) -> httpx.AsyncBaseTransport:
    """The fake counts a request when it arrives (against its limits) and answers 20–60 ms later."""
    async def handle(request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = fake.handle(request)
        await asyncio.sleep(rng.uniform(0.020, 0.060))
        return response
    return httpx.MockTransport(handle)


def busiest(times: list[float], width: float) -> int:
    times.sort()
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


async def fanout(n: int, url: str | None) -> dict:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, SkippingLoop)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare_db(url, Path(tmp))
        engine = db.make_engine(url)
        factory = db.make_sessionmaker(engine)
        chats = [f"oc_bench_{i:05d}" for i in range(n)]
        clock = LoopClock(loop, MORNING - timedelta(seconds=loop.time()))
        fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, tenant_key=TENANT, limits_enabled=True, clock=clock)
        for chat in chats:
            fake.add_chat(chat, members=[("ou_lead", "组长")])
        seed_cases(factory, chats, clock.now())
        with factory() as s, s.begin():
            reconcile_all(s, clock.now(), Policy())
        client = FeishuClient(app_id=APP_ID, app_secret=APP_SECRET, base_url="http://127.0.0.1:9",
                              transport=transport(fake, rng), monotonic=loop.time,
                              pacer=Pacer(monotonic=loop.time))
        await client._tenant_token()
        clock.start += timedelta(minutes=1)  # 09:30: every standup is due
        sender = OutboxSender(factory, client, clock, me="bench", renderers=handlers.build_router().renderers,
                              context=Policy())
        real, start = time.perf_counter(), loop.time()
        results = await sender.run_once(batch=200)
        wall, real = loop.time() - start, time.perf_counter() - real
        await client.aclose()
        engine.dispose()
    calls = fake.calls_to(MSG, "POST")
    codes = Counter(c.code for c in calls)
    per_chat = Counter(m.chat_id for m in fake.messages())
    times = [c.time for c in calls]
    minimum = n / 50 if n <= 1000 else n / 1000 * 60  # 50/s, or the N/1000 minutes
    return {"n": n, "wall_s": round(wall, 1), "minimum_s": minimum, "ratio": round(wall / minimum, 3),
            "sent_rows": sum(d.status == "sent" for d in results), "api_calls": len(calls),
            "throttled_429": codes.get(99991400, 0), "throttled_230020": codes.get(230020, 0),
            "busiest_1s": busiest(list(times), 1.0), "busiest_60s": busiest(list(times), 60.0),
            "distinct_uuids": len({m.uuid for m in fake.messages() if m.uuid}),
            "groups_with_one_card": sum(1 for v in per_chat.values() if v == 1),
            "groups_with_more": sum(1 for v in per_chat.values() if v > 1), "real_s": round(real, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--db", default=None, help="PostgreSQL URL (scratch: its public schema is dropped)")
    args = ap.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    loop = SkippingLoop()
    try:
        result = loop.run_until_complete(fanout(args.n, args.db))
    finally:
        loop.close()
    print(result)
    print(f"load at start: {load}")
    ok = (result["ratio"] <= 1.05 and result["throttled_429"] == 0 and result["throttled_230020"] == 0
          and result["groups_with_one_card"] == args.n)
    print(f"{result['wall_s']} s for {args.n} groups = {result['ratio']}x of {result['minimum_s']:.0f} s "
          f"(target <= 1.05x), rate-limit answers {result['throttled_429'] + result['throttled_230020']}: "
          + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
