"""The webhook during a standup fan-out, as `collab-bot serve` runs it: real time, the bot's own
planner and sender (its background process), the fake Open API with Feishu's limits in its own
process, and the webhook answering group traffic before and during the fan-out.

    python -m bench.bench_served_fanout -n 1000           # ~3 minutes
    python -m bench.bench_served_fanout -n 10000          # ~14 minutes (600 s of sending)
    python -m bench.bench_served_fanout --database-url postgresql://postgres@127.0.0.1:5432/<scratch db>

1. N groups get a case in step 5 with a task (bench_fanout's seed) whose standup is at the next
   minute at least 90 s away (Shanghai time; the bench refuses to run on a non-working day there);
   then the bot starts. Its planner writes the N standup rows, due at that minute.
2. Idle: for 30 s before the standup minute the load generator posts signed, sealed events at
   100 a second over 4 connections (open loop), one in 25 a `/帮助` command, the rest chatter.
3. During: the same load from the standup minute for 30 s (or the fan-out's length if shorter).
4. The fan-out's length: from the standup minute until the fake has counted N standup cards.
Reported: per kind p50/p99 idle and during, their ratio, non-2xx answers; the fan-out's length
÷ N/50 s (Feishu's 50 messages a second per app) and the rate-limit answers at the fake.
PASS: chatter and command p99 during ≤ 2 × idle, 0 non-2xx.
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
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import served as sv  # noqa: E402
from bench.bench_fanout import seed_cases  # noqa: E402
from bench.bench_fanout import serve as serve_fake  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
RATE, CONNECTIONS, PHASE_S = 100, 4, 30


COMMAND_GROUPS = 20   # groups without a case that the load's /帮助 goes to (their replies are not standups)


def load_bodies(path: Path, n_events: int, groups: int, start: int, tag: str) -> None:
    """Signed for `start` (the signature window is 5 minutes: a phase's bodies are sealed for it).
    Chatter goes to the groups with a standup, commands to the COMMAND_GROUPS after them."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n_events):
            if i % 25 == 0:
                chat = f"oc_bench_{groups + i // 25 % COMMAND_GROUPS:05d}"
                payload, kind = sv.command(chat, "ou_lead", "/帮助", start), "command"
            else:
                chat = f"oc_bench_{i % groups:05d}"
                payload, kind = sv.chatter(chat, f"ou_user_{i % 397}", start, i), "chatter"
            payload["header"]["event_id"] = f"{tag}{i}"
            payload["event"]["message"]["message_id"] = f"om_{tag}{i}"
            f.write(sv.seal_line(kind, payload, start))


def standup_minute(lead_s: int) -> datetime:
    at = (datetime.now(SHANGHAI) + timedelta(seconds=lead_s)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return at


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="groups")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--lead", type=int, default=90, help="seconds at least between the start and the standup")
    args = ap.parse_args()
    from bot.workdays import public_is_workday
    if not public_is_workday(datetime.now(SHANGHAI).date()):
        raise SystemExit("today is not a working day in Shanghai: the standups would not be due")
    workdir = Path(tempfile.mkdtemp(prefix="bench-served-fanout-"))
    database_url = sv.prepare_db(args.database_url, workdir)
    engine_name = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    at = standup_minute(args.lead + 30)
    base, fake = serve_fake(args.n + COMMAND_GROUPS, "oc_bench_")
    bot = None
    try:
        _seed(database_url, args.n, at)
        bot = sv.start_bot(database_url, base, workdir)
        start_idle = at.timestamp() - PHASE_S - 2
        idle_bodies, during_bodies = workdir / "idle.tsv", workdir / "during.tsv"
        load_bodies(idle_bodies, RATE * PHASE_S + 200, args.n, int(start_idle), "idle-")
        load_bodies(during_bodies, RATE * PHASE_S + 200, args.n, int(at.timestamp()), "during-")
        _sleep_until(start_idle)
        load_start = sv.uptime()
        idle = sv.generate(bot.url + sv.WEBHOOK, idle_bodies, CONNECTIONS, PHASE_S, RATE)
        _sleep_until(at.timestamp())
        fanout_start = time.time()
        during_gen = subprocess.Popen(sv.generate_cmd(bot.url + sv.WEBHOOK, during_bodies, CONNECTIONS, PHASE_S, RATE),
                                      cwd=ROOT, stdout=subprocess.PIPE, text=True)
        stats = _wait_for_standups(base, args.n, timeout=args.n / 50 * 3 + 120)
        fanout_s = stats.pop("done_at") - fanout_start
        during = sv.generated(during_gen, PHASE_S + 120)
        load_end = sv.uptime()
    finally:
        sv.stop([bot], fake)
    print(f"{engine_name}; {args.n} groups; standup at {at:%H:%M} Shanghai; load {RATE}/s over {CONNECTIONS} "
          f"connections, one in 25 /帮助, {PHASE_S} s idle then {PHASE_S} s during")
    print(f"load at start: {load_start}\nload at end:   {load_end}")
    ok = True
    for kind in ("chatter", "command"):
        a, b = idle["kinds"].get(kind, {}), during["kinds"].get(kind, {})
        ratio = b.get("p99", 0) / a["p99"] if a.get("p99") else float("inf")
        ok = ok and ratio <= 2 and not a.get("non2xx") and not b.get("non2xx")
        print(f"  {kind:<8} idle n={a.get('n')} p50 {a.get('p50', 0):.1f} p99 {a.get('p99', 0):.1f} ms | during "
              f"n={b.get('n')} p50 {b.get('p50', 0):.1f} p99 {b.get('p99', 0):.1f} ms | p99 ratio {ratio:.2f} | "
              f"non-2xx {a.get('non2xx')}/{b.get('non2xx')}")
    minimum = args.n / 50
    print(f"fan-out: {args.n} groups' standup cards in {fanout_s:.1f} s = {fanout_s / minimum:.3f} × the "
          f"{minimum:.0f} s minimum (the webhook's replies share the quota); rate-limit answers "
          f"{stats['throttled_429']}; busiest second {stats['busiest_1s']}; groups with more than one card "
          f"{stats['groups_with_more']} (the {COMMAND_GROUPS} command groups among them)")
    print(f"webhook p99 during ÷ idle ≤ 2, 0 non-2xx: {'PASS' if ok else 'FAIL'}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _seed(database_url: str, n: int, at: datetime) -> None:
    from sqlalchemy import update

    from bot import db
    from bot.models import Case

    engine = db.make_engine(database_url)
    factory = db.make_sessionmaker(engine)
    seed_cases(factory, [f"oc_bench_{i:05d}" for i in range(n)], datetime.now(timezone.utc))
    with factory() as s, s.begin():
        s.execute(update(Case).values(standup_time=f"{at:%H:%M}"))
    engine.dispose()


def _sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def _wait_for_standups(base: str, n: int, timeout: float) -> dict:
    """Poll the fake until every group has had its standup card (and the command groups their
    replies); the fake's counters then."""
    deadline = time.time() + timeout
    stats: dict = {}
    while time.time() < deadline:
        stats = httpx.get(base + "/_bench/stats", timeout=5).json()
        if stats["groups_with_one_card"] + stats["groups_with_more"] >= n + COMMAND_GROUPS:
            stats["done_at"] = time.time()
            return stats
        time.sleep(0.2)
    raise SystemExit(f"not every group had its standup within {timeout:.0f} s: {stats}")


if __name__ == "__main__":
    raise SystemExit(main())
