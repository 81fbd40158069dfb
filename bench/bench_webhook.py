"""The webhook as `collab-bot serve` runs it, side by side with a bare FastAPI `{}` endpoint on the
same server stack, both in their own processes, measured in the same run (the README's figures).

    python bench/bench_webhook.py                           # served, SQLite, chatter and the mix
    python bench/bench_webhook.py --database-url postgresql://postgres@127.0.0.1:5432/<scratch db>
    python bench/bench_webhook.py --scenario chatter --runs 3
    python bench/bench_webhook.py --mode ack                # the earlier ack-path-only figure (below)

Served mode (the default): the bot is `python -m bot.cli serve` (settings from the environment,
schema upgrade, background work on: outbox sender, scheduler ticks, the work after each answer;
the shipped logging and access-log default) against the fake Open API in its own process
(bench_fanout's, with Feishu's limits and 20–60 ms latency). The bare app is FastAPI returning
{} served by `bot.server.serve` with the same limits and logging. wrk -t1 -c32 posts pre-sealed,
signed and encrypted events with unique event ids:

- chatter: ordinary group messages (one in ten @mentions another person by name);
- mix: per hundred requests 90 chatter, 7 commands (`/进度` in a group with a case: the case card
  is sent) and 3 card clicks in cases that exist (the task owner's 更新进度 button in step 5:
  the update form is sent), interleaved. A second pass of the same mix by a load generator that
  times each kind separately gives the card callbacks' p99.

Targets (issue 13, SQLite): chatter ≥ 0.5 × bare with p99 ≤ 20 ms; the mix ≥ 0.35 × bare with card
callbacks' p99 ≤ 50 ms. The load average is printed with every run: other work on the machine
shows in the bot's numbers more than in the bare app's.

Ack mode (`--mode ack`) is the earlier P1/P2 benchmark: `create_app(..., background=False)` on plain
uvicorn without access log, inbox insert before the 200, the work after the answer off unless
`--process`; it measures the ack path alone, not the served bot. Its events are `/帮助` commands
(chatter no longer reaches the inbox).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP_ID, APP_SECRET = "cli_bench_app", "bench-app-secret"
ENCRYPT_KEY, TOKEN = "bench-encrypt-key", "bench-verification-token"
TENANT, CHAT = "tenant_bench", "oc_bench_group"
PROCESS = False  # set from --process
PATHS = {"bare": "/bare", "webhook": "/feishu/events"}


# ------------------------------------------------------------------ servers (child processes)
def settings_for(database_url: str):
    from bot.settings import Settings

    return Settings(_env_file=None, feishu_app_id=APP_ID, feishu_app_secret=APP_SECRET,
                    feishu_encrypt_key=ENCRYPT_KEY, feishu_verification_token=TOKEN,
                    database_url=database_url)


def uvicorn_config(app: Any, port: int):
    import uvicorn

    # The same config for both apps: what `collab-bot serve` uses, minus the access log.
    return uvicorn.Config(app, host="127.0.0.1", port=port, workers=1, log_level="warning",
                          access_log=False, limit_concurrency=1000)


def serve(kind: str, port: int, database_url: str, process: bool) -> None:
    import uvicorn
    from fastapi import FastAPI

    if kind == "bare":
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.post("/bare")
        async def bare() -> dict:
            return {}

        @app.get("/healthz")
        async def healthz() -> dict:
            return {}
    else:
        from bot.app import create_app

        app = create_app(settings_for(database_url), background=False)
        if not process:
            # The ack path only: verified, stored in the inbox and answered; the rows stay pending.
            app.state.bot.dispatcher.process = lambda event_id, event=None: None
    from bot.app import settle_memory

    settle_memory()  # as `collab-bot serve` does before serving (both apps, for a fair ratio)
    uvicorn.Server(uvicorn_config(app, port)).run()


def start_server(kind: str, database_url: str, process: bool, workdir: Path):
    from bench import served as sv

    return sv.Child(kind, [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--database-url",
                           database_url] + (["--process"] if process else []), {}, workdir, "/healthz")


# ------------------------------------------------------------------ bodies
def write_bodies(path: Path, n: int, prefix: str, app_id: str = APP_ID) -> None:
    """`n` sealed `/帮助` commands for the app `app_id`, one request a line in bench/served.py's wrk format."""
    from bench import served as sv
    from feishu_fake import events as ev

    now = int(time.time())
    with path.open("w") as f:
        for i in range(n):
            # a command: chatter no longer reaches the inbox (bot/chatter.py), and this mode measures it
            payload = ev.message_event(chat_id=CHAT, sender_open_id="ou_bench_user", text="/帮助",
                                       app_id=app_id, tenant_key=TENANT, token=TOKEN, create_ms=now * 1000,
                                       event_id=f"{prefix}{i}", message_id=f"om_{prefix}{i}")
            f.write(sv.seal_line("command", payload, now))


