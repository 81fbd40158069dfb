"""P3 — fan-out efficiency: deliver N standup prompts to N groups through the outbox and the
real FeishuClient + Pacer, against the stateful fake Open API served on a loopback port with
its limits on (50/s and 1000/min per app, 5/s per chat) plus 20–60 ms of service latency.

    python -m bench.bench_fanout                 # N = 1000, physical minimum 20 s
    python -m bench.bench_fanout --fail 0.01     # 1 % injected 5xx: every message still exactly once
    python -m bench.bench_fanout -n 300 --db postgresql://postgres@127.0.0.1:5432/test_f

Reports wall time from the first claim to the last message, the ratio to N/50 s, throttling
responses (429/99991400 and 230020) and distinct uuids vs. groups that got their card.
The database (SQLite file by default) is scratch: created in a temporary directory.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvicorn

import handlers
from bot import db
from bot.clock import ManualClock
from bot.feishu import FeishuClient
from bot.models import Case, Task
from bot.outbox import OutboxSender
from bot.pacer import Pacer
from bot.reminders import Policy
from feishu_fake import FakeFeishu

APP_ID, APP_SECRET, TENANT = "cli_bench", "bench-secret", "tenant_bench"
MSG = "/open-apis/im/v1/messages"
MORNING = datetime(2026, 12, 8, 1, 29, tzinfo=timezone.utc)  # Tue 09:29 in Shanghai


def latency(app, low: float = 0.020, high: float = 0.060):
    """ASGI wrapper: 20–60 ms of service time between the fake taking the request (and counting
    it against its limits) and the answer going out — its API is untouched."""
    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def delayed(message):
            if message["type"] == "http.response.start":
                await asyncio.sleep(random.uniform(low, high))
            await send(message)
        await app(scope, receive, delayed)
    return wrapped


def bench_app(fake: FakeFeishu):
    """The fake plus bench-only routes: GET /_bench/stats (copies every message: not while sending),
    GET /_bench/progress, GET /_bench/times, POST /_bench/fail?p=…"""
    inner = latency(fake.asgi_app())

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/_bench/"):
            if scope["path"] == "/_bench/fail":
                p = float(dict(x.split("=") for x in scope["query_string"].decode().split("&"))["p"])
                fake.fail_rate(p, 503, seed=1)
                body = b"{}"
            elif scope["path"] == "/_bench/progress":   # cheap to poll during a fan-out
                body = json.dumps({"groups_with_messages": len(fake.messages_per_chat())}).encode()
            elif scope["path"] == "/_bench/times":   # when each message call was counted (epoch s)
                body = json.dumps([[c.time, c.code] for c in fake.calls_to(MSG, "POST")]).encode()
            else:
                body = json.dumps(stats(fake)).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)
    return app


def stats(fake: FakeFeishu) -> dict:
    calls = fake.calls_to(MSG, "POST")
    codes = Counter(c.code for c in calls)
    per_chat = Counter(m.chat_id for m in fake.messages())
    times = sorted(c.time for c in calls)
    j, busiest = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1:
            j += 1
        busiest = max(busiest, i - j + 1)
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return {"api_calls": len(calls), "busiest_1s": busiest,
            "min_gap_ms": round(gaps[0] * 1000, 1) if gaps else None, "throttled_429": codes.get(99991400, 0),
            "throttled_230020": codes.get(230020, 0), "injected_5xx": sum(1 for c in calls if c.status >= 500),
            "distinct_uuids": len({m.uuid for m in fake.messages() if m.uuid}),
            "groups_with_one_card": sum(1 for v in per_chat.values() if v == 1),
            "groups_with_more": sum(1 for v in per_chat.values() if v > 1)}


def serve(n: int, prefix: str) -> tuple[str, subprocess.Popen]:
    """The fake in its own process (as Feishu is): it must not share our GIL and event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_fanout", "--serve-fake", str(port),
                             "-n", str(n), "--prefix", prefix])
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/_bench/stats", timeout=1)
            return base, proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake did not start")


