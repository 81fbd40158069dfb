"""Engine, sessions and schema upgrades. SQLite by default (WAL set once at start-up, with a
busy timeout), PostgreSQL supported; both run the same Alembic migrations."""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched. `Session.execute` is typed as returning a `Result`;
    for those statements it is a `CursorResult`, which has the count."""
    return cast("CursorResult[Any]", result).rowcount or 0


# PostgreSQL's answers to transactions that got in each other's way: a deadlock (it cancels one
# of them) and a serialisation failure. Done again, the cancelled one runs after the other; they are
# conflicts to retry, not an unavailable database. (Clicks lock their case first, then other rows:
# work that locks another row of the case first and then the case may meet one of them so.)
_CONFLICTS = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _CONFLICTS


def normalise_url(url: str) -> str:
    # Plain postgresql:// means psycopg 3 here (the driver we depend on).
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, other_processes: bool = False) -> Engine:
    """`other_processes`: another process writes the same SQLite file (`collab-bot serve`'s
    webhook and background processes): their writers queue on a file lock too."""
    url = normalise_url(url)
    engine = _make_engine(url, other_processes)
    count_writes(engine)
    return engine


def count_writes(engine: Engine) -> None:
    """Keep a count of the write statements each connection ran (`writes(conn_info)`): a click that
    changed nothing needs no redraw of the case's cards."""
    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, _cursor, statement, _params, _context, _many):
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            conn.info["writes"] = conn.info.get("writes", 0) + 1


def writes(conn_info: dict) -> int:
    return conn_info.get("writes", 0)


