"""Memory holds: the served bot's resident memory after 200,000 chatter events with 1,000 cases in
the database stays within 1.2× of its value after the first 10,000 events.

    python -m bench.bench_memory                       # SQLite, ~2–4 minutes
    python -m bench.bench_memory --events 200000 --cases 1000 --database-url postgresql://…/<scratch db>

The bot runs as `python -m bot.cli serve` (background work on, the shipped logging) against
bench_fanout's fake Open API. Before it starts, 1,000 groups get a case in step 5 (执行跟踪) with
a task each (the planner then keeps their reminder rows). Chatter goes to those 1,000 groups from
20,000 different people; one message in ten @mentions one of them by name (so the bot learns and
caches 20,000 display names), one in fifty is a command (`/进度`: the case card is sent; these
keep the inbox, the outbox and the handlers in the picture). The events are posted by the load
generator at 32 connections in rounds of 10,000 freshly sealed events (unique ids; Feishu's
signature timestamps stay current), and the bot's VmRSS is read from /proc after each round.
PASS: RSS after the last round ≤ 1.2 × RSS after the first.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import served as sv  # noqa: E402
from bench.bench_fanout import seed_cases  # noqa: E402
from bench.bench_fanout import serve as serve_fake  # noqa: E402

ROUND = 10_000
PEOPLE = 20_000


def bodies(path: Path, start: int, chats: list[str], rng: random.Random) -> None:
    now = int(time.time())
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + ROUND):
            chat = chats[rng.randrange(len(chats))]
            if i % 50 == 0:
                kind, payload = "command", sv.command(chat, "ou_lead", "/进度", now)
            else:
                who = rng.randrange(PEOPLE)
                mention = (f"ou_p{who}", f"同事{who}") if i % 10 == 0 else None
                kind, payload = "chatter", sv.chatter(chat, f"ou_p{rng.randrange(PEOPLE)}", now, i, mention)
            payload["header"]["event_id"] = f"mem-{i}"
            payload["event"]["message"]["message_id"] = f"om_mem_{i}"
            f.write(sv.seal_line(kind, payload, now))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args()
    from datetime import datetime, timezone

    from bot import db

    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    database_url = sv.prepare_db(args.database_url, workdir)
    chats = [f"oc_bench_{i:05d}" for i in range(args.cases)]
    engine = db.make_engine(database_url)
    seed_cases(db.make_sessionmaker(engine), chats, datetime.now(timezone.utc))
    engine.dispose()
    base, fake = serve_fake(args.cases, "oc_bench_")
    bot = None
    samples: list[tuple[int, int]] = []
    rng = random.Random(1)
    print(f"load at start: {sv.uptime()}", flush=True)
    try:
        bot = sv.start_bot(database_url, base, workdir)
        time.sleep(2)
        samples.append((0, bot.rss_kb()))
        sent = 0
        while sent < args.events:
            path = workdir / "round.tsv"
            bodies(path, sent, chats, rng)
            result = sv.generate(bot.url + sv.WEBHOOK, path, 32, 600, count=ROUND)
            sent += ROUND
            non2xx = sum(k["non2xx"] for k in result["kinds"].values())
            samples.append((sent, bot.rss_kb()))
            print(f"  after {sent:>7} events: RSS {samples[-1][1] / 1024:6.1f} MB  ({result['rps']:.0f}/s, "
                  f"non-2xx {non2xx})", flush=True)
    finally:
        sv.stop([bot], fake)
    shutil.rmtree(workdir, ignore_errors=True)
    first, last = samples[1][1], samples[-1][1]
    ratio = last / first
    print(f"load at end: {sv.uptime()}")
    print(f"RSS at start {samples[0][1] / 1024:.1f} MB, after {ROUND} events {first / 1024:.1f} MB, after "
          f"{samples[-1][0]} events {last / 1024:.1f} MB: {ratio:.3f}x (target <= 1.2x): "
          + ("PASS" if ratio <= 1.2 else "FAIL"))
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
