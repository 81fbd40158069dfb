"""Composition root: create_app() wires settings, database, dispatcher, Feishu client,
outbox sender and the scheduler's ticks; run_background() runs the same parts, without the
webhook, as `collab-bot serve`'s background process (bot/worker.py). The only place in bot/ that
imports handlers/."""
from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, TypeVar

import httpx
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import handlers
from bot import db
from bot.clock import Clock, SystemClock
from bot.dispatch import Dispatcher
from bot.envelope import CardAction, parse_event
from bot.feishu import FeishuClient
from bot.outbox import OutboxSender
from bot.pacer import Pacer
from bot.reminders import Policy
from bot.routing import Router
from bot.scheduler import Ticker
from bot.settings import Settings
from bot.sync_board import TARGET as SYNC_BOARD
from bot.sync_board import BoardSync
from bot.sync_tasks import TARGET as SYNC_TASKS
from bot.sync_tasks import TaskSync
from bot.webhook import answer_click
from bot.webhook import routes as webhook_routes
from bot.workdays import load_public_calendar
from bot.worker import KickReader, Kicks, WorkerProcess, answer_clicks

log = logging.getLogger(__name__)
T = TypeVar("T")


class Lanes:
    """Threads for handling events, by who waits: a card callback's clicker waits for the answer
    (Feishu gives up after 3 s); the work after a command's 200 has no one waiting. Separate pools,
    and the work after an answer starts only while no callback is being handled: under load a
    click never queues behind a backlog of commands (they are in the inbox and get their turn).
    A callback is an urgent writer (bot.db.urgent) from the moment it is queued for a thread
    (bot.db.urgent_ahead): on SQLite it takes the writers' lock before the work after an answer
    and the outbox that wait for it too; while any is handled, threads
    take turns with the interpreter more often (CLICK_SWITCH_INTERVAL), except in the clicks'
    process, where no event loop waits for it (`click_switch_interval` None).

    How many callbacks run at once follows the database: on SQLite one, because its one writer
    runs them one after another from their first statement (the inbox row) anyway, and a second
    thread only takes turns with the first for the interpreter — bench_clicks' p99 (20 progress
    updates at once) was 96–131 ms with one thread, median 104, against 116–141 ms with four. On
    PostgreSQL clicks on different cases run side by side while others wait for the server."""

    CALLBACK_THREADS = {"sqlite": 1}
    CALLBACK_THREADS_DEFAULT = 4
    AFTER_ANSWER_THREADS = 2  # bounded: leftover work must not crowd out answering requests

    def __init__(self, dialect: str = "") -> None:
        self.callback_threads = self.CALLBACK_THREADS.get(dialect, self.CALLBACK_THREADS_DEFAULT)
        self.callbacks = ThreadPoolExecutor(self.callback_threads, thread_name_prefix="callback")
        self.after = ThreadPoolExecutor(self.AFTER_ANSWER_THREADS, thread_name_prefix="after-answer")
        self._clicks = 0
        self._no_clicks: asyncio.Event | None = None
        self._switch_back = sys.getswitchinterval()
        self.click_switch_interval: float | None = CLICK_SWITCH_INTERVAL   # None: leave it as it is

    async def callback(self, fn: Callable[..., T], *args: Any) -> T:
        idle = self._idle()
        if not self._clicks and self.click_switch_interval is not None:
            self._switch_back = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_back, self.click_switch_interval))
        self._clicks += 1
        idle.clear()
        try:
            with db.urgent_ahead():   # queued behind another click, it already counts as running
                return await asyncio.get_running_loop().run_in_executor(self.callbacks, db.urgent, fn, *args)
        finally:
            self._clicks -= 1
            if not self._clicks:
                if self.click_switch_interval is not None:
                    sys.setswitchinterval(self._switch_back)
                idle.set()

    async def after_answer(self, fn: Callable[..., T], *args: Any) -> T:
        idle = self._idle()
        while self._clicks:
            await idle.wait()
        return await asyncio.get_running_loop().run_in_executor(self.after, fn, *args)

    def _idle(self) -> asyncio.Event:
        if self._no_clicks is None:  # made in the loop that uses it
            self._no_clicks = asyncio.Event()
            self._no_clicks.set()
        return self._no_clicks

    def shutdown(self) -> None:
        """Let running handlers finish their transaction; drop queued ones (their rows stay
        pending and the next start finishes them)."""
        for pool in (self.callbacks, self.after):
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class BotState:
    settings: Settings
    clock: Clock
    engine: Engine
    factory: sessionmaker[Session]
    dispatcher: Dispatcher
    client: FeishuClient
    sender: OutboxSender
    ticker: Ticker
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lanes: Lanes = field(default_factory=Lanes)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # `collab-bot serve`: the process doing the work nobody waits for (bot/worker.py); None: here
    worker: WorkerProcess | None = None

    def handle_later(self, event_id: str, event: Any) -> None:
        """A stored command's work after its 200: the background process's when there is one."""
        if self.worker is not None:
            self.worker.event(event_id)
        else:
            self.spawn(self.lanes.after_answer(self.dispatcher.process, event_id, event))

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Work after the HTTP answer, tracked so shutdown can wait for it. The inbox row is
        the durable copy: if the process dies here, a restart finishes the event."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def settle_memory() -> None:
    """Call once before serving. Everything loaded by then (modules, settings, routes) lives as
    long as the process: keeping it out of the garbage collector's scans removed the ack-latency
    spikes under load (webhook p99 at c=50: 47-52 ms before, 19-20 ms after; bench_webhook.py)."""
    gc.collect()
    gc.freeze()


# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The
# event loop answering chatter is always busy under load; a handler thread releases the GIL at
# every database call and waited up to 5 ms to get it back each time, 20–40 times per click.
SWITCH_INTERVAL = 0.0005
# … and while a click is being handled: a click's thread gives the GIL up at each of its ~12
# statements and waited up to the interval to get it back from the event loop each time; at
# 0.1 ms the clicks' answers under chatter at half saturation took about half as long (p50).
CLICK_SWITCH_INTERVAL = 0.0001
# The clicks' process has no event loop to wait for (it only passes frames): there the callback
# threads keep Python's default and give the GIL up at their statements. A shorter interval only
# made the four threads take it from each other: 20 progress updates at once in-process took
# 132 ms at 0.1 ms, 122 ms at 0.5 ms, 109 ms at 5 ms (bench_click_burst, 4 threads).
CLICKS_PROCESS_SWITCH_INTERVAL = 0.005


def prepare_to_serve(switch_interval: float = SWITCH_INTERVAL) -> None:
    """What `collab-bot serve` does just before serving: what the first requests would otherwise
    load (the public working-day calendar) is loaded, then memory is settled."""
    load_public_calendar(datetime.now(timezone.utc).date())
    settle_memory()
    sys.setswitchinterval(switch_interval)


# The bot exports no OpenTelemetry; with FastAPI's native telemetry on, every request asks the
# global providers whether anyone listens (~10 µs, a tenth of a chatter message's whole cost).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def compose(settings: Settings, *, clock: Clock | None = None, transport: httpx.AsyncBaseTransport | None = None,
            router: Router | None = None, pacer: Pacer | None | bool = True,
            worker: WorkerProcess | None = None, other_processes: bool = False,
            on_outbox: Callable[[], None] | None = None) -> BotState:
    """Every part of the bot but the webhook. `worker`: the processes that answer clicks and
    deliver the outbox (the dispatcher wakes them instead of this process's sender);
    `other_processes`: this is one of them; `on_outbox`: what wakes the outbox's sender."""
    clock = clock or SystemClock()
    engine = db.make_engine(settings.database_url, other_processes=worker is not None or other_processes)
    factory = db.make_sessionmaker(engine)
    client = FeishuClient(app_id=settings.feishu_app_id,
                          app_secret=settings.feishu_app_secret.get_secret_value(),
                          base_url=settings.feishu_base_url, transport=transport,
                          # evenly spaced sends within Feishu's limits; tests may pass pacer=None
                          pacer=Pacer() if pacer is True else (pacer or None))
    router = router or handlers.build_router()
    router.policy = Policy.from_settings(settings)
    router.feishu_tasks = settings.feishu_tasks
    router.feishu_board = settings.feishu_board
    board_sync = BoardSync(factory, client, clock,
                           apply_edit=functools.partial(handlers.tracking.apply_board_edit, router))
    task_sync = TaskSync(factory, client, clock,
                         apply_remote=functools.partial(handlers.tracking.apply_feishu_change, router))
    # the outbox's work steps aside while clicks are answered (bot.db.step_aside)
    sender = OutboxSender(db.make_sessionmaker(engine, courteous=True), client, clock,
                          renderers=router.renderers, context=router.policy,
                          syncers={SYNC_TASKS: task_sync, SYNC_BOARD: board_sync}, bundle=router.bundle)
    if on_outbox is None:
        on_outbox = worker.outbox if worker is not None else sender.kick
    dispatcher = Dispatcher(factory, router, clock, settings.tz, on_outbox=on_outbox)
    ticker = Ticker(settings.timezone)
    return BotState(settings=settings, clock=clock, engine=engine, factory=factory, dispatcher=dispatcher,
                    client=client, sender=sender, ticker=ticker, worker=worker, lanes=Lanes(engine.dialect.name))


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               transport: httpx.AsyncBaseTransport | None = None, router: Router | None = None,
               background: bool = True, pacer: Pacer | None | bool = True,
               worker: WorkerProcess | None = None) -> FastAPI:
    """`background=False` (tests) runs no ticks; tests drive the outbox and clock themselves.
    `worker` (`collab-bot serve`): the work nobody waits for runs in that process, not here."""
    state = compose(settings or Settings(), clock=clock, transport=transport, router=router, pacer=pacer,
                    worker=worker)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if background:
            state.spawn(_start_front(state) if worker is not None else _start(state))
        try:
            yield
        finally:
            if worker is not None:
                worker.close_links()
                await asyncio.to_thread(worker.stop)
            await _shut_down(state)

    app = FastAPI(title="collab-bot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_TELEMETRY)
    app.state.bot = state
    app.router.routes.extend(webhook_routes)
    return app


async def _shut_down(state: BotState) -> None:
    state.ticker.shutdown()
    for task in list(state.tasks):
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)
    await asyncio.to_thread(state.lanes.shutdown)
    await state.client.aclose()
    state.engine.dispose()


