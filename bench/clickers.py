"""The people of bench_clicks, in their own process: each clicks on a connection of their own,
opened by their first click, and sends what Feishu sends (pre-sealed requests, raw HTTP/1.1 on
asyncio streams under uvloop), so that the timings are the bot's and not a client library's.

An HTTP client library in the benchmark's own interpreter adds what a burst measures: 20 httpx
clients posting their first request at once to the bare `{}` app took p50 13–20 ms and up to
46 ms on this machine with nothing else running; Feishu's servers are not on the bot's machine.

    python -m bench.clickers URL REQUESTS_FILE DURATION SEED

REQUESTS_FILE: JSON, one list per person of [kind, raw request] in the order they click (each
update form sealed with the version it will carry once the person's earlier updates landed).
Prints "ready" once the requests are read, then one JSON line: per kind, per "first" (everyone's
first click, at one instant) and "later", the latencies in ms; and "problems" (non-200 answers,
error or warning toasts).
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from bench.served import read_response, split_url


async def person(host: str, port: int, clicks: list[list[str]], until: float, out: dict[str, Any],
                 seed: int) -> None:
    rng = random.Random(seed)
    reader = writer = None
    for step, (kind, raw) in enumerate(clicks):
        if time.perf_counter() >= until:
            break
        start = time.perf_counter()
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        assert reader is not None
        writer.write(raw.encode())
        status, body = await read_response(reader)
        ms = (time.perf_counter() - start) * 1000
        out.setdefault(kind, []).append(ms)
        out.setdefault("first" if step == 0 else "later", []).append(ms)
        toast = json.loads(body).get("toast", {}) if status == 200 else {}
        if status != 200 or toast.get("type") in ("error", "warning"):
            out.setdefault("problems", []).append(f"{kind}: {status} {toast.get('content', '')[:60]}")
        await asyncio.sleep(rng.uniform(1.0, 3.0))
    if writer is not None:
        writer.close()


async def run(url: str, people: list[list[list[str]]], duration: float, seed: int) -> dict[str, Any]:
    host, port, _path = split_url(url)
    out: dict[str, Any] = {}
    until = time.perf_counter() + duration
    await asyncio.gather(*(person(host, port, clicks, until, out, seed + i)
                           for i, clicks in enumerate(people)))
    return out


def main() -> None:
    url, path, duration, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    with open(path, encoding="utf-8") as f:
        people = json.load(f)
    print("ready", flush=True)
    print(json.dumps(asyncio.run(run(url, people, duration, seed))), flush=True)


if __name__ == "__main__":
    main()
