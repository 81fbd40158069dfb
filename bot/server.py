"""Serving the webhook: uvicorn (uvloop + httptools) with slow and stalled clients cut off (S13).

uvicorn has a keep-alive timeout but none for reading a request: a client that sends its headers
one byte every few seconds holds a connection for ever, and `limit_concurrency` counts such
connections, so a thousand of them turned every legitimate request into a 503. `GuardedHttp` is
uvicorn's own httptools protocol with, per connection:

- a header deadline: the request line and headers must be complete `header_timeout` seconds after
  the connection opened or, on a kept-alive connection, after the request's first byte;
- a body deadline: the body must be complete `body_timeout` seconds after the headers;
  either deadline answers 408 (when no answer is under way) and closes the connection;
- a cap per client address (the TCP peer): connections beyond `max_per_client` are closed at
  once. Behind a reverse proxy every client has the proxy's address: set it to 0 there;
- a cap on all connections: at `max_connections` a new connection closes one that is waiting for
  its client (slow headers or body, or idle keep-alive): the longest-waiting one of the address
  holding the most waiting connections, so one flooding address cannot push out everybody else's
  fresh connections (the oldest of all when no address holds more than one); only when none is
  waiting is the new one refused;
- `limit_concurrency` counts requests being handled (body received, answer not sent), never the
  connections still sending — so held slow connections cannot make the server answer 503.

The timers are armed lazily: a request that arrives whole in one read (every webhook call) arms
none. Cut connections are reported in one summary log line at most every 10 s.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import time
from asyncio import TimerHandle
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.settings import Settings

log = logging.getLogger(__name__)

_IDLE, _HEAD, _BODY = 0, 1, 2
_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout")
REPORT_EVERY = 10.0  # seconds between two summary lines about cut connections
FD_RESERVE = 256     # descriptors kept for the database, outbound HTTP, logs…


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 5.0
    body_timeout: float = 10.0
    max_per_client: int = 64      # 0: no cap per address
    max_connections: int = 4096   # 0: no cap
    limit_concurrency: int | None = 1000  # requests being handled; beyond: 503

    @classmethod
    def from_settings(cls, settings: Settings, *, limit_concurrency: int | None = 1000) -> "Limits":
        return cls(header_timeout=settings.header_timeout_seconds, body_timeout=settings.body_timeout_seconds,
                   max_per_client=settings.max_connections_per_client,
                   max_connections=settings.max_connections, limit_concurrency=limit_concurrency or None)


class Guard:
    """State shared by all connections of one server."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.per_client: dict[str, int] = {}
        self.waiting: dict[GuardedHttp, None] = {}  # insertion order = waiting since
        self.waiting_by_peer: dict[str | None, dict[GuardedHttp, None]] = {}
        self.in_body = 0                            # requests whose body is still arriving
        self.cut: Counter[str] = Counter()          # since the last report
        self.peers: Counter[str] = Counter()
        self.total: Counter[str] = Counter()        # since start (tests, benchmarks)
        self._last_report = -REPORT_EVERY
        self._report_pending = False

    def start_waiting(self, conn: "GuardedHttp") -> None:
        if conn not in self.waiting:
            self.waiting[conn] = None
            self.waiting_by_peer.setdefault(conn.peer_address, {})[conn] = None

    def stop_waiting(self, conn: "GuardedHttp") -> None:
        if self.waiting.pop(conn, 0) is None:
            mine = self.waiting_by_peer[conn.peer_address]
            del mine[conn]
            if not mine:
                del self.waiting_by_peer[conn.peer_address]

    def victim(self) -> "GuardedHttp | None":
        """Whom a new connection at the cap pushes out (see the module's docstring)."""
        if not self.waiting:
            return None
        heaviest = max(self.waiting_by_peer.values(), key=len)
        return next(iter(heaviest if len(heaviest) > 1 else self.waiting))

    def note(self, reason: str, peer: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.cut[reason] += 1
        self.total[reason] += 1
        if peer:
            self.peers[peer] += 1
        if self._report_pending:
            return
        delay = self._last_report + REPORT_EVERY - time.monotonic()
        if delay <= 0:
            self.report()
        else:
            self._report_pending = True
            loop.call_later(delay, self.report)

    def report(self) -> None:
        self._report_pending = False
        if not self.cut:
            return
        parts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.cut.items()))
        top = ", ".join(f"{peer} ({n})" for peer, n in self.peers.most_common(3))
        log.warning("cut %d slow or excess connection(s): %s; from %s",
                    sum(self.cut.values()), parts, top or "?")
        self.cut.clear()
        self.peers.clear()
        self._last_report = time.monotonic()


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body deadlines and connection caps.
    `guard` is set on a subclass made per server (`protocol_for`)."""

    guard: Guard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._timer: TimerHandle | None = None
        self._timer_reason = ""
        self._peer: str | None = None          # counted against this address's cap
        self.peer_address: str | None = None   # the TCP peer, for choosing whom to evict
        self._cut: str | None = None
        self._in_body = False
        self._inner_app = self.app
        self.app = self._run_app
        self.limit_concurrency = None  # ours counts requests, not connections (on_headers_complete)

    # ---------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard, limits = self.guard, self.guard.limits
        peer = self.peer_address = self.client[0] if self.client else None
        if limits.max_per_client and peer is not None:
            if guard.per_client.get(peer, 0) >= limits.max_per_client:
                self._close("over the per-client cap", peer)
                return
            guard.per_client[peer] = guard.per_client.get(peer, 0) + 1
            self._peer = peer
        if limits.max_connections and len(self.connections) > limits.max_connections:
            victim = guard.victim()
            if victim is None:
                self._close("over the connection cap", peer)
                return
            victim.expire("evicted at the connection cap")
        self._arm("header timeout")
        guard.start_waiting(self)

    def connection_lost(self, exc: Exception | None) -> None:
        guard = self.guard
        self._disarm()
        guard.stop_waiting(self)
        if self._in_body:
            self._in_body = False
            guard.in_body -= 1
        if self._peer is not None:
            left = guard.per_client.get(self._peer, 1) - 1
            if left > 0:
                guard.per_client[self._peer] = left
            else:
                guard.per_client.pop(self._peer, None)
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._cut is not None or self.transport.is_closing():
            return
        phase = self._phase
        if phase == _BODY:
            want = "body timeout"
        elif phase == _HEAD or self.cycle is None or self.cycle.response_complete:
            want = "header timeout"  # also bytes between requests that start none (e.g. CRLF)
        else:
            want = ""  # a whole request is being handled: the server's time, not the client's
        if want and self._timer_reason != want:
            self._disarm()
            self._arm(want)
        self._update_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_waiting()

    # ---------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD

    def on_headers_complete(self) -> None:
        if self._timer_reason == "header timeout":
            self._disarm()
        limit = self.guard.limits.limit_concurrency
        if limit is not None and len(self.tasks) - self.guard.in_body >= limit:
            self.limit_concurrency = 0  # uvicorn's own 503 path (and its one-line warning)
            try:
                super().on_headers_complete()
            finally:
                self.limit_concurrency = None
        else:
            super().on_headers_complete()
        self._phase = _BODY
        if not self._in_body:
            self._in_body = True
            self.guard.in_body += 1

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            self._disarm()
        if self._in_body:
            self._in_body = False
            self.guard.in_body -= 1
        super().on_message_complete()

    # ---------------------------------------------------------------- deadlines
    def _arm(self, reason: str) -> None:
        limits = self.guard.limits
        seconds = limits.body_timeout if reason == "body timeout" else limits.header_timeout
        self._timer = self.loop.call_later(seconds, self.expire, reason)
        self._timer_reason = reason

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_reason = ""

    def _update_waiting(self) -> None:
        if self._timer is not None or self.timeout_keep_alive_task is not None:
            self.guard.start_waiting(self)
        else:
            self.guard.stop_waiting(self)

    def expire(self, reason: str) -> None:
        """A deadline passed, or the connection is evicted to make room for a new one."""
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # 408 when the client was sending a request and nothing else is being answered on the
        # connection (in the body, `cycle` is that request's; in the headers, the previous one's).
        if self._phase == _BODY:
            answering = cycle.response_started
        else:
            answering = cycle is not None and not cycle.response_complete
        if self._phase != _IDLE and not answering and not self.pipeline:
            self.transport.write(_408)
        self._close(reason, self.client[0] if self.client else None)

    def _close(self, reason: str, peer: str | None) -> None:
        self._cut = reason
        self._disarm()
        self.guard.stop_waiting(self)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() gets http.disconnect, its send() is dropped
            cycle.message_event.set()
        self.transport.close()
        self.guard.note(reason, peer, self.loop)

    # ---------------------------------------------------------------- the app
    async def _run_app(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._inner_app(scope, receive, send)
        except Exception:
            if self._cut is None:
                raise
            # We cut this request (timeout or cap): the app's ClientDisconnect is expected and
            # already reported in the summary line — no traceback.


def protocol_for(limits: Limits) -> type[GuardedHttp]:
    return type("GuardedHttp", (GuardedHttp,), {"guard": Guard(limits)})


def raise_fd_limit(limits: Limits) -> Limits:
    """Every connection is a file descriptor: lift the soft limit towards the hard one so the
    connection cap fits, else lower the cap (an accept() failing for want of descriptors stalls
    every client, legitimate ones included)."""
    if not limits.max_connections:
        return limits
    want = limits.max_connections + FD_RESERVE
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < want:
            soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except (ValueError, OSError):  # pragma: no cover - a platform without it
        return limits
    if soft != resource.RLIM_INFINITY and soft < want:
        usable = max(soft - FD_RESERVE, 64)
        log.warning("only %d file descriptors: serving at most %d connections", soft, usable)
        return replace(limits, max_connections=usable)
    return limits


def make_server(app: Any, *, host: str, port: int, limits: Limits, log_level: str = "info",
                access_log: bool = True, **config: Any) -> uvicorn.Server:
    """The server `collab-bot serve` runs (tests and benchmarks start the same one); `config`:
    other uvicorn.Config arguments (benchmarks: log_config=None)."""
    limits = raise_fd_limit(limits)
    options: dict[str, Any] = dict(proxy_headers=True, timeout_keep_alive=5, backlog=2048, loop="auto")
    options.update(config)
    return _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                                  http=protocol_for(limits), ws="none", limit_concurrency=None, **options))


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets)
        guard_of(self).report()  # what the last summary line had not told yet


def guard_of(server: uvicorn.Server) -> Guard:
    return server.config.http.guard  # type: ignore[union-attr]


def serve(app: Any, *, host: str, port: int, limits: Limits, access_log: bool = False) -> None:
    make_server(app, host=host, port=port, limits=limits, access_log=access_log).run()
