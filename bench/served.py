"""What the served-bot benchmarks share: the bot started exactly as `collab-bot serve` starts it
(its own process, `python -m bot.cli serve`, settings from the environment, background work on,
the shipped logging), a bare FastAPI `{}` app on the same server stack (bot.server.serve with the
same limits and logging), the fake Open API in its own process, sealed event bodies, wrk, and a
load generator that times each kind of request separately.

    python -m bench.served --generate URL --bodies FILE --connections 32 --duration 10 [--rate 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP_ID, APP_SECRET, TENANT = "cli_bench", "bench-secret", "tenant_bench"  # bench_fanout's fake
ENCRYPT_KEY, TOKEN = "bench-encrypt-key", "bench-verification-token"
WEBHOOK = "/feishu/events"

# wrk: one pre-sealed request per line, "kind \t timestamp \t nonce \t signature \t body"; the
# summary adds p99.9 and max (wrk's own table stops at p99).
LUA = r"""
local reqs, idx = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local kind, ts, nonce, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
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
function done(summary, latency, requests)
  io.write(string.format("P999_US %d\nMAX_US %d\n", latency:percentile(99.9), latency.max))
end
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ processes
class Child:
    """A server in its own process, stopped with SIGTERM (as a service manager stops it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path, health: str) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.proc = subprocess.Popen(argv + ["--port", str(self.port)], cwd=workdir, env={**os.environ, **env},
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + health, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited with {self.proc.returncode}; see {self.log}:\n"
                                 + self.log.read_text()[-2000:])
            time.sleep(0.1)
        raise SystemExit(f"{name} did not start; see {self.log}")

    def pids(self) -> list[int]:
        """The process and its children (`collab-bot serve`'s two helper processes)."""
        pids = [self.proc.pid]
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
        return pids

    def rss_kb(self) -> int:
        """Resident memory of the process and its helpers together."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its helpers have used (all their threads): per
        request it does not depend on how busy the machine is, as the rates and latencies do."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def bot_env(database_url: str, base_url: str) -> dict[str, str]:
    return {"FEISHU_APP_ID": APP_ID, "FEISHU_APP_SECRET": APP_SECRET, "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
            "FEISHU_VERIFICATION_TOKEN": TOKEN, "FEISHU_BASE_URL": base_url, "DATABASE_URL": database_url}


def start_bot(database_url: str, base_url: str, workdir: Path) -> Child:
    """`collab-bot serve` itself (the console script runs bot.cli.main)."""
    return Child("bot", [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"],
                 bot_env(database_url, base_url), workdir, "/healthz")


def start_bare(workdir: Path) -> Child:
    return Child("bare", [sys.executable, "-m", "bench.served", "--serve-bare"],
                 {"PYTHONPATH": str(ROOT)}, workdir, "/healthz")


def serve_bare(port: int) -> None:
    """A FastAPI app returning {} on the server `collab-bot serve` runs, with its logging."""
    from fastapi import FastAPI

    from bot.app import settle_memory
    from bot.server import Limits, serve
    from bot.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(_env_file=None)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(WEBHOOK)
    async def bare() -> dict:
        return {}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {}
    settle_memory()
    serve(app, host="127.0.0.1", port=port, limits=Limits.from_settings(settings), access_log=settings.access_log)


def prepare_db(url: str, workdir: Path) -> str:
    """A scratch database: SQLite in the temp dir, or the given PostgreSQL one emptied first."""
    from bench.bench_fanout import prepare_db as fresh

    return fresh(url or None, workdir)


# ------------------------------------------------------------------ events
def seal_line(kind: str, payload: dict, now: int) -> str:
    from bot.security import seal

    body, h = seal(payload, encrypt_key=ENCRYPT_KEY, timestamp=now)
    return (f"{kind}\t{h['X-Lark-Request-Timestamp']}\t{h['X-Lark-Request-Nonce']}\t"
            f"{h['X-Lark-Signature']}\t{body.decode()}\n")


def common(now: int) -> dict[str, Any]:
    return {"app_id": APP_ID, "tenant_key": TENANT, "token": TOKEN, "create_ms": now * 1000}


CHATTER = ("大家早上好，今天继续推进", "收到，我下午看一下", "这个页面的图片还要再换一版吗", "好的👌",
           "会议室改到 3 楼了", "我先去吃饭，回来再说")


def chatter(chat: str, user: str, now: int, i: int, mention: tuple[str, str] | None = None) -> dict:
    from feishu_fake import events as ev

    text, mentions = CHATTER[i % len(CHATTER)], None
    if mention:  # people mention each other: the bot learns display names from it
        text, mentions = "@_user_1 " + text, [{"key": "@_user_1", "open_id": mention[0], "name": mention[1]}]
    return ev.message_event(chat_id=chat, sender_open_id=user, text=text, mentions=mentions, **common(now))


def command(chat: str, user: str, text: str, now: int) -> dict:
    from feishu_fake import events as ev

    return ev.message_event(chat_id=chat, sender_open_id=user, text=text, **common(now))


def click(chat: str, user: str, now: int, *, value: dict | None = None, name: str | None = None,
          form: dict | None = None, message_id: str = "om_bench_card") -> dict:
    from feishu_fake import events as ev

    return ev.card_action_event(chat_id=chat, message_id=message_id, operator_open_id=user, value=value,
                                form_value=form, name=name, tag="button", **common(now))


# ------------------------------------------------------------------ cases that exist
def seed_cases(database_url: str, chats: list[str]) -> list[dict]:
    """One case in step 5 (执行跟踪) per group, written through the test suite's case factory:
    departments, members, a published plan with two tasks, the second owned by the group's
    clicker `ou_clicker_<i>`. Returns, per group, the ids a click needs."""
    from datetime import datetime, timedelta, timezone

    from bot import db
    from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published

    engine = db.make_engine(database_url)
    factory = db.make_sessionmaker(engine)
    now = datetime.now(timezone.utc)
    out = []
    try:
        for i, chat in enumerate(chats):
            clicker = f"ou_clicker_{i}"
            case_id = make_case_at_step4(factory, now=now, title=f"协作问题 {i}", tenant_key=TENANT, chat_id=chat)
            tasks = [TaskSpec("完成用户数据加密接口开发", "ou_dev_tech", now, now + timedelta(days=2)),
                     TaskSpec("页面适配", clicker, now, now + timedelta(days=5), "适配稿通过评审", status="doing",
                              progress=10)]
            ids = make_plan_published(factory, case_id, now=now, tasks=tasks)
            out.append({"chat": chat, "case_id": case_id, "clicker": clicker, "task_id": ids[1]})
    finally:
        engine.dispose()
    return out


def post_case_cards(bot_url: str, database_url: str, cases: list[dict], timeout: float = 60) -> None:
    """Each seeded case gets its live case card the way a group's does: someone types `/进度`
    (through the served webhook) and the bot posts the card. The case factory writes no card,
    and without one a case's first progress update posts a new case card instead of redrawing
    the live one: a click no real group makes."""
    import httpx
    from sqlalchemy import func, select

    from bot import db
    from bot.models import Case
    from bot.security import seal

    now = int(time.time())
    with httpx.Client(timeout=10) as client:
        for case in cases:
            body, headers = seal(command(case["chat"], "ou_lead_market", "/进度", now), encrypt_key=ENCRYPT_KEY,
                                 timestamp=now)
            client.post(bot_url + WEBHOOK, content=body, headers={**headers, "Content-Type": "application/json"}
                        ).raise_for_status()
    engine = db.make_engine(database_url)
    ids = [case["case_id"] for case in cases]
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                posted = conn.scalar(select(func.count()).select_from(Case).where(
                    Case.id.in_(ids), Case.card_message_id.is_not(None)))
            if posted == len(ids):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"only {posted} of {len(ids)} case cards were posted in {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ wrk
def run_wrk(url: str, bodies: Path, connections: int, duration: int, workdir: Path) -> dict:
    script = workdir / "served.lua"
    script.write_text(LUA)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                          url + WEBHOOK, "--", str(bodies), WEBHOOK],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "p999": int(re.search(r"P999_US (\d+)", out).group(1)) / 1000,
            "max": int(re.search(r"MAX_US (\d+)", out).group(1)) / 1000,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1).strip() if errors else ""}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if m is None:
        raise SystemExit(f"cannot read wrk latency {value!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]


# ------------------------------------------------------------------ a load generator that times kinds
def generate_cmd(url: str, bodies: Path, connections: int, duration: float, rate: float | None = None,
                 count: int | None = None) -> list[str]:
    return ([sys.executable, "-m", "bench.served", "--generate", url, "--bodies", str(bodies),
             "--connections", str(connections), "--duration", str(duration)]
            + (["--rate", str(rate)] if rate else []) + (["--count", str(count)] if count else []))


def generate(url: str, bodies: Path, connections: int, duration: float, rate: float | None = None,
             count: int | None = None) -> dict:
    """In its own process (it must not share the server's interpreter)."""
    out = subprocess.run(generate_cmd(url, bodies, connections, duration, rate, count), capture_output=True,
                         text=True, timeout=duration + 120, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def generate_started(proc: subprocess.Popen, settle: float = 1.0) -> None:
    """Wait until a generator started with `generate_cmd` (stdout piped) is sending, then `settle`
    seconds more, so that what is measured next runs under the load at its rate, not under the
    generator's own start (reading its bodies, opening its connections)."""
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"the load generator did not start: {line!r}")
    time.sleep(settle)


def generated(proc: subprocess.Popen, timeout: float) -> dict:
    """What a generator started in the background (`generate_cmd`, stdout piped) reported."""
    return json.loads(proc.communicate(timeout=timeout)[0].strip().splitlines()[-1])


def stop(children: list["Child | None"], fake: subprocess.Popen) -> None:
    """The servers a benchmark started (as a service manager stops them), then the fake Open API."""
    for child in children:
        if child is not None:
            child.stop()
    fake.terminate()
    fake.wait(10)


def split_url(url: str) -> tuple[str, int, str]:
    """http://host:port/path -> (host, port, path)."""
    m = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    assert m, url
    return m.group(1), int(m.group(2)), m.group(3)


def raw_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A POST as Feishu sends it, as bytes on the wire (HTTP/1.1, keep-alive)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    return int(head[9:12]), await reader.readexactly(length)


def _requests(bodies: Path, host: str, port: int, path: str) -> list[tuple[str, bytes]]:
    out = []
    for line in bodies.open(encoding="utf-8"):
        kind, ts, nonce, sig, body = line.rstrip("\n").split("\t", 4)
        headers = {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
                   "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sig}
        out.append((kind, raw_request(host, port, path, headers, body.encode())))
    return out


async def _generate(url: str, bodies: Path, connections: int, duration: float, rate: float | None,
                    count: int | None = None) -> dict:
    host, port, path = split_url(url)
    reqs = _requests(bodies, host, port, path)
    latencies: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    counter = iter(range(10 ** 9))
    links = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(connections)))
    print("ready", flush=True)  # bodies read, connections open: the load starts now (generate_started)
    began = time.perf_counter()
    deadline = began + duration

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            i = next(counter)
            if count is not None and i >= count:
                break
            if rate:
                due = began + i / rate
                if due > deadline:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            elif time.perf_counter() >= deadline:
                break
            kind, raw = reqs[i % len(reqs)]
            start = time.perf_counter()
            writer.write(raw)
            status, _body = await read_response(reader)
            latencies.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
            if status >= 300:
                statuses[kind] = statuses.get(kind, 0) + 1
        writer.close()

    await asyncio.gather(*(worker(reader, writer) for reader, writer in links))
    elapsed = time.perf_counter() - began
    result: dict[str, Any] = {"rps": sum(len(v) for v in latencies.values()) / elapsed, "kinds": {}}
    for kind, values in latencies.items():
        values.sort()
        result["kinds"][kind] = {"n": len(values), "p50": values[len(values) // 2],
                                 "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
                                 "max": values[-1], "over_1s": sum(v > 1000 for v in values),
                                 "non2xx": statuses.get(kind, 0)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve-bare", action="store_true")
    ap.add_argument("--port", type=int)
    ap.add_argument("--generate")
    ap.add_argument("--bodies")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--count", type=int, default=None, help="stop after this many requests")
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.port)
        return
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    random.seed(1)
    print(json.dumps(asyncio.run(_generate(args.generate, Path(args.bodies), args.connections, args.duration,
                                           args.rate, args.count))))


if __name__ == "__main__":
    main()
