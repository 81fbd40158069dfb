"""The front door over a real socket (uvicorn on loopback): a refused request leaves the
keep-alive connection usable, and a client that hangs up mid-body is one log line (S12, S13)."""
from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest

from bot.app import create_app
from bot.security import seal
from feishu_fake import FakeFeishu
from feishu_fake import events as ev
from tests.driver import APP_ID, APP_SECRET, CHAT, ENCRYPT_KEY, LEAD, TENANT, VERIFICATION_TOKEN, make_settings
from tests.loopback import serve_in_thread


@pytest.fixture
def served(database_url, clock):
    fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, clock=clock, tenant_key=TENANT)
    fake.add_chat(CHAT, members=[(LEAD, "陈静")])
    app = create_app(make_settings(database_url), clock=clock, transport=httpx.MockTransport(fake.handle),
                     background=False, pacer=None)
    server, thread, port = serve_in_thread(app)
    try:
        yield port, clock
    finally:
        server.should_exit = True
        thread.join(10)


def _request(body: bytes, headers: dict) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST /feishu/events HTTP/1.1\r\nHost: bot\r\nContent-Length: {len(body)}\r\n{head}\r\n"
            ).encode() + body


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ")[1]), rest[:length]


def _msg(clock, **kw) -> dict:
    return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text="/帮助", app_id=APP_ID, tenant_key=TENANT,
                            token=VERIFICATION_TOKEN, create_ms=int(clock.now().timestamp() * 1000), **kw)


def test_keep_alive_connection_survives_a_refused_request(served):
    port, clock = served
    hostile = _msg(clock)
    hostile["event"]["message"]["mentions"] = 5
    ts = int(clock.now().timestamp())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for payload, expected in ((hostile, 400), (_msg(clock), 200), ({"x": [[[[]]]]}, 401)):
            body, headers = seal(payload, encrypt_key=ENCRYPT_KEY, timestamp=ts) if "x" not in payload \
                else (json.dumps(payload).encode(), {"Content-Type": "application/json"})
            sock.sendall(_request(body, headers))
            status, _ = _read_response(sock)
            assert status == expected
        body, headers = seal(_msg(clock), encrypt_key=ENCRYPT_KEY, timestamp=ts)
        sock.sendall(_request(body, headers))
        assert _read_response(sock)[0] == 200  # the same connection, after a 400 and a 401


def test_client_hanging_up_mid_body_is_logged_in_one_line(served, caplog):
    port, clock = served
    caplog.set_level(logging.INFO)
    body, headers = seal(_msg(clock), encrypt_key=ENCRYPT_KEY, timestamp=int(clock.now().timestamp()))
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(_request(body, headers)[:-len(body) // 2])  # half the body, then hang up
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and \
            sum("hung up" in r.getMessage() for r in caplog.records) < 3:
        time.sleep(0.05)
    hung = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert len(hung) == 3
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert all("\n" not in r.getMessage() for r in hung)