# The background process yields the CPU to the two that answer Feishu (the kernel's niceness;
# raising it needs no privilege). Its writers also wait for the clicks' process (bot.db), so a
# background transaction preempted mid-way rarely holds up a click: with both, a burst of 20
# progress updates under chatter took 150 ms instead of 180–300 ms.
BACKGROUND_NICE = 10


def run_background(settings: Settings, kick_fd: int) -> int:
    """`collab-bot worker`, started by `serve`: handle the commands the webhook stored, deliver
    the outbox, run the clock's ticks and the syncs, until SIGTERM or until every process that
    writes to the pipe has closed it. The schema is the webhook's to upgrade: it starts this
    once it is done."""
    state = compose(settings, other_processes=True)
    os.nice(BACKGROUND_NICE)
    prepare_to_serve()
    asyncio.run(_run_background(state, kick_fd))
    return 0


async def _run_background(state: BotState, kick_fd: int) -> None:
    loop = asyncio.get_running_loop()
    stop = _stopped_by_signals(loop)

    def handle(event_id: str) -> None:
        state.spawn(state.lanes.after_answer(state.dispatcher.process, event_id))

    reader = KickReader(kick_fd, on_outbox=state.sender.kick, on_event=handle, on_eof=stop.set)
    loop.add_reader(kick_fd, reader.readable)
    state.spawn(_start(state, upgrade=False))
    await stop.wait()
    loop.remove_reader(kick_fd)
    await _shut_down(state)


def run_clicks(settings: Settings, click_fd: int, kick_fd: int) -> int:
    """`collab-bot worker --click-fd`, started by `serve`: answer the card callbacks the webhook
    hands over on the socket, until it closes it or SIGTERM; the outbox rows they write are
    announced on the pipe to the background process."""
    kicks = Kicks(kick_fd)
    state = compose_clicks(settings, on_outbox=kicks.outbox)
    asyncio.run(_run_clicks(state, click_fd))
    kicks.close()
    return 0


def compose_clicks(settings: Settings, *, on_outbox: Callable[[], None]) -> BotState:
    """The clicks' process, ready to serve: its callback threads keep the interpreter's switch
    interval (CLICKS_PROCESS_SWITCH_INTERVAL)."""
    state = compose(settings, other_processes=True, on_outbox=on_outbox)
    state.lanes.click_switch_interval = None
    prepare_to_serve(CLICKS_PROCESS_SWITCH_INTERVAL)
    return state