# ------------------------------------------------------------------ load generators
def run_wrk(url: str, path: str, bodies: Path, connections: int, duration: int, workdir: Path) -> dict:
    from bench import served as sv

    script = workdir / "bodies.lua"
    script.write_text(sv.LUA)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                          url + path, "--", str(bodies), path],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {"rps": rps, "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)), "requests": total,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1).strip() if errors else ""}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if m is None:
        raise SystemExit(f"cannot read wrk latency {value!r}")
    num, unit = float(m.group(1)), m.group(2)
    return num * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}[unit]


def run_python_load(url: str, path: str, bodies: Path, connections: int, duration: int) -> dict:
    """A separate process so the generator does not share the server's interpreter."""
    out = subprocess.run([sys.executable, __file__, "--generate", url + path, "--bodies", str(bodies),
                          "--connections", str(connections), "--duration", str(duration)],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def _python_load(url: str, bodies: Path, connections: int, duration: int) -> dict:
    import httpx

    lines = [line.rstrip("\n").split("\t", 4)[1:] for line in bodies.open()]
    it = iter(range(10**9))
    latencies: list[float] = []
    non2xx = 0
    deadline = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal non2xx
        while time.perf_counter() < deadline:
            ts, nonce, sig, body = lines[next(it) % len(lines)]
            start = time.perf_counter()
            resp = await client.post(url, content=body.encode(), headers={
                "Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
                "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sig})
            latencies.append((time.perf_counter() - start) * 1000)
            non2xx += resp.status_code >= 300

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)], "requests": len(latencies), "non2xx": non2xx,
            "socket_errors": ""}


