"""P2 under a fan-out (reliability-and-performance.md §4): the webhook's p99 time to answer while
a 1,000-group fan-out runs in the same bot process stays within 3× its idle value.

    python -m bench.bench_ack_during_fanout              # from the repository root; ~1 min
    python -m bench.bench_ack_during_fanout -n 1000 --duration 10 --connections 4

One bot process: uvicorn (127.0.0.1, 1 worker) serving the real `create_app(settings)` with
background work on (schema upgrade, outbox sender loop, scheduler ticks, inbox processing after
each answer), a temp SQLite file, and FEISHU_BASE_URL pointing at the fake Open API served by
bench_fanout in its own process (loopback, 50/s + 1000/min per app, 5/s per chat, 20–60 ms).
wrk (c=4) posts pre-sealed unique `im.message.receive_v1` chatter events (bench_webhook's bodies,
bench/served.py's Lua script, whose `done()` hook gives p99.9):

  1. idle: wrk for --duration seconds; nothing else is due;
  2. fan-out: this process inserts N due outbox rows (kind "immediate", one SendCard per group,
     each a real standup card from `cards.reminders.standup_card` — built here, so the sender only
     decodes the payload; it does not render from the database at delivery time), the bot's own
     sender picks them up on its next 1 s poll, and as soon as it has claimed the first batch
     wrk runs again for --duration seconds, entirely inside the fan-out (~N/48 s).

Pass: p99(during)/p99(idle) ≤ 3, p99.9(during) < 500 ms, zero non-2xx and socket errors, all N
delivered exactly once (distinct uuids = N).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import bench_webhook as wh  # noqa: E402
from bench import served as sv  # noqa: E402
from bench.bench_fanout import APP_ID, APP_SECRET, TENANT  # noqa: E402
from bench.bench_fanout import serve as serve_fake  # noqa: E402

PREFIX = "oc_ackfan_"
WEBHOOK = "/feishu/events"


# ------------------------------------------------------------------ the bot (child process)
def settings_for(database_url: str, base_url: str):
    from bot.settings import Settings

    return Settings(_env_file=None, feishu_app_id=APP_ID, feishu_app_secret=APP_SECRET,
                    feishu_encrypt_key=wh.ENCRYPT_KEY, feishu_verification_token=wh.TOKEN,
                    feishu_base_url=base_url, database_url=database_url)


def serve_bot(port: int, database_url: str, base_url: str) -> None:
    import uvicorn

    from bot.app import create_app, settle_memory

    app = create_app(settings_for(database_url, base_url))  # background=True: as `collab-bot serve`
    settle_memory()  # as `collab-bot serve` does before serving
    uvicorn.Server(wh.uvicorn_config(app, port)).run()


def start_bot(database_url: str, base_url: str, workdir: Path):
    return sv.Child("bot", [sys.executable, "-m", "bench.bench_ack_during_fanout", "--serve-bot", "--database-url",
                            database_url, "--base-url", base_url], {"PYTHONPATH": str(ROOT)}, workdir, "/healthz")


# ------------------------------------------------------------------ load
def run_wrk(url: str, bodies: Path, connections: int, duration: int, workdir: Path) -> dict:
    script = workdir / "bodies_p999.lua"
    script.write_text(sv.LUA)   # cycles through pre-sealed bodies; prints p99.9 and max
    started = time.time()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                          url + WEBHOOK, "--", str(bodies), WEBHOOK],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    ended = time.time()
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": wh._ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": wh._ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "p999": int(re.search(r"P999_US (\d+)", out).group(1)) / 1000,
            "max": int(re.search(r"MAX_US (\d+)", out).group(1)) / 1000,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1).strip() if errors else "",
            "started": started, "ended": ended}


# ------------------------------------------------------------------ the fan-out rows
def standup_cards(n: int) -> list[dict]:
    from cards.reminders import OwnerBlock, StandupView, TaskLine, standup_card

    today = date.today()
    return [standup_card(StandupView(
        case_id=i + 1, title=f"协作问题 {i}", day=today, lead_open_id="ou_lead",
        owners=(OwnerBlock(open_id=f"ou_owner_{i % 50}", answered=False, tasks=(
            TaskLine(owner_open_id=f"ou_owner_{i % 50}", content="接口开发", due="12-11 18:00", progress=30),
            TaskLine(owner_open_id=f"ou_owner_{i % 50}", content="联调测试", due="12-14 18:00", progress=0))),)))
        for i in range(n)]


def enqueue_fanout(factory, cards: list[dict], now: datetime) -> None:
    """One transaction, like a planner pass: N due rows, one SendCard for each group."""
    from bot import outbox

    with factory() as s, s.begin():
        for i, card in enumerate(cards):
            outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=f"{PREFIX}{i:05d}", key=f"standup-{i}", now=now,
                               ops=[outbox.SendCard(card)])


def fanout_state(factory) -> dict:
    from sqlalchemy import func, select

    from bot.models import Outbox

    mine = Outbox.chat_id.like(PREFIX + "%")
    with factory() as s:
        by_status = dict(s.execute(select(Outbox.status, func.count()).where(mine).group_by(Outbox.status)).all())
        first_claim, last_sent = s.execute(select(func.min(Outbox.claimed_at), func.max(Outbox.sent_at))
                                           .where(mine)).one()
    return {"by_status": by_status, "first_claim": _aware(first_claim), "last_sent": _aware(last_sent)}


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def wait_inbox_drained(database_url: str, prefix: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        pending = wh.inbox_counts(database_url, prefix)[1]
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)


# ------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="groups in the fan-out")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--bodies-per-second", type=int, default=5000)
    ap.add_argument("--serve-bot", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--database-url", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bot:
        serve_bot(args.port, args.database_url, args.base_url)
        return 0
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required (apt-get install -y wrk)")
    if args.duration * 48 > args.n:
        print(f"warning: {args.n} sends take ~{args.n / 48:.0f} s, shorter than --duration {args.duration}",
              file=sys.stderr)

    from bot import db

    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ackfan-"))
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    factory = db.make_sessionmaker(engine)
    run = os.urandom(4).hex()
    bodies = {phase: workdir / f"{phase}.tsv" for phase in ("idle", "during")}
    for phase, path in bodies.items():
        wh.write_bodies(path, args.bodies_per_second * args.duration, f"ackfan-{run}-{phase}-")
    cards = standup_cards(args.n)
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s; bot: uvicorn 1 worker on 127.0.0.1, background on, "
          f"SQLite; fake Open API in its own process (limits on, 20–60 ms); N = {args.n}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} (other work on the machine skews both phases)",
          flush=True)

    base, fake = serve_fake(args.n, PREFIX)
    bot = None
    try:
        bot = start_bot(database_url, base, workdir)
        time.sleep(3)  # start-up work (identity, first ticks, pending sweep) settles
        idle = run_wrk(bot.url, bodies["idle"], args.connections, args.duration, workdir)
        left = wait_inbox_drained(database_url, f"ackfan-{run}-idle-")
        print(f"  idle    {idle['rps']:7.0f} rps  p50 {idle['p50']:6.2f} ms  p99 {idle['p99']:6.2f} ms  "
              f"p99.9 {idle['p999']:6.2f} ms  non-2xx {idle['non2xx']}  (inbox left pending: {left})", flush=True)

        enqueued_at = datetime.now(timezone.utc)
        enqueue_fanout(factory, cards, enqueued_at)
        deadline = time.monotonic() + 10
        while fanout_state(factory)["first_claim"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        during = run_wrk(bot.url, bodies["during"], args.connections, args.duration, workdir)
        print(f"  during  {during['rps']:7.0f} rps  p50 {during['p50']:6.2f} ms  p99 {during['p99']:6.2f} ms  "
              f"p99.9 {during['p999']:6.2f} ms  non-2xx {during['non2xx']}", flush=True)
        deadline = time.monotonic() + max(90, 3 * args.n / 48)
        while time.monotonic() < deadline:
            state = fanout_state(factory)
            if sum(v for k, v in state["by_status"].items() if k in ("pending", "sending")) == 0:
                break
            time.sleep(0.5)
        wait_inbox_drained(database_url, f"ackfan-{run}-during-")
        seen = httpx.get(f"{base}/_bench/stats", timeout=10).json()
    finally:
        if bot is not None:
            bot.stop()
        fake.terminate()
        try:
            fake.wait(10)
        except subprocess.TimeoutExpired:
            fake.kill()
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    first, last = state["first_claim"], state["last_sent"]
    wall = (last - first).total_seconds() if first and last else float("nan")
    inside = (first is not None and last is not None
              and first.timestamp() <= during["started"] and during["ended"] <= last.timestamp())
    return report(args, idle, during, state, seen, wall, inside, (first - enqueued_at).total_seconds()
                  if first else float("nan"), time.monotonic() - began)


def report(args, idle: dict, during: dict, state: dict, seen: dict, wall: float, inside: bool,
           pickup: float, total: float) -> int:
    ratio = during["p99"] / idle["p99"]
    sent = state["by_status"].get("sent", 0)
    non2xx = idle["non2xx"] + during["non2xx"]
    errors = [e for e in (idle["socket_errors"], during["socket_errors"]) if e]
    print()
    print(f"| c={args.connections}, {args.duration} s | rps | p50 | p99 | p99.9 | max | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("idle", idle), (f"during fan-out of {args.n}", during)):
        print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['p999']:.2f} ms | "
              f"{r['max']:.2f} ms | {r['non2xx']} |")
    print()
    print("| fan-out | value |")
    print("|---|---|")
    print(f"| delivered (outbox rows sent) | {sent} / {args.n} |")
    others = ', '.join(f'{k} {v}' for k, v in state['by_status'].items() if k != 'sent') or 'none'
    print(f"| other outcomes | {others} |")
    print(f"| wall time, first claim → last sent | {wall:.1f} s (minimum {args.n / 50:.1f} s, "
          f"ratio {wall / (args.n / 50):.2f}) |")
    print(f"| insert → first claim | {pickup:.2f} s |")
    print(f"| wrk run entirely inside the fan-out | {'yes' if inside else 'NO'} |")
    print(f"| fake: distinct uuids / groups with one card / with more | {seen['distinct_uuids']} / "
          f"{seen['groups_with_one_card']} / {seen['groups_with_more']} |")
    print(f"| fake: 429 / 230020 / busiest 1 s | {seen['throttled_429']} / {seen['throttled_230020']} / "
          f"{seen['busiest_1s']} |")
    checks = {
        f"p99(during)/p99(idle) = {ratio:.2f} <= 3": ratio <= 3,
        f"p99.9(during) = {during['p999']:.1f} ms < 500 ms": during["p999"] < 500,
        f"non-2xx = {non2xx}, socket errors: {'; '.join(errors) or 'none'}": non2xx == 0 and not errors,
        f"delivered {sent}/{args.n}, distinct uuids {seen['distinct_uuids']}":
            sent == args.n == seen["distinct_uuids"] == seen["groups_with_one_card"],
        "wrk ran inside the fan-out": inside,
    }
    print()
    for text, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {text}")
    print(f"total {total:.0f} s; load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ok = all(checks.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