async def rehearse_clicks(state: BotState) -> int:
    """Rehearse the clicks once on each callback thread, all at the same time, so that each thread
    ends up with its own pooled connection: on PostgreSQL a new connection's server process loads the
    tables a click touches on its first use, and 20 progress updates at once on four fresh
    connections were answered 50-60 ms later (bench_clicks p99 210-232 against 155-173 ms).
    Returns how many rehearsed clicks ran to the end."""
    runs = await asyncio.gather(*(state.lanes.callback(state.dispatcher.rehearse)
                                  for _ in range(state.lanes.callback_threads)))
    return sum(runs)


async def _run_clicks(state: BotState, click_fd: int) -> None:
    async def click(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        event = parse_event(payload)
        if not isinstance(event, CardAction):
            return 400, {"msg": "bad request"}
        return await answer_click(state, payload, event)

    stop = _stopped_by_signals(asyncio.get_running_loop())
    await rehearse_clicks(state)   # before it says it is ready
    serving = asyncio.ensure_future(answer_clicks(socket.socket(fileno=click_fd), click))
    serving.add_done_callback(lambda _task: stop.set())   # the webhook's process is gone
    await stop.wait()
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await _shut_down(state)


def _stopped_by_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


DB_RETRY_SECONDS = 5.0


async def _start(state: BotState, *, upgrade: bool = True) -> None:
    """Upgrade the schema (waiting for the database if it is down), then start the clock."""
    started = state.clock.now()
    await _database_ready(state, upgrade=upgrade)
    state.spawn(state.sender.run_forever())
    state.spawn(_identify(state))
    handlers.register_ticks(state)
    state.ticker.every(30, "inbox-sweep", lambda: asyncio.to_thread(
        state.dispatcher.process_pending, timedelta(seconds=20)))
    keep = timedelta(hours=state.settings.inbox_retention_hours)
    state.ticker.every(3600, "inbox-prune", lambda: asyncio.to_thread(state.dispatcher.prune_inbox, keep))
    state.ticker.start()
    await asyncio.to_thread(_finish_left_over, state, started)
    state.ready.set()


async def _start_front(state: BotState) -> None:
    """The webhook's process when a background process does the rest: upgrade the schema, then
    start that process (it handles what the previous run left pending) and keep it running."""
    assert state.worker is not None
    await _database_ready(state, upgrade=True)
    state.worker.start()
    state.spawn(state.worker.keep_running())
    state.spawn(_identify(state))
    state.ready.set()


async def _database_ready(state: BotState, *, upgrade: bool) -> None:
    """Wait until the database answers (upgrading the schema first if `upgrade`), then set WAL."""
    while True:
        try:
            if upgrade:
                await asyncio.to_thread(db.upgrade, state.settings.database_url)
            if upgrade or await asyncio.to_thread(db.ping, state.engine):
                await asyncio.to_thread(db.set_wal, state.engine)
                return
        except OperationalError:
            pass
        log.warning("database unreachable; retrying in %s s", DB_RETRY_SECONDS)
        await asyncio.sleep(DB_RETRY_SECONDS)


def _finish_left_over(state: BotState, started: datetime) -> None:
    """Handle at once every event stored before this process started: the previous one answered
    200 and died. Events stored since belong to their own request, which is left to handle them
    (a callback taken from it would be answered with an empty card). Handling is a compare-and-set
    claim, so a replica working on the same row at the same time is harmless."""
    dispatcher, seen = state.dispatcher, set()
    while True:
        older_than = state.clock.now() - started + timedelta(microseconds=1)  # strictly before start
        fresh = [event_id for event_id in dispatcher.pending_ids(older_than) if event_id not in seen]
        if not fresh:
            return  # done, or only rows left pending by a database error (the sweep retries them)
        for event_id in fresh:
            dispatcher.process(event_id)
        seen.update(fresh)


async def _identify(state: BotState) -> None:
    """The bot's own open_id decides whether a message addresses it (never its name)."""
    for delay in (0, 2, 5, 15, 60, 300):
        await asyncio.sleep(delay)
        try:
            state.dispatcher.bot_open_id = (await state.client.bot_info()).open_id
            return
        except Exception as exc:  # noqa: BLE001
            log.warning("could not read the bot's identity yet: %s", type(exc).__name__)
