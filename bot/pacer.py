"""Outbound pacing for Feishu sends.

Why a pacer and not a limiter: Feishu's message API allows 50/s *and* 1000/min per app (sliding
windows) plus 5/s per chat. A token bucket with burst capacity re-creates its bursts every second,
and with network jitter the server then sees > 50 requests in some 1 s windows (measured: 57–1,025
rate-limit errors for 1,000 sends). Spacing requests evenly (GCRA / leaky bucket, no burst) at
48/s gave zero. On top of that a 60 s log caps the minute budget, and every *attempt* (retries,
429s, 5xx) is counted, because the quota counts them too.

Slots are granted one at a time under a lock. When the event loop is busy, sleepers wake late:
they must not all send at once (a late wake-up used to release a burst of 52–65 requests into one
second at the server), but spacing every grant from the *actual* previous one made each late
wake-up push the whole schedule back (a 1,000-group fan-out took 1.10–1.12× its minimum). So the
next slot keeps to the schedule when the wake-up was at most half a slot late, and is spaced from
the actual grant minus that half slot otherwise: no two grants closer than half a slot, and a
one-second log keeps any second at 48 grants (at 48/s), as strict spacing did. Time is injectable so tests run a
1,000-send schedule in milliseconds.

When sends queue for slots, they are granted by priority, then in arrival order: a reply to a
person waits behind at most the one send already holding the next slot, not behind a fan-out of
reminders queued before it. The priority travels in a context variable (`send_priority`), set
by the outbox per row, so the Feishu client needs no extra argument on every call.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["Pacer", "send_priority"]

# Lower is more urgent (the outbox's Priority values); unset = the middle, like a reminder.
send_priority: ContextVar[int] = ContextVar("send_priority", default=1)


class _PriorityLock:
    """An asyncio lock whose waiters get it by (priority, arrival) instead of arrival only."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the lock just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _priority, _seq, future = heapq.heappop(self._waiters)
            if not future.done():  # skip waiters that were cancelled meanwhile
                future.set_result(None)
                return
        self._held = False


@dataclass
class _ChatState:
    next_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Pacer:
    """App-wide even spacing + sliding-minute cap + per-chat spacing.

    rate:       app-wide sends per second (Feishu: 50; default keeps a 4% margin).
    per_minute: Feishu's minute quota; `reserve` of it is left for other callers/retries elsewhere.
    chat_rate:  per-chat sends per second (Feishu: 5/s per group shared by all bots; default 4).
    """

    MAX_CHAT_RATE = 5.0
    _PRUNE_AT = 4096  # forget idle chats once this many are tracked
    # Past a minute-window boundary: a request reaches Feishu some time after its grant, and that
    # delay varies (a busy machine preempts the process); 10,000 sends on a loaded machine met a
    # full window 5 times with 1 ms and once with 0.25 s (bench_fanout_sim). One second costs a
    # second per extra minute of a fan-out.
    _EDGE = 1.0

    def __init__(
        self,
        *,
        rate: float = 48.0,
        per_minute: int = 1000,
        reserve: int = 0,
        chat_rate: float = 4.0,
        window: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or chat_rate <= 0:
            raise ValueError("rates must be positive")
        if chat_rate > self.MAX_CHAT_RATE:
            raise ValueError("Feishu allows at most 5 messages/s per chat")
        cap = per_minute - reserve
        if cap <= 0:
            raise ValueError("per_minute - reserve must be positive")
        self.rate = rate
        self.chat_rate = chat_rate
        self.window = window
        self.cap = cap
        self._interval = 1.0 / rate
        self._tolerance = self._interval / 2  # lateness absorbed without moving the schedule
        self._per_second = max(1, int(rate))
        self._chat_interval = 1.0 / chat_rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._tat = float("-inf")  # earliest time of the next grant (GCRA, and pause())
        self._lock = _PriorityLock()
        # Granted slot times; only the last `cap` matter: slot N may not start before
        # slot N-cap + window, which keeps any window-long span at <= cap attempts.
        self._log: deque[float] = deque(maxlen=cap)
        self._chats: dict[str, _ChatState] = {}

    async def acquire(self, chat_id: str | None = None) -> float:
        """Wait for the next send slot; returns the slot's monotonic time.

        With a chat_id, sends to that chat are additionally spaced by 1/chat_rate measured
        between *granted* slots (so app-wide queueing can't bunch one chat's sends together).
        """
        if chat_id is None:
            return await self._global_slot()
        if len(self._chats) > self._PRUNE_AT:
            self._prune()
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState()
        async with state.lock:  # FIFO per chat; other chats are not held up
            wait = state.next_at - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
            slot = await self._global_slot()
            state.next_at = max(state.next_at, slot + self._chat_interval)
            return slot

    def pause(self, seconds: float, chat_id: str | None = None) -> None:
        """Push the next slot back after Feishu throttled us (429 -> app-wide, 230020 -> chat)."""
        until = self._monotonic() + max(0.0, seconds)
        if chat_id is None:
            self._tat = max(self._tat, until)
        else:
            state = self._chats.setdefault(chat_id, _ChatState())
            state.next_at = max(state.next_at, until)

    async def _global_slot(self) -> float:
        await self._lock.acquire(send_priority.get())
        try:
            planned: float | None = None
            while True:
                now = self._monotonic()
                slot = max(now, self._tat)
                second = self._per_second
                if len(self._log) >= second and self._log[-second] + 1.0 > slot:
                    slot = self._log[-second] + 1.0  # never more than `rate` in any second
                if len(self._log) == self.cap and self._log[0] + self.window + self._EDGE > slot:
                    # strictly after the window edge: whether Feishu's window is open or closed is unknown
                    slot = self._log[0] + self.window + self._EDGE
                if slot <= now:
                    break
                planned = slot
                await self._sleep(slot - now)
            # On schedule when the wake-up was at most half a slot late; else spaced from now.
            on_schedule = (planned if planned is not None else now) + self._interval
            self._tat = max(on_schedule, now + self._interval - self._tolerance)
            self._log.append(now)
            return now
        finally:
            self._lock.release()

    def _prune(self) -> None:
        now = self._monotonic()
        for key in [k for k, s in self._chats.items() if s.next_at <= now and not s.lock.locked()]:
            del self._chats[key]
