"""What the tests over real loopback sockets share: a uvicorn server in a thread, and waiting for
something another thread or process does."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import uvicorn


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 10.0, every: float = 0.01) -> Any:
    """The first true value `pred` returns within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def serve_in_thread(app: Any, *, lifespan: str = "on") -> tuple[uvicorn.Server, threading.Thread, int]:
    """`app` on 127.0.0.1 on a free port; stop it with `server.should_exit = True` and a join."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn to start", every=0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]
