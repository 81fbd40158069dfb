"""`collab-bot ws`: events and card callbacks over Feishu's long connection (no public URL).

lark-oapi 1.7.5's `ws.Client` receives the frames; we take over right after it has read a
frame's payload: `_InboxHandler._do_without_validation(payload)` is what the client calls for
every `type=event` data frame (platform.md §2), and whatever it returns is acked back
base64(JSON(...)) — so a card callback returns our answer dict and an event returns None.
From there the payload takes the webhook's own path: `parse_event` → `bot.webhook.accept`
(inbox insert, then processing), run on the bot's event loop.

Threads: `ws.Client.start()` blocks and uses the module-level loop it captured at import
time, so it runs in its own thread with a private loop (`lark_oapi.ws.client.loop` replaced
before the client is built, platform.md gotcha 18). The handler runs on that thread and hands
work to the bot's loop with `asyncio.run_coroutine_threadsafe`, waiting a bounded time.

The process also serves `GET /healthz` (uvicorn, same `create_app` app, so the lifespan runs
the scheduler and the outbox). The webhook route is not served in this mode: the long
connection needs no Encrypt Key / Verification Token, so the route would be unauthenticated.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import sys
import threading
from contextlib import asynccontextmanager
from typing import Any, Callable

import lark_oapi as lark
import lark_oapi.ws.client as wsc
import uvicorn
from fastapi import FastAPI
from lark_oapi.event.dispatcher_handler import EventDispatcherHandler
from starlette.responses import JSONResponse

from bot import jsonsafe, texts
from bot.app import create_app, prepare_to_serve
from bot.envelope import CardAction, parse_event
from bot.security import Malformed
from bot.settings import Settings
from bot.webhook import accept, for_this_app

log = logging.getLogger(__name__)

# Feishu allows 3 s for a callback; answer a little before that even if the handler is slow.
CALLBACK_WAIT_SECONDS = 2.5
# Events only wait for the inbox insert; past this, ack 500 and let Feishu redeliver.
EVENT_WAIT_SECONDS = 2.5
WEBHOOK_PATH = "/feishu/events"


class DeliveryFailed(Exception):
    """Raised inside the SDK's frame handler: the SDK acks {"code":500} and Feishu redelivers."""


