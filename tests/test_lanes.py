"""Handling lanes: a card callback never waits behind the work left over from earlier answers."""
from __future__ import annotations

import asyncio
import threading

from bot.app import Lanes


def test_work_after_an_answer_waits_while_a_callback_runs():
    order: list[str] = []
    release = threading.Event()

    def click() -> str:
        release.wait(5)
        order.append("click")
        return "answer"

    def leftover() -> str:
        order.append("leftover")
        return "done"

    async def scenario() -> tuple[str, str]:
        lanes = Lanes()
        try:
            clicking = asyncio.ensure_future(lanes.callback(click))
            await asyncio.sleep(0)
            after = asyncio.ensure_future(lanes.after_answer(leftover))
            await asyncio.sleep(0.05)
            assert order == []  # the leftover work has not started while the click is handled
            release.set()
            return await clicking, await after
        finally:
            lanes.shutdown()

    assert asyncio.run(scenario()) == ("answer", "done")
    assert order == ["click", "leftover"]


def test_work_after_an_answer_runs_at_once_without_callbacks():
    async def scenario() -> int:
        lanes = Lanes()
        try:
            return await asyncio.wait_for(lanes.after_answer(lambda: 7), 2)
        finally:
            lanes.shutdown()

    assert asyncio.run(scenario()) == 7
