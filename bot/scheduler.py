"""APScheduler 3.x as the clock only: a few fixed interval ticks (in-memory job store) that
scan the database. No per-reminder jobs — those would be dropped after downtime or run twice
with two replicas (reliability-and-performance.md §2.3)."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

Tick = Callable[[], Awaitable[object]]  # whatever a pass returns is ignored


class Ticker:
    def __init__(self, timezone: str) -> None:
        self.scheduler = AsyncIOScheduler(timezone=timezone)
        self.ticks: list[tuple[str, float]] = []
        self._guarded: dict[str, Tick] = {}

    def every(self, seconds: float, name: str, fn: Tick) -> None:
        lock = asyncio.Lock()

        async def guarded() -> None:
            async with lock:  # a pass run now (run_all_now) never overlaps a scheduled one
                try:
                    await fn()
                except Exception:
                    log.exception("tick %s failed", name)

        # coalesce + max_instances=1: a slow pass is never run twice at once or replayed in bursts.
        self.scheduler.add_job(guarded, "interval", seconds=seconds, id=name, coalesce=True,
                               max_instances=1, misfire_grace_time=None)
        self.ticks.append((name, seconds))
        self._guarded[name] = guarded

    async def run_all_now(self) -> None:
        """Run every tick once now, in registration order (the sandbox after moving its clock)."""
        for name, _seconds in list(self.ticks):
            await self._guarded[name]()

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
