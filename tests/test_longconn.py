"""`collab-bot ws` for real: lark-oapi's ws.Client (in its thread) against a local fake of
Feishu's long-connection service — POST /callback/ws/endpoint on a loopback HTTP server, then a
websocket sending protobuf data frames — with the bot served by uvicorn on loopback and the
Open API faked through httpx.MockTransport. Everything is on 127.0.0.1 and every wait is bounded."""
from __future__ import annotations

import base64
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import httpx
import pytest
from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from sqlalchemy import func, select
from websockets.sync.server import serve as ws_serve

from bot.actions import ActionValue
from bot.longconn import LongConnectionServer
from bot.models import InboxEvent
from bot.routing import CallbackAnswer
from feishu_fake import FakeFeishu
from feishu_fake import events as ev
from handlers import build_router
from tests import loopback
from tests.driver import APP_ID, APP_SECRET, CHAT, LEAD, NAMES, TENANT, VERIFICATION_TOKEN, card_text, make_settings

WAIT = 10.0  # upper bound for any single wait; normally each takes milliseconds
ECHO = "test.ws_echo"


def wait_until(pred: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    return loopback.wait_until(pred, what, timeout)


class FakeLongConnService:
    """Feishu's side of the long connection: the endpoint API and the websocket."""

    def __init__(self, refuse: dict | None = None) -> None:
        self.connections: queue.Queue = queue.Queue()
        self.endpoint_requests: list[dict] = []
        self._done = threading.Event()
        self.refuse = refuse
        self.ws = ws_serve(self._on_connect, "127.0.0.1", 0)
        ws_port = self.ws.socket.getsockname()[1]
        service = self

        class Endpoint(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.endpoint_requests.append({"path": self.path, "body": body})
                answer = json.dumps(service.refuse or {"code": 0, "data": {
                    "URL": f"ws://127.0.0.1:{ws_port}/ws?device_id=d&service_id=7",
                    "ClientConfig": {"ReconnectCount": -1, "ReconnectInterval": 120,
                                     "ReconnectNonce": 30, "PingInterval": 120}}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self._threads = [threading.Thread(target=self.http.serve_forever, daemon=True),
                         threading.Thread(target=self.ws.serve_forever, daemon=True)]
        for t in self._threads:
            t.start()

    def _on_connect(self, conn) -> None:
        self.connections.put(conn)
        self._done.wait(WAIT * 3)  # keep the socket open while the test talks on it

    def close(self) -> None:
        self._done.set()
        self.http.shutdown()
        self.http.server_close()
        self.ws.shutdown()
        for t in self._threads:
            t.join(WAIT)


_seq = iter(range(1, 10**6))


def deliver(conn, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one event frame as Feishu does and return the decoded ack payload."""
    msg_id = f"msg_{next(_seq)}"
    frame = Frame(SeqID=1, LogID=1, service=7, method=1,
                  payload=json.dumps(payload, ensure_ascii=False).encode())
    for key, value in (("type", "event"), ("message_id", msg_id), ("sum", "1"), ("seq", "0"),
                       ("trace_id", "trace-" + msg_id)):
        header = frame.headers.add()
        header.key, header.value = key, value
    conn.send(frame.SerializeToString())
    deadline = time.monotonic() + WAIT
    while True:
        raw = conn.recv(timeout=max(0.01, deadline - time.monotonic()))
        ack = Frame()
        ack.ParseFromString(raw)
        headers = {h.key: h.value for h in ack.headers}
        if ack.method == 1 and headers.get("message_id") == msg_id:  # skip the client's pings
            return json.loads(ack.payload)


def answer_of(ack: dict[str, Any]) -> dict[str, Any]:
    assert ack["code"] == 200, ack
    return json.loads(base64.b64decode(ack["data"]))


@pytest.fixture
def longconn(database_url, clock):
    service = FakeLongConnService()
    fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, clock=clock, tenant_key=TENANT)
    fake.add_chat(CHAT, members=list(NAMES.items()))
    sent = threading.Event()

    def open_api(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if request.url.path == "/open-apis/im/v1/messages" and response.status_code == 200:
            sent.set()
        return response

    clicks: list[tuple[str, ActionValue]] = []
    router = build_router()

    @router.action(ECHO)
    def echo(ctx, event, value: ActionValue) -> CallbackAnswer:
        clicks.append((ctx.actor, value))
        return CallbackAnswer(toast=f"收到 {value.row_id}", card={"schema": "2.0", "body": {"elements": []}})

    settings = make_settings(database_url, feishu_base_url=service.base_url)
    server = LongConnectionServer(settings, host="127.0.0.1", port=0, clock=clock,
                                  transport=httpx.MockTransport(open_api), router=router, pacer=None)
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", server.run()), daemon=True)
    thread.start()
    try:
        conn = service.connections.get(timeout=WAIT)
        env = dict(service=service, fake=fake, sent=sent, clicks=clicks, server=server, conn=conn,
                   state=server.app.state.bot)
        yield env
    finally:
        server.stop()
        thread.join(WAIT)
        service.close()
    assert not thread.is_alive()
    assert result.get("code") == 0
    assert not any(t.name == "lark-ws" and t.is_alive() for t in threading.enumerate())


def _common(clock) -> dict[str, Any]:
    return {"app_id": APP_ID, "tenant_key": TENANT, "token": VERIFICATION_TOKEN,
            "create_ms": int(clock.now().timestamp() * 1000)}


def _inbox_count(state, **where: str) -> int:
    with state.factory() as session:
        query = select(func.count()).select_from(InboxEvent)
        for key, value in where.items():
            query = query.where(getattr(InboxEvent, key) == value)
        return session.scalar(query)


def test_message_over_long_connection_posts_card_once(longconn, clock):
    conn, fake, state = longconn["conn"], longconn["fake"], longconn["state"]
    assert longconn["service"].endpoint_requests[0]["body"]["AppID"] == APP_ID
    fake.post_user_message(CHAT, LEAD, "/帮助")
    event = ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text="/帮助", **_common(clock))

    first, again = deliver(conn, event), deliver(conn, event)
    assert first["code"] == 200 and again["code"] == 200
    assert "data" not in first  # an event ack carries no answer

    assert longconn["sent"].wait(WAIT), "the help card was never sent"
    # The same message redelivered under a new event_id (long-connection backfill) is also dropped.
    backfill = json.loads(json.dumps(event))
    backfill["header"]["event_id"] = "backfill-" + event["header"]["event_id"]
    assert deliver(conn, backfill)["code"] == 200

    wait_until(lambda: _inbox_count(state, status="done") == 1, "the event to be processed")
    assert _inbox_count(state) == 1
    cards = [m for m in fake.visible(CHAT) if m["sender"] == "bot" and m["msg_type"] == "interactive"]
    assert len(cards) == 1
    assert "使用说明" in card_text(cards[0]["content"])
    assert len(fake.calls_to("/open-apis/im/v1/messages", "POST")) == 1

    health = httpx.get(f"http://127.0.0.1:{_port(longconn['server'])}/healthz", timeout=WAIT)
    assert health.status_code == 200 and health.json() == {"database": "ok"}


def test_card_callback_ack_carries_our_answer_once(longconn, clock):
    conn, clicks = longconn["conn"], longconn["clicks"]
    value = ActionValue(action=ECHO, case_id=None, version=None, row_id=42).dump()
    payload = ev.card_action_event(chat_id=CHAT, message_id="om_clicked", operator_open_id=LEAD,
                                   value=value, **_common(clock))

    answer = answer_of(deliver(conn, payload))
    assert answer == {"toast": {"type": "success", "content": "收到 42"},
                      "card": {"type": "raw", "data": {"schema": "2.0", "body": {"elements": []}}}}
    assert clicks == [(LEAD, ActionValue.parse(value))]

    assert answer_of(deliver(conn, payload)) == {}  # redelivered: no second effect
    assert len(clicks) == 1
    assert _inbox_count(longconn["state"], event_type="card.action.trigger") == 1


def test_unknown_and_unreadable_frames_are_acked_and_ignored(longconn, clock):
    conn, state = longconn["conn"], longconn["state"]
    other = {"schema": "2.0", "header": {"event_id": "e-other", "event_type": "im.message.reaction.created_v1",
                                         "tenant_key": TENANT, "app_id": APP_ID, "create_time": "1"},
             "event": {}}
    ack = deliver(conn, other)
    assert ack["code"] == 200 and "data" not in ack
    garbled = deliver(conn, {"schema": "2.0", "header": "not an object"})
    assert garbled["code"] == 200
    assert _inbox_count(state) == 0


def test_webhook_route_is_not_served_in_long_connection_mode(longconn):
    port = _port(longconn["server"])
    resp = httpx.post(f"http://127.0.0.1:{port}/feishu/events", content=b"{}", timeout=WAIT)
    assert resp.status_code in (404, 405)


def _port(server: LongConnectionServer) -> int:
    uv = server.server
    wait_until(lambda: uv.started, "uvicorn to start")
    return uv.servers[0].sockets[0].getsockname()[1]


def test_refused_credentials_stop_the_process_with_an_error(database_url, clock):
    # What Feishu answers when the app id / secret are wrong: a client error, not retried.
    service = FakeLongConnService(refuse={"code": 10003, "msg": "invalid app_secret"})
    settings = make_settings(database_url, feishu_base_url=service.base_url)
    server = LongConnectionServer(settings, host="127.0.0.1", port=0, clock=clock, pacer=None,
                                  transport=httpx.MockTransport(FakeFeishu(app_id=APP_ID).handle))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", server.run()), daemon=True)
    thread.start()
    try:
        thread.join(WAIT)
        assert not thread.is_alive(), "the server kept running after a refused connection"
    finally:
        server.stop()
        service.close()
    assert result["code"] == 1
    assert "invalid app_secret" in str(server.conn.fatal)
    assert service.connections.empty()
