"""P1/P2 (reliability-and-performance.md §4): throughput and ack latency of the full webhook path
— signed, encrypted `im.message.receive_v1` events with unique event_ids, decrypted, verified,
parsed and inserted into the inbox before the 200 — as a ratio to a bare FastAPI endpoint
returning {}, both served by the same uvicorn config (1 worker, 127.0.0.1), measured side by side.

    python bench/bench_webhook.py                       # SQLite (temp file), wrk if installed
    python bench/bench_webhook.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    python bench/bench_webhook.py --load python         # force the Python load generator

The webhook app is `create_app(..., background=False)`: no scheduler ticks and no outbox sender,
but each new event is still processed after the answer as in production (claim the inbox row,
run the handler); the messages are ordinary chatter, so the handler itself is cheap. Before
every measurement the benchmark waits until the inbox has no pending rows, so the work left
over from one measurement does not run during the next. PostgreSQL: rows are only added (event ids
are prefixed `bench-<run>-`); nothing is deleted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
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

LUA = r"""
local reqs, idx = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local ts, nonce, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", args[2], {
      ["Content-Type"] = "application/json",
      ["X-Lark-Request-Timestamp"] = ts,
      ["X-Lark-Request-Nonce"] = nonce,
      ["X-Lark-Signature"] = sig}, body)
  end
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
"""


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
            app.state.bot.dispatcher.process = lambda event_id: None
    from bot.app import settle_memory

    settle_memory()  # as `collab-bot serve` does before serving (both apps, for a fair ratio)
    uvicorn.Server(uvicorn_config(app, port)).run()


class Server:
    def __init__(self, kind: str, database_url: str, process: bool) -> None:
        self.kind, self.port = kind, free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(self.port),
                                      "--database-url", database_url] + (["--process"] if process else []),
                                     cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"{kind} server exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise SystemExit(f"{kind} server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ bodies
def write_bodies(path: Path, n: int, prefix: str) -> None:
    from bot.security import seal
    from feishu_fake import events as ev

    now = int(time.time())
    with path.open("w") as f:
        for i in range(n):
            payload = ev.message_event(chat_id=CHAT, sender_open_id="ou_bench_user", text="大家早上好，今天继续推进",
                                       app_id=APP_ID, tenant_key=TENANT, token=TOKEN, create_ms=now * 1000,
                                       event_id=f"{prefix}{i}", message_id=f"om_{prefix}{i}")
            body, h = seal(payload, encrypt_key=ENCRYPT_KEY, timestamp=now)
            f.write(f"{h['X-Lark-Request-Timestamp']}\t{h['X-Lark-Request-Nonce']}\t"
                    f"{h['X-Lark-Signature']}\t{body.decode()}\n")


# ------------------------------------------------------------------ load generators
def run_wrk(url: str, path: str, bodies: Path, connections: int, duration: int, workdir: Path) -> dict:
    script = workdir / "bodies.lua"
    script.write_text(LUA)
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

    lines = [line.rstrip("\n").split("\t", 3) for line in bodies.open()]
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
    parser.add_argument("--database-url", default="")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=50, help="P1 concurrency")
    parser.add_argument("--idle-connections", type=int, default=4, help="P2 concurrency")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--bodies-per-second", type=int, default=6000,
                        help="pre-generated unique events per measured second")
    parser.add_argument("--process", action="store_true",
                        help="also process each event after the answer (claim + handler), as in production")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--serve", choices=["bare", "webhook"], help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve, args.port, args.database_url, args.process)
        return 0
    if args.generate:
        print(json.dumps(asyncio.run(_python_load(args.generate, Path(args.bodies), args.connections,
                                                  args.duration))))
        return 0

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

    servers = {kind: Server(kind, database_url, args.process) for kind in ("bare", "webhook")}
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


if __name__ == "__main__":
    raise SystemExit(main())
