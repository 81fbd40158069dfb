"""S9: the webhook refuses large bodies itself (uvicorn/starlette have no cap)."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.models import InboxEvent

LIMIT = 64 * 1024


def _inbox_rows(world) -> int:
    with world.state.factory() as session:
        return session.scalar(select(func.count()).select_from(InboxEvent))


def _asgi_post(world, headers: dict[str, str], chunks: int, chunk: int = 4096) -> tuple[int, int]:
    """POST straight into the ASGI app and count how many body bytes it pulled."""
    pulled = 0
    status = 0

    async def call() -> None:
        left = chunks

        async def receive():
            nonlocal pulled, left
            if left == 0:
                return {"type": "http.request", "body": b"", "more_body": False}
            left -= 1
            pulled += chunk
            return {"type": "http.request", "body": b"x" * chunk, "more_body": left > 0}

        async def send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/feishu/events", "raw_path": b"/feishu/events", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        await world.app(scope, receive, send)

    world.http.portal.call(call)
    return status, pulled


def test_declared_length_over_the_cap_is_refused_before_reading(world):
    status, pulled = _asgi_post(world, {"content-type": "application/json",
                                        "content-length": str(65 * 1024)}, chunks=17)
    assert status == 413
    assert pulled == 0
    # and through HTTP, with the answer body
    resp = world.http.post("/feishu/events", content=b"x" * (65 * 1024),
                           headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json() == {"msg": "payload too large"}
    assert _inbox_rows(world) == 0


def test_chunked_body_is_read_only_up_to_the_cap(world):
    status, pulled = _asgi_post(world, {"content-type": "application/json"}, chunks=256)  # 1 MiB
    assert status == 413
    assert LIMIT < pulled <= LIMIT + 4096


def test_chunked_body_without_length_is_cut_off_after_the_cap(world):
    sent: list[int] = []

    def body():
        for _ in range(256):  # 1 MiB in 4 KiB chunks, no Content-Length: chunked
            sent.append(4096)
            yield b"x" * 4096

    resp = world.http.post("/feishu/events", content=body(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json() == {"msg": "payload too large"}
    assert _inbox_rows(world) == 0


def test_body_just_under_the_cap_is_read_and_judged_on_its_merits(world):
    resp = world.http.post("/feishu/events", content=b"{" + b" " * (LIMIT - 2) + b"}",
                           headers={"Content-Type": "application/json"})
    assert resp.status_code == 401  # read whole, then refused as unsigned — not 413
