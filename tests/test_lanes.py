"""Handling lanes: a card callback never waits behind the work left over from earlier answers."""
from __future__ import annotations

import asyncio
import threading

import pytest

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


def test_threads_take_turns_more_often_while_a_callback_runs():
    import sys

    from bot.app import CLICK_SWITCH_INTERVAL

    seen: list[float] = []
    before = sys.getswitchinterval()

    async def scenario() -> None:
        lanes = Lanes()
        try:
            await lanes.callback(lambda: seen.append(sys.getswitchinterval()))
        finally:
            lanes.shutdown()

    asyncio.run(scenario())
    assert len(seen) == 1 and seen[0] == pytest.approx(min(before, CLICK_SWITCH_INTERVAL)) and seen[0] < before
    assert sys.getswitchinterval() == before   # given back once no click is handled


def test_the_outboxs_sessions_wait_while_a_click_is_handled_but_not_forever():
    """Background work (the outbox's renders and results) starts its transaction after the click
    being answered; a click never waits for it, and a stream of clicks never stops it for long."""
    import time

    from bot import db

    engine = db.make_engine("sqlite://")
    courteous = db.make_sessionmaker(engine, courteous=True)
    started = threading.Event()
    release = threading.Event()
    opened: list[str] = []

    def click() -> None:
        started.set()
        with courteous():          # inside an urgent call: no waiting for itself
            opened.append("click's own")
        release.wait(5)

    clicking = threading.Thread(target=db.urgent, args=(click,))
    clicking.start()
    started.wait(5)
    t0 = time.monotonic()
    with courteous():
        opened.append("background")
    waited = time.monotonic() - t0
    release.set()
    clicking.join(5)
    assert opened == ["click's own", "background"]
    assert db.STEP_ASIDE_SECONDS * 0.9 <= waited < db.STEP_ASIDE_SECONDS + 1   # waited, bounded

    t0 = time.monotonic()
    with courteous():               # no click: at once
        pass
    assert time.monotonic() - t0 < db.STEP_ASIDE_SECONDS
    engine.dispose()


def test_a_click_queued_for_the_callback_thread_already_holds_background_writers_back():
    """On SQLite clicks take turns on one thread. One waiting for its turn counts as being handled:
    a background session opened meanwhile waits for it (bounded) instead of taking the writers'
    lock in the moment between two clicks."""
    import time

    from bot import db

    engine = db.make_engine("sqlite://")
    courteous = db.make_sessionmaker(engine, courteous=True)
    thread_busy, release = threading.Event(), threading.Event()
    waited: list[float] = []

    def background() -> None:
        t0 = time.monotonic()
        with courteous():
            waited.append(time.monotonic() - t0)

    async def scenario() -> str:
        lanes = Lanes("sqlite")
        try:
            # the callback thread is taken by something that is not a click; the click queues
            lanes.callbacks.submit(lambda: (thread_busy.set(), release.wait(5)))
            thread_busy.wait(5)
            clicking = asyncio.ensure_future(lanes.callback(lambda: "answer"))
            await asyncio.sleep(0.01)
            assert not clicking.done()              # queued, not started
            opened = threading.Thread(target=background)
            opened.start()
            await asyncio.to_thread(opened.join, 5)
            release.set()
            return await clicking
        finally:
            lanes.shutdown()

    assert asyncio.run(scenario()) == "answer"
    assert len(waited) == 1 and db.STEP_ASIDE_SECONDS * 0.9 <= waited[0] < db.STEP_ASIDE_SECONDS + 1
    engine.dispose()


@pytest.mark.parametrize("dialect, at_once", [("sqlite", 1), ("postgresql", Lanes.CALLBACK_THREADS_DEFAULT)])
def test_callbacks_run_side_by_side_only_where_the_database_has_more_than_one_writer(dialect, at_once):
    running, most = [0], [0]
    lock = threading.Lock()

    def click() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.05)
        with lock:
            running[0] -= 1

    async def scenario() -> None:
        lanes = Lanes(dialect)
        try:
            await asyncio.gather(*(lanes.callback(click) for _ in range(6)))
        finally:
            lanes.shutdown()

    asyncio.run(scenario())
    assert most[0] == at_once


def test_the_clicks_process_leaves_the_switch_interval_to_its_callback_threads(monkeypatch):
    """In the clicks' process nothing but the callback threads wants the interpreter: a shorter
    interval there only made them take it from each other (bench_click_burst)."""
    import sys

    from bot.app import CLICKS_PROCESS_SWITCH_INTERVAL, compose_clicks
    from bot.settings import Settings

    set_to: list[float] = []
    monkeypatch.setattr(sys, "setswitchinterval", set_to.append)
    monkeypatch.setattr("bot.app.settle_memory", lambda: None)
    state = compose_clicks(Settings(_env_file=None, database_url="sqlite://"), on_outbox=lambda: None)
    seen: list[list[float]] = []

    async def scenario() -> None:
        try:
            await state.lanes.callback(lambda: seen.append(list(set_to)))
        finally:
            state.lanes.shutdown()
            state.engine.dispose()

    asyncio.run(scenario())
    assert set_to == [CLICKS_PROCESS_SWITCH_INTERVAL]   # once, at the start; no click changed it
    assert seen == [[CLICKS_PROCESS_SWITCH_INTERVAL]]
