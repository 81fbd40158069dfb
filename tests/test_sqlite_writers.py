"""SQLite writers of one process queue on a lock held from a transaction's first write to its end:
concurrent writers all succeed, readers never wait for it, and a failed or abandoned transaction
does not keep it."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot import db
from bot.models import Person


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


def _add(factory, open_id: str) -> None:
    with factory() as s, s.begin():
        s.add(Person(tenant_key="t", open_id=open_id, name="名", updated_at=datetime.now(timezone.utc)))


def test_concurrent_writers_all_succeed(engine):
    factory = db.make_sessionmaker(engine)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                _add(factory, f"ou_{n}_{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 120


def test_a_reader_does_not_wait_for_a_writer(engine):
    factory = db.make_sessionmaker(engine)
    with factory() as writing, writing.begin():
        writing.add(Person(tenant_key="t", open_id="ou_w", name="名", updated_at=datetime.now(timezone.utc)))
        writing.flush()  # holds the write lock until the end of this block
        done = threading.Event()

        def read() -> None:
            with factory() as s:
                s.scalar(select(func.count()).select_from(Person))
            done.set()
        threading.Thread(target=read).start()
        assert done.wait(5)


def test_a_failed_transaction_releases_the_lock(engine):
    factory = db.make_sessionmaker(engine)
    _add(factory, "ou_dup")
    with pytest.raises(IntegrityError):  # the unique key refuses the second row
        _add(factory, "ou_dup")
    with pytest.raises(RuntimeError):
        with factory() as s, s.begin():
            s.execute(text("UPDATE people SET name = 'x'"))
            raise RuntimeError("handler bug")
    finished = threading.Event()

    def write() -> None:
        _add(factory, "ou_after")
        finished.set()
    threading.Thread(target=write).start()
    assert finished.wait(5), "a later writer waited for a lock nobody holds"


def test_a_connection_closed_mid_write_releases_the_lock(engine):
    conn = engine.connect()
    conn.execute(text("UPDATE people SET name = 'x'"))
    conn.close()  # given back to the pool without commit or rollback by us
    factory = db.make_sessionmaker(engine)
    finished = threading.Event()
    threading.Thread(target=lambda: (_add(factory, "ou_next"), finished.set())).start()
    assert finished.wait(5)


def test_a_writer_someone_waits_for_goes_first(engine):
    """A click (db.urgent) that arrives while background writers already queue writes before them."""
    factory = db.make_sessionmaker(engine)
    order: list[str] = []

    def write(name: str) -> None:
        with factory() as s, s.begin():
            s.add(Person(tenant_key="t", open_id=f"ou_{name}", name="名", updated_at=datetime.now(timezone.utc)))
            s.flush()   # the first write: the lock is held from here
            order.append(name)

    with factory() as holder, holder.begin():
        _hold = holder.execute(text("UPDATE people SET name = name"))   # the lock is taken
        background = [threading.Thread(target=write, args=(f"background{i}",)) for i in range(3)]
        for t in background:
            t.start()
        time.sleep(0.2)   # all three wait for the lock
        click = threading.Thread(target=db.urgent, args=(write, "click"))
        click.start()
        time.sleep(0.2)
        assert order == []
    for t in (*background, click):
        t.join(10)
    assert order[0] == "click" and sorted(order[1:]) == ["background0", "background1", "background2"], order
