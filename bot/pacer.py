"""Outbound pacing for Feishu sends.

Why a pacer and not a limiter: Feishu's message API allows 50/s *and* 1000/min per app (sliding
windows) plus 5/s per chat. A token bucket with burst capacity re-creates its bursts every second,
and with network jitter the server then sees > 50 requests in some 1 s windows (measured: 57–1,025
rate-limit errors for 1,000 sends). Spacing requests evenly (GCRA / leaky bucket, no burst) at
48/s gave zero. On top of that a 60 s log caps the minute budget, and every *attempt* (retries,
5xx) is counted, because the quota counts them too — except one the gateway answered 429: it
was turned away, not served (the fake's model; if Feishu did count it, its next 429 says how
long the minute lasts). Counting it cost a 1,000-group fan-out a whole minute for its last send.

Feishu counts a request when it *arrives*, some time after its grant: first our own process has
to write it (a busy event loop or GIL: measured up to 0.25 s on a loaded machine), then the
network and the gateway add their own spread. So the per-second accounting uses the time each
request was written when the client reports it (`sent`), else its grant time, and keeps at most
`limit` (Feishu's 50) of them in any `1 + spread` seconds: arrivals at most `spread` apart in
their delays never put 51 into one of Feishu's seconds. By default `spread` is most of what the
margin between the rate and the limit buys (¾ of 50/48 − 1: 31 ms), so it costs nothing at the
even rate; what it forbids is bunching. A 429 from that window shows arrivals spread more (a receiver
that stalls): the spread is widened for a while (`throttled`).

When the event loop is busy, sleepers wake late. A late grant does not push the schedule back:
the next slot is an interval after the *planned* time of this one, so up to `CATCH_UP` seconds
of lateness are won back (spacing every grant from the actual previous one made a 1,000-group
fan-out take 1.10–1.12× its minimum, keeping to within half a slot still 1.07× on a loaded
machine) — but never two grants closer than half a slot, never more than `rate` + 1 grants in
any second (+ 1: so that a late grant's echo, the grant a second later, fades), and never more
than `limit` in `1 + spread`, so catching up cannot release a burst.
Time is injectable so tests run a 1,000-send schedule in milliseconds.

When sends queue for slots, they are granted by priority, then in arrival order: a reply to a
person waits behind at most the one send already holding the next slot, not behind a fan-out of
reminders queued before it. The priority travels in a context variable (`send_priority`), set
by the outbox per row, so the Feishu client needs no extra argument on every call.
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["Pacer", "PrioritySemaphore", "send_priority"]

# Lower is more urgent (the outbox's Priority values); unset = the middle, like a reminder.
send_priority: ContextVar[int] = ContextVar("send_priority", default=1)


class PrioritySemaphore:
    """An asyncio semaphore whose waiters get a place by (priority, arrival) instead of arrival
    only: the pacer's lock (one place) and the outbox's renders (a few)."""

    def __init__(self, places: int = 1) -> None:
        if places < 1:
            raise ValueError("places must be >= 1")
        self._free = places
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self._free and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the place just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _priority, _seq, future = heapq.heappop(self._waiters)
            if not future.done():  # skip waiters that were cancelled meanwhile
                future.set_result(None)
                return
        self._free += 1

    @contextlib.asynccontextmanager
    async def place(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


@dataclass
class _ChatState:
    next_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Pacer:
    """App-wide even spacing + per-second accounting at the receiver + sliding-minute cap +
    per-chat spacing.

    rate:       app-wide sends per second (Feishu: 50; default keeps a 4% margin).
    limit:      Feishu's per-second limit; at most this many in any `1 + spread` seconds.
    spread:     how much later one request may reach Feishu than another granted (or written)
                at the same moment; default ¾ of what `limit / rate` leaves (31 ms at 48/s).
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
    # Lateness the schedule may win back: enough for a loaded machine's late wake-ups (tens of
    # ms, at times 0.25 s), short of a stall after which a catch-up would be a burst.
    CATCH_UP = 0.25
    # After a 429 from the per-second window (arrivals bunched more than `spread` allows: on a
    # loaded machine the receiving process stalls 50-150 ms), the spread is widened, a 1,000-
    # group fan-out's pace drops from 48/s to ~46/s, and it comes back over a minute: without,
    # such stalls cost 5-14 rate-limit answers and a second's pause each.
    WIDEN = 0.05
    MAX_SPREAD = 0.2
    REGAIN = 60.0

    def __init__(
        self,
        *,
        rate: float = 48.0,
        per_minute: int = 1000,
        reserve: int = 0,
        chat_rate: float = 4.0,
        window: float = 60.0,
        limit: int = 50,
        spread: float | None = None,
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
        limit = max(limit, int(rate))   # a scaled-up fake (tests, benches) has scaled-up limits
        if spread is None:
            # most of what the margin buys (42 ms at 48/s): the rest is slack for the few ms a
            # request is written after its grant, which would otherwise hold back every 50th
            spread = min(0.5, max(0.0, 0.75 * (limit / rate - 1.0)))   # (a slow rate never nears the limit)
        if not 0.0 <= spread < 1.0:
            raise ValueError("spread must be in [0, 1) seconds")
        self.rate = rate
        self.chat_rate = chat_rate
        self.window = window
        self.cap = cap
        self.limit = limit
        self.spread = spread
        self._interval = 1.0 / rate
        self._min_gap = self._interval / 2  # no two grants closer than half a slot
        # grants in any second: one more than the rate, so that a late grant's echo (the grant
        # a second later may not come sooner than a second after it) fades instead of holding
        # every later second to the same lateness; still below the limit
        self._per_second = max(1, int(rate), min(limit - 1, int(rate) + 1))
        self._chat_interval = 1.0 / chat_rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._tat = float("-inf")  # the schedule's time for the next grant (GCRA, and pause())
        self._not_before = float("-inf")  # half a slot after the last grant
        self._lock = PrioritySemaphore()
        # Granted slot times; only the last `cap` matter: slot N may not start before
        # slot N-cap + window, which keeps any window-long span at <= cap attempts.
        self._log: deque[float] = deque(maxlen=cap)
        # The last ~2 s of send times (written if known, else granted), sorted: the per-second
        # accounting. Sorted, because a request may be written after a later-granted one.
        self._sent: list[float] = []
        self._unwritten: set[float] = set()   # granted to a caller that reports, not written yet
        self._widened, self._widened_at = 0.0, 0.0   # see throttled()
        self._throttled_until = float("-inf")
        self._chats: dict[str, _ChatState] = {}

    async def acquire(self, chat_id: str | None = None, *, reports: bool = False) -> float:
        """Wait for the next send slot; returns the slot's monotonic time.

        With a chat_id, sends to that chat are additionally spaced by 1/chat_rate measured
        between *granted* slots (so app-wide queueing can't bunch one chat's sends together).
        `reports`: the caller will call `sent(slot)` once the request is written (or it failed);
        until then the per-second accounting counts it as arriving any moment.
        """
        if chat_id is None:
            return await self._global_slot(reports)
        if len(self._chats) > self._PRUNE_AT:
            self._prune()
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState()
        async with state.lock:  # FIFO per chat; other chats are not held up
            wait = state.next_at - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
            slot = await self._global_slot(reports)
            state.next_at = max(state.next_at, slot + self._chat_interval)
            return slot

    def sent(self, slot: float) -> None:
        """The request granted `slot` was written just now (or will not be: it failed): account it
        by this time, when it can reach Feishu, instead of its grant time. Later calls for the
        same slot change nothing."""
        if slot not in self._unwritten:
            return
        self._unwritten.discard(slot)
        now = self._monotonic()
        i = bisect.bisect_left(self._sent, slot)
        if now > slot and i < len(self._sent) and self._sent[i] == slot:
            del self._sent[i]
            bisect.insort(self._sent, now)

    def throttled(self, slot: float | None, seconds: float) -> None:
        """Feishu's gateway answered the request granted `slot` with 429 (99991400): it was not
        served, so it does not use the minute's budget; every send waits `seconds` (the reset
        Feishu gave: a second for its per-second window, longer only when it says so). And
        arrivals evidently spread more than `spread`: it is widened by WIDEN (once per pause:
        the requests already on their way when the first 429 came meet the same full window),
        which slows the pace to 50 per 1 + spread s, and regained over REGAIN seconds."""
        if slot is not None:
            try:
                self._log.remove(slot)
            except ValueError:
                pass  # already out of the minute log
        now = self._monotonic()
        if now >= self._throttled_until:
            self._widened, self._widened_at = min(max(0.0, self.MAX_SPREAD - self.spread),
                                                  self._widening(now) + self.WIDEN), now
            self._throttled_until = now + max(0.0, seconds)
        self.pause(seconds)

    def _widening(self, now: float) -> float:
        """What a 429 added to `spread`, as it fades."""
        if self._widened <= 0.0:
            return 0.0
        return self._widened * max(0.0, 1.0 - (now - self._widened_at) / self.REGAIN)

    def pause(self, seconds: float, chat_id: str | None = None) -> None:
        """Push the next slot back after Feishu throttled us (429 -> app-wide, 230020 -> chat)."""
        until = self._monotonic() + max(0.0, seconds)
        if chat_id is None:
            self._tat = max(self._tat, until)
        else:
            state = self._chats.setdefault(chat_id, _ChatState())
            state.next_at = max(state.next_at, until)

    async def _global_slot(self, reports: bool = False) -> float:
        asked = self._monotonic()
        await self._lock.acquire(send_priority.get())
        try:
            while True:
                now = self._monotonic()
                # the schedule's time for this grant (an idle pacer has no lateness to win back)
                scheduled = max(self._tat, asked)
                due, resume = self._due(now, scheduled)
                if due <= now:
                    break
                await self._sleep(due - now)
            # The next slot keeps to the schedule: an interval after this one's scheduled time,
            # so lateness (a late wake-up, a request written late holding the per-second window)
            # is won back, up to CATCH_UP; after waiting for the minute window the schedule
            # starts again from then. Never closer than half a slot to this grant.
            planned = max(due if resume else scheduled, now - self.CATCH_UP)
            self._tat = planned + self._interval
            self._not_before = now + self._min_gap
            self._log.append(now)
            bisect.insort(self._sent, now)
            if reports:
                self._unwritten.add(now)
            return now
        finally:
            self._lock.release()

    def _due(self, now: float, scheduled: float) -> tuple[float, bool]:
        """The earliest time the next grant may have — the schedule, the per-second accounting,
        the minute cap — and whether the minute cap decided it."""
        sent, unwritten = self._sent, self._unwritten
        old = bisect.bisect_right(sent, now - 2.0)   # older than any window below
        if old:
            for slot in sent[:old]:
                unwritten.discard(slot)   # never reported (a caller that died): its grant time stands
            del sent[:old]
        due = max(scheduled, self._not_before)
        second, log = self._per_second, self._log
        if len(log) >= second:
            due = max(due, log[-second] + 1.0)  # never more than `rate` + 1 grants in any second
        # nor `limit` as they arrive: requests granted but not written yet may arrive any moment,
        # so they count in every window; the others by when they were written
        room = self.limit - len(unwritten)
        if room <= 0:
            due = max(due, now + self._min_gap)   # wait for writes: they are reported within ms
        elif len(sent) >= self.limit:
            seen = 0
            for at in reversed(sent):
                if at in unwritten:
                    continue
                seen += 1
                if seen == room:
                    due = max(due, at + 1.0 + self.spread + self._widening(now))
                    break
        if len(self._log) == self.cap:
            # strictly after the window edge: whether Feishu's window is open or closed is unknown
            edge = self._log[0] + self.window + self._EDGE
            if edge > due:
                return edge, True
        return due, False

    def _prune(self) -> None:
        now = self._monotonic()
        for key in [k for k, s in self._chats.items() if s.next_at <= now and not s.lock.locked()]:
            del self._chats[key]
