"""The webhook during a standup fan-out, as `collab-bot serve` runs it: real time, the bot's own
planner and sender (its background process), the fake Open API with Feishu's limits in its own
process, and the webhook answering group traffic before and during the fan-out.

    python -m bench.bench_served_fanout -n 1000           # ~3 minutes
    python -m bench.bench_served_fanout -n 10000 --during 240   # ~15 minutes (600 s of sending)
    python -m bench.bench_served_fanout --database-url postgresql://postgres@127.0.0.1:5432/<scratch db>

1. N groups get a case in step 5 with a task (bench_fanout's seed) whose standup is at the next
   minute at least 90 s away (Shanghai time; the bench refuses to run on a non-working day there);
   then the bot starts. Its planner writes the N standup rows, due at that minute.
2. Idle: for 30 s before the standup minute the load generator posts signed, sealed events at
   100 a second over 4 connections (open loop), one in 25 a `/帮助` command, the rest chatter.
3. During: the same load from the standup minute for `--during` seconds (default 30; at most 270:
   the bodies are signed for the standup minute and the webhook accepts 5 minutes).
4. The fan-out's length: from the standup minute until the fake has counted N standup cards.
Reported: per kind p50/p99 idle and during, their ratio, non-2xx answers; the rate-limit answers
at the fake; the fan-out's length ÷ the least time Feishu's quota (50 a second, 1,000 a minute per
app) allows for every message it accepted from the standup minute on — the cards and the load's
replies —, given those it accepted in the minute before (the idle phase's replies use that
minute's quota too). For 1,000 groups that minute is what the fan-out waits for; for 10,000 the
minimum is close to N/1,000 minutes.
PASS: chatter and command p99 during ≤ 2 × idle, 0 non-2xx, 0 rate-limit answers, and every standup
group got one message (its card).
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
    ap.add_argument("--during", type=int, default=PHASE_S, help="seconds of load from the standup minute on (≤ 270)")
    args = ap.parse_args()
    if not 1 <= args.during <= 270:
        raise SystemExit("--during: 1 to 270 seconds (the load is signed for the standup minute)")
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
        load_bodies(during_bodies, RATE * args.during + 200, args.n, int(at.timestamp()), "during-")
        _sleep_until(start_idle)
        load_start = sv.uptime()
        idle = sv.generate(bot.url + sv.WEBHOOK, idle_bodies, CONNECTIONS, PHASE_S, RATE)
        _sleep_until(at.timestamp())
        fanout_start = time.time()
        during_gen = subprocess.Popen(sv.generate_cmd(bot.url + sv.WEBHOOK, during_bodies, CONNECTIONS, args.during,
                                                      RATE),
                                      cwd=ROOT, stdout=subprocess.PIPE, text=True)
        stats = _wait_for_standups(base, args.n, timeout=args.n / 50 * 3 + 120)
        done_at = stats.pop("done_at")
        fanout_s = done_at - fanout_start
        counted = httpx.get(base + "/_bench/times", timeout=30).json()
        during = sv.generated(during_gen, args.during + 120)
        load_end = sv.uptime()
    finally:
        sv.stop([bot], fake)
    print(f"{engine_name}; {args.n} groups; standup at {at:%H:%M} Shanghai; load {RATE}/s over {CONNECTIONS} "
          f"connections, one in 25 /帮助, {PHASE_S} s idle then {args.during} s during")
    print(f"load at start: {load_start}\nload at end:   {load_end}")
    ok = True
    for kind in ("chatter", "command"):
        a, b = idle["kinds"].get(kind, {}), during["kinds"].get(kind, {})
        ratio = b.get("p99", 0) / a["p99"] if a.get("p99") else float("inf")
        ok = ok and ratio <= 2 and not a.get("non2xx") and not b.get("non2xx")
        print(f"  {kind:<8} idle n={a.get('n')} p50 {a.get('p50', 0):.1f} p99 {a.get('p99', 0):.1f} ms | during "
              f"n={b.get('n')} p50 {b.get('p50', 0):.1f} p99 {b.get('p99', 0):.1f} ms | p99 ratio {ratio:.2f} | "
              f"non-2xx {a.get('non2xx')}/{b.get('non2xx')}")
    accepted = [t for t, code in counted if code == 0 and t <= done_at]
    before = [t for t in accepted if fanout_start - 60 < t < fanout_start]
    sent = sum(1 for t in accepted if t >= fanout_start)
    minimum = quota_minimum(before, sent, fanout_start)
    cards_alone = args.n / 50 if args.n <= 1000 else args.n / 1000 * 60   # the 20 s and 600 s
    print(f"fan-out: {args.n} groups' standup cards in {fanout_s:.1f} s = {fanout_s / minimum:.3f} × the "
          f"{minimum:.1f} s Feishu's quota allows for the {sent} messages accepted meanwhile (the cards and "
          f"{sent - args.n} replies), {len(before)} replies in the minute before; the cards alone at 50 a second "
          f"and 1,000 a minute: {cards_alone:.0f} s ({fanout_s / cards_alone:.3f} ×); "
          f"rate-limit answers {stats['throttled_429']}; busiest second {stats['busiest_1s']}; groups with more "
          f"than one card {stats['groups_with_more']} (the {COMMAND_GROUPS} command groups among them)")
    # every standup group gets its card and nothing else: another message would be counted as the
    # fan-out's (the wait ends when every group has had one) and would use the quota
    extra = stats["groups_with_more"] - COMMAND_GROUPS
    if extra:
        print(f"  {extra} standup group(s) got more than one message: this run measured more than the fan-out")
    ok = ok and stats["throttled_429"] == 0 and extra == 0
    print(f"webhook p99 during ÷ idle ≤ 2, 0 non-2xx, 0 rate-limit answers: {'PASS' if ok else 'FAIL'}")
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


def quota_minimum(before: list[float], n: int, start: float, per_second: int = 50, per_minute: int = 1000) -> float:
    """The least time from `start` in which `n` messages can be accepted by Feishu's per-app
    windows, `before` having been accepted already: sent evenly at `per_second` (so 1,000 take
    the 20 s the issue counts) whenever the sliding minute has room for another of `per_minute`."""
    times = sorted(before)
    gap = 1.0 / per_second
    at = start - gap
    for _ in range(n):
        at += gap
        if len(times) >= per_minute:
            at = max(at, times[-per_minute] + 60.0)
        times.append(at)
    return at + gap - start


def _sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def _wait_for_standups(base: str, n: int, timeout: float) -> dict:
    """Poll the fake until every group has had its standup card (and the command groups their
    replies); the fake's counters then. Polled by a count the fake keeps: its full statistics copy
    every message, which stalled it long enough for requests to bunch at its per-second limit."""
    deadline = time.time() + timeout
    progress: dict = {}
    while time.time() < deadline:
        progress = httpx.get(base + "/_bench/progress", timeout=5).json()
        if progress["groups_with_messages"] >= n + COMMAND_GROUPS:
            done_at = time.time()
            return {**httpx.get(base + "/_bench/stats", timeout=30).json(), "done_at": done_at}
        time.sleep(0.2)
    raise SystemExit(f"not every group had its standup within {timeout:.0f} s: {progress}")


if __name__ == "__main__":
    raise SystemExit(main())