# ------------------------------------------------------------------ the inbox
def inbox_counts(database_url: str, prefix: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, func, select

    from bot.db import normalise_url
    from bot.models import InboxEvent

    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            mine = InboxEvent.event_id.like(prefix + "%")
            total = conn.scalar(select(func.count()).select_from(InboxEvent).where(mine))
            pending = conn.scalar(select(func.count()).select_from(InboxEvent)
                                  .where(mine, InboxEvent.status == "pending"))
    finally:
        engine.dispose()
    return total, pending


def wait_drained(database_url: str, prefix: str, timeout: float = 120) -> None:
    if not PROCESS:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inbox_counts(database_url, prefix)[1] == 0:
            return
        time.sleep(0.2)
    print("warning: the inbox still has pending rows", file=sys.stderr)


# ------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["served", "ack"], default="served")
    parser.add_argument("--scenario", choices=["chatter", "mix", "both"], default="both",
                        help="served mode: what the load is")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=None, help="concurrency (served 32, ack 50)")
    parser.add_argument("--idle-connections", type=int, default=4, help="P2 concurrency")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bodies-per-second", type=int, default=6000,
                        help="pre-generated unique events per measured second")
    parser.add_argument("--process", action="store_true",
                        help="also process each event after the answer (claim + handler), as in production")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--pyspy", help="served mode: write py-spy's raw stacks of the bot to this file")
    parser.add_argument("--pyspy-scenario", default="mix")
    parser.add_argument("--serve", choices=["bare", "webhook"], help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve, args.port, args.database_url, args.process)
        return 0
    if args.generate:
        print(json.dumps(asyncio.run(_python_load(args.generate, Path(args.bodies), args.connections or 50,
                                                  args.duration))))
        return 0
    if args.mode == "served":
        args.connections = args.connections or 32
        return served_main(args)
    args.connections = args.connections or 50

    global PROCESS  # noqa: PLW0603 - a one-shot CLI run picks the process model for the whole bench
    PROCESS = args.process
    load = args.load if args.load != "auto" else ("wrk" if shutil.which("wrk") else "python")
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    from bot import db

    db.upgrade(database_url)  # background=False: the app does not upgrade by itself
    engine = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}-"
    print(f"load generator: {load} ({'wrk -t1' if load == 'wrk' else 'httpx/asyncio, separate process'}); "
          f"database: {engine}; uvicorn 1 worker on 127.0.0.1; {args.duration} s per measurement; "
          f"{os.cpu_count()} CPUs", flush=True)

    servers = {kind: start_server(kind, database_url, args.process, workdir) for kind in ("bare", "webhook")}
    rows: list[tuple[str, int, int, dict]] = []
    try:
        for run in range(1, args.runs + 1):
            for conns in (args.connections, args.idle_connections):
                n = args.bodies_per_second * args.duration
                tag = f"{prefix}{run}-{conns}-"
                bodies = workdir / f"bodies-{run}-{conns}.tsv"
                write_bodies(bodies, n, tag)
                for kind in ("bare", "webhook"):
                    wait_drained(database_url, prefix)
                    srv = servers[kind]
                    if load == "wrk":
                        result = run_wrk(srv.url, PATHS[kind], bodies, conns, args.duration, workdir)
                    else:
                        result = run_python_load(srv.url + "", PATHS[kind], bodies, conns, args.duration)
                    if kind == "webhook":
                        if result["requests"] > n:
                            print(f"warning: {result['requests']} requests > {n} unique bodies; "
                                  "raise --bodies-per-second", file=sys.stderr)
                        wait_drained(database_url, tag)
                        result["inbox_rows"] = inbox_counts(database_url, tag)[0]
                    rows.append((kind, run, conns, result))
                    print(f"  run {run} c={conns:<3} {kind:<8} {result['rps']:>8.0f} rps  "
                          f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                          f"non-2xx {result['non2xx']}" + (f"  inbox rows {result['inbox_rows']}"
                                                          if kind == "webhook" else ""), flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return report(rows, args, engine)


def report(rows: list, args: argparse.Namespace, engine: str) -> int:
    def pick(kind: str, conns: int) -> list[dict]:
        return [r for k, _run, c, r in rows if k == kind and c == conns]

    print()
    print(f"| {engine} | conns | bare rps | bare p50 | bare p99 | webhook rps | webhook p50 | webhook p99 | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios, idle_p99 = [], []
    for run in range(1, args.runs + 1):
        for conns in (args.connections, args.idle_connections):
            b = next(r for k, rr, c, r in rows if k == "bare" and rr == run and c == conns)
            w = next(r for k, rr, c, r in rows if k == "webhook" and rr == run and c == conns)
            ratio = w["rps"] / b["rps"]
            if conns == args.connections:
                ratios.append(ratio)
            else:
                idle_p99.append(w["p99"])
            print(f"| run {run} | {conns} | {b['rps']:.0f} | {b['p50']:.2f} ms | {b['p99']:.2f} ms | "
                  f"{w['rps']:.0f} | {w['p50']:.2f} ms | {w['p99']:.2f} ms | {ratio:.2f} |")
    non2xx = sum(r["non2xx"] for r in pick("webhook", args.connections) + pick("webhook", args.idle_connections))
    lost = sum(r["requests"] - r["non2xx"] - r["inbox_rows"] for _k, _run, _c, r in rows
               if _k == "webhook" and r["requests"] <= args.bodies_per_second * args.duration)
    r_ack = statistics.median(ratios)
    p99 = max(idle_p99)
    # Targets: the 0.35 on SQLite; the design file's 0.15 on PostgreSQL (a network round
    # trip per group commit).
    target = 0.35 if engine == "SQLite" else 0.15
    ok = r_ack >= target and p99 <= 50 and non2xx == 0
    print()
    print(f"P1 R_ack (median of {len(ratios)} runs at c={args.connections}) = {r_ack:.2f}  (target >= {target})")
    print(f"P2 ack p99 at c={args.idle_connections} (worst run) = {p99:.2f} ms  (target <= 50 ms)")
    print(f"webhook non-2xx: {non2xx}; answered 200 but not in the inbox: {max(lost, 0)}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


# ------------------------------------------------------------------ served mode
MIX_GROUPS = 20


def served_bodies(path: Path, n: int, scenario: str, cases: list[dict], tag: str) -> None:
    """`n` sealed requests; the mix interleaves 90 chatter, 7 commands and 3 clicks per hundred."""
    from bench import served as sv

    now = int(time.time())
    rng = random.Random(tag)
    block = ["chatter"] * 90 + ["command"] * 7 + ["click"] * 3
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            if i % 100 == 0:
                rng.shuffle(block)
            kind = block[i % 100] if scenario == "mix" else "chatter"
            if kind == "chatter":
                chat = f"oc_bench_{rng.randrange(200):05d}"
                mention = (f"ou_user_{rng.randrange(500)}", f"同事{rng.randrange(500)}") if i % 10 == 0 else None
                payload = sv.chatter(chat, f"ou_user_{rng.randrange(500)}", now, i, mention)
            elif kind == "command":
                case = cases[rng.randrange(len(cases))]
                payload = sv.command(case["chat"], "ou_lead_market", "/进度", now)
            else:
                case = cases[rng.randrange(len(cases))]
                payload = sv.click(case["chat"], case["clicker"], now, value={"a": "track.open", "c": case["case_id"]})
            payload["header"]["event_id"] = f"{tag}{i}"
            if kind != "click":
                payload["event"]["message"]["message_id"] = f"om_{tag}{i}"
            f.write(sv.seal_line(kind, payload, now))


def served_main(args: argparse.Namespace) -> int:
    from bench import served as sv
    from bench.bench_fanout import serve as serve_fake

    if not shutil.which("wrk"):
        raise SystemExit("served mode needs wrk (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-served-"))
    database_url = sv.prepare_db(args.database_url, workdir)
    engine = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    scenarios = ["chatter", "mix"] if args.scenario == "both" else [args.scenario]
    base, fake = serve_fake(200, "oc_bench_")
    children: list = []
    rows: list[dict] = []
    try:
        cases = sv.seed_cases(database_url, [f"oc_bench_{i:05d}" for i in range(MIX_GROUPS)])
        bot, bare = sv.start_bot(database_url, base, workdir), sv.start_bare(workdir)
        children += [bot, bare]
        time.sleep(2)  # the bot reads its identity and starts its ticks
        print(f"served: `python -m bot.cli serve` vs bare FastAPI on bot.server.serve; wrk -t1 -c{args.connections}; "
              f"{engine}; {args.duration} s per measurement; {os.cpu_count()} CPUs", flush=True)
        for run in range(1, args.runs + 1):
            for scenario in scenarios:
                tag = f"r{run}-{scenario}-{uuid.uuid4().hex[:6]}-"
                bodies = workdir / f"{tag}.tsv"
                served_bodies(bodies, args.bodies_per_second * args.duration, scenario, cases, tag)
                load = sv.uptime().split("load average:")[-1].strip()
                order = [("bare", bare), ("bot", bot)] if run % 2 else [("bot", bot), ("bare", bare)]
                result: dict = {"run": run, "scenario": scenario, "load": load}
                for kind, child in order:
                    spy = None
                    if args.pyspy and kind == "bot" and scenario == args.pyspy_scenario:
                        spy = subprocess.Popen(["py-spy", "record", "-p", str(child.proc.pid), "-d",
                                                str(args.duration), "-f", "raw", "-o", args.pyspy, "--nonblocking"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    cpu = child.cpu_seconds()
                    result[kind] = sv.run_wrk(child.url, bodies, args.connections, args.duration, workdir)
                    # CPU per request: the run and 3 s after it (the work after the answers, the outbox)
                    time.sleep(1 if kind == "bare" else 3)
                    result[kind]["cpu_ms"] = (child.cpu_seconds() - cpu) * 1000 / max(1, result[kind]["requests"])
                    if spy:
                        spy.wait(30)
                if scenario == "mix":  # the same mix again, each kind timed on its own
                    again = workdir / f"{tag}again.tsv"
                    served_bodies(again, args.bodies_per_second * args.duration, scenario, cases, tag + "g-")
                    result["kinds"] = sv.generate(bot.url + sv.WEBHOOK, again, args.connections,
                                                  args.duration)["kinds"]
                rows.append(result)
                b, w = result["bare"], result["bot"]
                line = (f"  run {run} {scenario:<7} bare {b['rps']:>7.0f} rps p99 {b['p99']:6.2f} ms | bot "
                        f"{w['rps']:>7.0f} rps p50 {w['p50']:6.2f} p99 {w['p99']:6.2f} p99.9 {w['p999']:6.1f} ms "
                        f"non-2xx {w['non2xx']} | ratio {w['rps'] / b['rps']:.2f} | load {load}\n"
                        f"      CPU per request: bot {w['cpu_ms']:.3f} ms, bare {b['cpu_ms']:.3f} ms")
                if "kinds" in result:
                    line += "\n      per kind: " + ", ".join(
                        f"{k} n={v['n']} p50 {v['p50']:.1f} p99 {v['p99']:.1f} max {v['max']:.0f} ms"
                        for k, v in sorted(result["kinds"].items()))
                print(line, flush=True)
        print(f"bot RSS at the end: {bot.rss_kb() / 1024:.0f} MB; {sv.uptime()}")
    finally:
        sv.stop(children, fake)
    errors = [line for line in (workdir / "bot.log").read_text().splitlines() if " ERROR " in line
              or "Traceback" in line]
    print(f"bot log: {len(errors)} error line(s)" + (f", first: {errors[0][:200]}" if errors else ""))
    shutil.rmtree(workdir, ignore_errors=True)
    return served_report(rows, engine)


def served_report(rows: list[dict], engine: str) -> int:
    import statistics as st

    print()
    print(f"| {engine} | run | load (1/5/15 min) | bare rps | bot rps | ratio | bot p50 | bot p99 | bot p99.9 | "
          "click p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for scenario in ("chatter", "mix"):
        mine = [r for r in rows if r["scenario"] == scenario]
        if not mine:
            continue
        for r in mine:
            click = r.get("kinds", {}).get("click", {}).get("p99")
            print(f"| {scenario} | {r['run']} | {r['load']} | {r['bare']['rps']:.0f} | {r['bot']['rps']:.0f} | "
                  f"{r['bot']['rps'] / r['bare']['rps']:.2f} | {r['bot']['p50']:.2f} ms | {r['bot']['p99']:.2f} ms | "
                  f"{r['bot']['p999']:.1f} ms | " + (f"{click:.1f} ms |" if click is not None else "– |"))
        ratio = st.median(r["bot"]["rps"] / r["bare"]["rps"] for r in mine)
        non2xx = sum(r["bot"]["non2xx"] + sum(k["non2xx"] for k in r.get("kinds", {}).values()) for r in mine)
        if scenario == "chatter":
            p99 = st.median(r["bot"]["p99"] for r in mine)
            good = ratio >= 0.5 and p99 <= 20 and non2xx == 0
            print(f"chatter: median ratio {ratio:.2f} (target ≥ 0.5), median p99 {p99:.2f} ms (≤ 20), "
                  f"non-2xx {non2xx}: {'PASS' if good else 'FAIL'}")
        else:
            click = st.median(r["kinds"]["click"]["p99"] for r in mine)
            good = ratio >= 0.35 and click <= 50 and non2xx == 0
            print(f"mix: median ratio {ratio:.2f} (target ≥ 0.35), median card-callback p99 {click:.1f} ms (≤ 50), "
                  f"non-2xx {non2xx}: {'PASS' if good else 'FAIL'}")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