class _InboxHandler(EventDispatcherHandler):
    """An EventDispatcherHandler built with ("", "") whose only job is to hand the raw payload
    to the bot. No token or signature check here: the connection itself was authenticated
    with the app secret, and frames are plaintext."""

    def __init__(self, state: Any, bot_loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._encrypt_key, self._verification_token = "", ""
        self.state, self.bot_loop = state, bot_loop

    def _do_without_validation(self, payload: bytes) -> Any:  # called by ws.Client per event frame
        try:
            data = jsonsafe.loads(payload)
            if not isinstance(data, dict):
                raise Malformed("not an object")
            event = parse_event(data)
        except (ValueError, UnicodeDecodeError, Malformed) as exc:
            # Permanent: redelivering would fail the same way. Ack and move on.
            log.warning("unreadable long-connection payload: %s", type(exc).__name__)
            return None
        if event is None:
            return None  # a type we don't handle: ack so Feishu does not redeliver
        if not for_this_app(self.state.settings, event):
            log.warning("long-connection event for another app ignored")
            return None

        future = asyncio.run_coroutine_threadsafe(accept(self.state, data, event), self.bot_loop)
        callback = isinstance(event, CardAction)
        try:
            response = future.result(CALLBACK_WAIT_SECONDS if callback else EVENT_WAIT_SECONDS)
        except concurrent.futures.TimeoutError:
            # The work goes on (the inbox row is durable); only our wait ends.
            log.warning("event %s not answered in time", event.header.event_id)
            if callback:
                return {"toast": {"type": "info", "content": texts.CALLBACK_SLOW}}
            raise DeliveryFailed("inbox insert timed out") from None
        if response.status_code >= 500:
            raise DeliveryFailed(f"status {response.status_code}")  # DB down: let Feishu retry
        if callback:
            return json.loads(bytes(response.body))
        return None


class LongConnection:
    """Owns the `lark-ws` thread: start() from the bot's loop, stop() at shutdown."""

    def __init__(self, settings: Settings, *, on_fatal: Callable[[BaseException], None] = lambda exc: None,
                 log_level: lark.LogLevel = lark.LogLevel.INFO) -> None:
        self.settings = settings
        self.on_fatal = on_fatal
        self.log_level = log_level
        self.fatal: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._stopping = False
        self._built = threading.Event()

    def start(self, state: Any, bot_loop: asyncio.AbstractEventLoop) -> None:
        if self._stopping:
            return
        handler = _InboxHandler(state, bot_loop)
        self._thread = threading.Thread(target=self._run, args=(handler,), name="lark-ws", daemon=True)
        self._thread.start()
        self._built.wait(5)

    def _run(self, handler: _InboxHandler) -> None:
        loop = asyncio.new_event_loop()
        wsc.loop = loop                # 1.7.5: start() runs on this module-level loop
        asyncio.set_event_loop(loop)   # the client's ExpiringCache schedules on the current loop
        self._loop = loop
        try:
            client = lark.ws.Client(self.settings.feishu_app_id,
                                    self.settings.feishu_app_secret.get_secret_value(),
                                    event_handler=handler, domain=self.settings.feishu_base_url,
                                    log_level=self.log_level)
            client.on_reconnected = lambda: log.info("long connection re-established")
            self._client = client
        except BaseException as exc:  # noqa: BLE001
            self._built.set()
            self._fail(exc)
            return
        self._built.set()
        try:
            client.start()  # blocks until stop()
        except BaseException as exc:  # noqa: BLE001
            if not self._stopping:
                self._fail(exc)
        finally:
            self._close_loop(loop, client)

    def _fail(self, exc: BaseException) -> None:
        self.fatal = exc
        log.error("long connection failed: %s", exc)
        self.on_fatal(exc)

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop, client: Any) -> None:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            conn = client._conn  # noqa: SLF001 - lark-oapi's ws.Client has no public handle on its socket
            if conn is not None:
                loop.run_until_complete(asyncio.wait_for(conn.close(), 2))
        except BaseException:
            log.debug("closing the long connection", exc_info=True)
        finally:
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        if self._client is not None:
            self._client._auto_reconnect = False  # noqa: SLF001 - lark-oapi's only way to stop reconnecting
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # closed in between
        if self._thread is not None:
            self._thread.join(timeout)


class _NoWebhook:
    """ASGI guard: 404 for the webhook path (the router itself is shared, so we don't edit it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == WEBHOOK_PATH:
            await JSONResponse({"msg": "not found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def attach_long_connection(app: FastAPI, settings: Settings, *, wait_ready: bool = True,
                           **kw: Any) -> LongConnection:
    """Start the long connection inside the app's lifespan, once the bot is ready (pass
    wait_ready=False for an app built with background=False), and stop it before the bot
    shuts down; refuse the webhook path (see module docstring)."""
    conn = LongConnection(settings, **kw)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        async with inner(a) as value:
            state = a.state.bot

            async def connect() -> None:
                if wait_ready:
                    # Schema upgraded and the crash-recovery sweep done: that sweep must not
                    # race a callback being answered inline.
                    await state.ready.wait()
                conn.start(state, asyncio.get_running_loop())

            state.spawn(connect())
            try:
                yield value
            finally:
                await asyncio.to_thread(conn.stop)

    app.router.lifespan_context = lifespan
    app.add_middleware(_NoWebhook)
    app.state.longconn = conn
    return conn


class LongConnectionServer:
    """uvicorn serving /healthz with the bot's lifespan, plus the long connection."""

    def __init__(self, settings: Settings, *, host: str, port: int, **create_kw: Any) -> None:
        self.app = create_app(settings, **create_kw)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="info",
                                                    lifespan="on"))
        self.conn = attach_long_connection(self.app, settings, on_fatal=lambda exc: self.stop(),
                                           wait_ready=create_kw.get("background", True))

    def run(self) -> int:
        self.server.run()
        if self.conn.fatal is not None:
            return 1
        return 0

    def stop(self) -> None:
        self.server.should_exit = True


def run_long_connection(settings: Settings, *, host: str, port: int) -> int:

    server = LongConnectionServer(settings, host=host, port=port)
    prepare_to_serve()  # as collab-bot serve
    code = server.run()
    if code:
        print(texts.LONGCONN_FAILED.format(error=server.conn.fatal), file=sys.stderr)
    return code