def _make_engine(url: str, other_processes: bool) -> Engine:
    if url.startswith("sqlite"):
        # as many pooled connections as threads that may write at once (callbacks, the work after
        # answers, asyncio's default executor): a connection beyond the pool is opened (with its
        # pragmas) and closed again for every transaction it serves
        if url.endswith(":memory:") or url in ("sqlite://", "sqlite+pysqlite://"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        else:
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                   pool_size=16, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # per connection: cheap, not journal mode
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        serialise_writers(engine, _file_lock(engine) if other_processes else None)
        set_wal(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection that sat unused this long is tested before use; one in steady use is
# not: the test is a round trip of its own in every transaction, and under load the connection was
# in use a moment ago (a server restart then shows as an error on it, which the caller retries).
PING_AFTER_IDLE_SECONDS = 10.0


def ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping` for connections idle longer than PING_AFTER_IDLE_SECONDS (SQLAlchemy's
    recipe: a failed test in the checkout event discards the connection and takes another)."""
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"idle connection failed its test: {type(exc).__name__}") from exc


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
WRITE_WAIT_SECONDS = 30.0  # as busy_timeout: then "database is locked", handled as today


_urgency = threading.local()


class _Running:
    """How many urgent calls are running, and a way to wait until none is. With `across` (a
    file other processes on the same database see), a process holds it shared while any of its
    urgent calls runs, and `wait_idle` also waits until no other process holds it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._n = 0
        self.across: int | None = None   # fd of the shared file

    def busy(self) -> bool:
        """Whether an urgent call of this process runs (its own turn comes from WriterLock)."""
        return self._n > 0

    def enter(self) -> None:
        with self._cond:
            self._n += 1
            if self._n == 1 and self.across is not None:
                fcntl.flock(self.across, fcntl.LOCK_SH)

    def leave(self) -> None:
        with self._cond:
            self._n -= 1
            if not self._n:
                if self.across is not None:
                    fcntl.flock(self.across, fcntl.LOCK_UN)
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: not self._n, timeout):
                return False
        return self.wait_across(deadline - time.monotonic())

    def wait_across(self, timeout: float) -> bool:
        """Wait (at most `timeout`) until no other process runs an urgent call."""
        if self.across is None:
            return True
        deadline = time.monotonic() + timeout
        while True:  # another process's clicks: a probe of its shared lock every millisecond
            try:
                fcntl.flock(self.across, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.001)
                continue
            fcntl.flock(self.across, fcntl.LOCK_UN)
            return True


_URGENT_RUNNING = _Running()


@contextmanager
def urgent_ahead() -> Iterator[None]:
    """An urgent call counted from the moment it is queued for a thread, not from when the thread
    starts it: background writers, here and in the other processes (`wait_across`), then wait for
    the clicks still queued as for the one running, instead of taking the writers' lock in the
    moment between two of them (each click queued behind one such write waited its whole length)."""
    _URGENT_RUNNING.enter()
    try:
        yield
    finally:
        _URGENT_RUNNING.leave()


def urgent(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in this thread as a writer someone waits for: it takes the SQLite writers' lock
    before any writer that nobody waits for (the work left over from commands, the outbox), and
    courteous sessions (`make_sessionmaker(courteous=True)`) wait before they start meanwhile."""
    _urgency.on = True
    try:
        with urgent_ahead():
            return fn(*args)
    finally:
        _urgency.on = False


# How long background work waits for the clicks being answered before it starts anyway. One
# interpreter runs one thread at a time: the outbox's renders (a card drawn, ~5–20 ms of CPU each)
# took turns with the clicks for it and made their answers wait; the redraws they deliver can be
# a few milliseconds later. Bounded, so a stream of clicks never stops delivery.
STEP_ASIDE_SECONDS = 0.05


def step_aside(timeout: float = STEP_ASIDE_SECONDS) -> None:
    """Wait (at most `timeout`) until no urgent call runs; at once in an urgent call itself and
    on a thread running an event loop (which must never block)."""
    if getattr(_urgency, "on", False) or _on_event_loop():
        return
    _URGENT_RUNNING.wait_idle(timeout)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class CourteousSession(Session):
    """A session of background work: it starts only once the clicks being answered are done
    (`step_aside`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        step_aside()
        super().__init__(*args, **kwargs)


class WriterLock:
    """A lock whose urgent waiters go first: while one waits, a non-urgent one does not take it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held = False
        self._urgent_waiting = 0

    def acquire(self, *, urgent: bool = False, timeout: float = WRITE_WAIT_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent_waiting += urgent
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                self._held = True
                return True
            finally:
                self._urgent_waiting -= urgent

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class FileLock:
    """A lock other processes on this machine see (flock on a file next to the database). A
    waiter is woken by the kernel as soon as it is free, not by SQLite's busy handler, whose
    sleeps (up to 100 ms) made clicks wait long after the other process's write had ended. The
    kernel drops it with a process that dies. Only one thread of a process waits for it at a
    time (the in-process WriterLock comes first)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def _file_lock(engine: Engine) -> FileLock | None:
    """The writers' lock of the engine's SQLite file; the file of its urgent calls is opened too."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    base = str(Path(database).resolve())
    if _URGENT_RUNNING.across is None:
        _URGENT_RUNNING.across = os.open(base + "-urgent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    return FileLock(base + "-writers.lock")


def serialise_writers(engine: Engine, across: FileLock | None = None) -> None:
    """One write transaction at a time in this process, queued on a lock. SQLite allows one writer
    anyway, but writers that meet at its lock wait in sleeps of up to 100 ms (its busy handler):
    under load a click waited behind them for seconds. The lock is taken at a transaction's first
    write (pysqlite begins the transaction there) and released when it ends; readers never take it.
    A writer that someone waits for (`urgent`: a click being answered) goes before the others.
    `across`: the lock the writers of other processes on the same file take too."""
    lock = WriterLock()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, _cursor, statement, _params, _context, _many):
        info = conn.info
        if info.get("writing") or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        urgent = getattr(_urgency, "on", False)
        if across is not None and not urgent and not _URGENT_RUNNING.busy():
            # another process's clicks first: its writers would otherwise meet ours at the
            # file lock, which serves whoever asks first, again and again
            _URGENT_RUNNING.wait_across(STEP_ASIDE_SECONDS)
        if not lock.acquire(urgent=urgent, timeout=WRITE_WAIT_SECONDS):
            raise sqlite3.OperationalError("database is locked")
        if across is not None:
            across.acquire()
        info["writing"] = True

    def _release(info: dict) -> None:
        if info.pop("writing", False):
            if across is not None:
                across.release()
            lock.release()

    event.listen(engine, "commit", lambda conn: _release(conn.info))
    event.listen(engine, "rollback", lambda conn: _release(conn.info))
    # a connection given back without either (e.g. its thread died) must not keep the lock
    event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record.info))
    @event.listens_for(engine.pool, "reset")
    def _reset(_dbapi, record, _reset_state) -> None:
        _release(record.info)


def set_wal(engine: Engine) -> bool:
    """WAL once, before serving: switching per connection races ("database is locked").
    Tolerates an unreachable database (the app starts, answers 503, and retries)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("could not switch SQLite to WAL yet: %s", type(exc).__name__)
        return False


def make_sessionmaker(engine: Engine, *, courteous: bool = False) -> sessionmaker[Session]:
    """Sessions that keep their objects' values after commit; `courteous`: of background work
    that steps aside for the clicks being answered (`CourteousSession`)."""
    return sessionmaker(engine, expire_on_commit=False, class_=CourteousSession if courteous else Session)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "heads")


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
