"""Test fixtures: a real database per test (SQLite file, or PostgreSQL when TEST_DATABASE_URL
is set), no network except loopback, and a Feishu world (fake Open API + signed events)."""
from __future__ import annotations

import os
import shutil
import socket
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from bot import db
from bot.clock import ManualClock
from bot.models import Base

PG_URL = os.environ.get("TEST_DATABASE_URL", "")


# ---------------------------------------------------------------- no real network
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    host = address[0] if isinstance(address, tuple) else address
    if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
        return _real_connect(self, address)
    raise RuntimeError(f"test tried to reach the network: {address!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield


# ---------------------------------------------------------------- database
@pytest.fixture(scope="session")
def _migrated(tmp_path_factory):
    if PG_URL:
        engine = create_engine(db.normalise_url(PG_URL))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        db.upgrade(PG_URL)
        return PG_URL
    template = tmp_path_factory.mktemp("db") / "template.db"
    db.upgrade(f"sqlite:///{template}")
    return str(template)


@pytest.fixture
def database_url(_migrated, tmp_path):
    """A fresh, migrated database for each test."""
    if PG_URL:
        engine = create_engine(db.normalise_url(PG_URL))
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return PG_URL
    path = tmp_path / "bot.db"
    shutil.copy(_migrated, path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock():
    # A Tuesday morning in Shanghai (2026-12-08 09:00 +08:00).
    return ManualClock(datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc))


@pytest.fixture
def fake(clock):
    """The fake Open API alone, on the test's clock (the client tests talk to it directly)."""
    from feishu_fake import FakeFeishu

    return FakeFeishu(app_id="cli_a", app_secret="s3cret", clock=clock)


@pytest.fixture
async def client(fake, clock):
    """A FeishuClient on `fake` whose waits pass in virtual time (the fake's clock moves with them)."""
    import random

    import httpx

    from bot.feishu import FeishuClient
    from tests.test_feishu_client import VirtualTime

    vt = VirtualTime(clock)
    c = FeishuClient(app_id="cli_a", app_secret="s3cret", transport=httpx.MockTransport(fake.handle),
                     sleep=vt.sleep, monotonic=vt.monotonic, random=random.Random(7).random)
    yield c
    await c.aclose()


@pytest.fixture
def world(database_url, clock):
    from tests.driver import FeishuWorld

    w = FeishuWorld(database_url, clock)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def paced(world):
    """A world whose events are 1.5 s of manual time apart: the fake Open API, like Feishu,
    refuses more than 5 messages per second in one group, and the ManualClock never moves alone."""
    from tests.test_steps13_support import pace

    pace(world)
    return world