def serve_forever(port: int, n: int, prefix: str) -> None:
    fake, _ = fake_with_chats(n, prefix)
    # Feishu stamps a request when it arrives; the fake stamps it when its loop gets to it. Its
    # oldest generation grows with every message it keeps, and collecting it stalled the loop for
    # 108-316 ms in a 10,000-group fan-out: the requests that queued meanwhile were stamped
    # together, and each such stall was followed by 2-4 rate-limit answers. Young objects are
    # still collected; no full collection runs (what lives that long is kept to the end anyway).
    gc.freeze()
    gc.set_threshold(700, 10, 10 ** 9)
    uvicorn.run(bench_app(fake), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                access_log=False)


def prepare_db(url: str | None, workdir: Path) -> str:
    if url:
        from sqlalchemy import create_engine, text

        engine = create_engine(db.normalise_url(url))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    url = url or f"sqlite:///{workdir / 'bench.db'}"
    db.upgrade(url)
    return url


def seed_cases(factory, chats: list[str], now: datetime) -> None:
    """One case in step 5 per group, with one task a month from its deadline: at 30 % a day after
    its start it is not behind on any day of the week (a task due in three days was 滞后 on a
    Friday morning, and every group got a lag alert along with its standup)."""
    with factory() as s, s.begin():
        for i, chat in enumerate(chats):
            case = Case(tenant_key=TENANT, chat_id=chat, seq=1, title=f"协作问题 {i}", step=5,
                        opener_open_id="ou_lead", lead_open_id="ou_lead", created_at=now, updated_at=now,
                        step_entered_at=now - timedelta(days=1))
            s.add(case)
            s.flush()
            s.add(Task(tenant_key=TENANT, chat_id=chat, case_id=case.id, seq=1, content="接口开发",
                       owner_open_id=f"ou_owner_{i % 50}", start_at=now - timedelta(days=1),
                       due_at=now + timedelta(days=30), delivery_standard="可上线", status="doing",
                       progress=30, updated_at=now))


def fake_with_chats(n: int, prefix: str = "oc_bench_") -> tuple[FakeFeishu, list[str]]:
    fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, tenant_key=TENANT, limits_enabled=True)
    chats = [f"{prefix}{i:05d}" for i in range(n)]
    for chat in chats:
        fake.add_chat(chat, members=[("ou_lead", "组长")])
    return fake, chats


async def fanout(n: int, fail: float, url: str | None, seed: int, reserve: int = 0, rate: float = 48.0) -> dict:
    from bot.reminders import reconcile_all

    random.seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare_db(url, Path(tmp))
        engine = db.make_engine(url)
        factory = db.make_sessionmaker(engine)
        chats = [f"oc_bench_{i:05d}" for i in range(n)]
        base, proc = serve(n, "oc_bench_")
        clock = ManualClock(MORNING)
        seed_cases(factory, chats, clock.now())
        with factory() as s, s.begin():
            reconcile_all(s, clock.now(), Policy())
        client = FeishuClient(app_id=APP_ID, app_secret=APP_SECRET, base_url=base,
                              pacer=Pacer(rate=rate, reserve=reserve))
        await client._tenant_token()
        if fail:
            httpx.post(f"{base}/_bench/fail?p={fail}")
        clock.set(MORNING + timedelta(minutes=1))  # 09:30: every standup is due
        sender = OutboxSender(factory, client, clock, me="bench", renderers=handlers.build_router().renderers,
                              context=Policy())
        start = time.perf_counter()
        results = await sender.run_once(batch=200)
        wall = time.perf_counter() - start
        await client.aclose()
        seen = httpx.get(f"{base}/_bench/stats").json()
        proc.terminate()
        proc.wait(10)
        engine.dispose()
    return {"n": n, "fail": fail, "pacer_reserve": reserve, "pacer_rate": rate, "wall_s": round(wall, 2),
            "minimum_s": n / 50,
            "ratio": round(wall / (n / 50), 3), "sent_rows": sum(d.status == "sent" for d in results), **seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--fail", type=float, default=0.0, help="share of API calls answered 503")
    ap.add_argument("--db", default=None, help="PostgreSQL URL (scratch: its public schema is dropped)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reserve", type=int, default=0, help="Pacer minute reserve (the app default is 0)")
    ap.add_argument("--rate", type=float, default=48.0, help="Pacer sends per second (the app default is 48)")
    ap.add_argument("--serve-fake", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="oc_bench_", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake:
        serve_forever(args.serve_fake, args.n, args.prefix)
        return
    print(asyncio.run(fanout(args.n, args.fail, args.db, args.seed, args.reserve, args.rate)))


if __name__ == "__main__":
    main()
