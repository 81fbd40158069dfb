"""Leases: a killed worker's rows are taken over within seconds (F7), a live worker's never, however
long its call takes (its heartbeat renews them), so two workers never send one row twice (F12)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot import outbox
from bot.clock import SystemClock
from bot.models import Outbox
from bot.outbox import OutboxSender, SendText
from tests.driver import NAMES, TENANT
from tests.test_outbox_concurrency import MSG_PATH, Gate, add_chats, running, sender_through, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOOMED = """
import asyncio, sys
from bot import db
from bot.clock import SystemClock
from bot.feishu import FeishuClient
from bot.outbox import OutboxSender

async def main(url, base):
    engine = db.make_engine(url)
    client = FeishuClient(app_id="cli_doomed", app_secret="s", base_url=base, timeout=300)
    sender = OutboxSender(db.make_sessionmaker(engine), client, SystemClock(), me="doomed-worker")
    await sender.run_forever(idle_seconds=0.1)

asyncio.run(main(*sys.argv[1:3]))
"""


def _rows(world, chats) -> list[Outbox]:
    with world.state.factory() as s:
        return list(s.scalars(select(Outbox).where(Outbox.chat_id.in_(chats)).order_by(Outbox.id)))


def test_rows_of_a_killed_worker_are_sent_by_a_new_one_within_the_lease(world):
    """SIGKILL mid-send (no clean-up runs): the default lease, not minutes, decides the wait."""
    chats = [f"oc_kill_{i}" for i in range(3)]
    add_chats(world, chats)
    now = SystemClock().now()
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=chat, key=f"reply-{chat}", now=now,
                               ops=[SendText("收到")])
    silent = socket.socket()  # accepts connections, never answers: every call hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    doomed = subprocess.Popen([sys.executable, "-c", DOOMED, world.settings.database_url,
                               f"http://127.0.0.1:{silent.getsockname()[1]}"], cwd=ROOT)
    try:
        wait_until(lambda: {r.claimed_by for r in _rows(world, chats)} == {"doomed-worker"},
                   "the doomed worker holds every row", timeout=30)
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        silent.close()
    new = OutboxSender(world.state.factory, world.state.client, SystemClock(), me="new-worker",
                       renderers=world.state.sender.renderers, context=world.state.sender.context)
    first_try = world.http.portal.call(new.run_once)
    assert first_try == [], "a lease that may still be alive is respected"
    deliveries = []
    while len(deliveries) < len(chats) and time.monotonic() - killed_at < 25:
        time.sleep(0.2)
        deliveries += world.http.portal.call(new.run_once)
    waited = time.monotonic() - killed_at
    assert sorted(d.status for d in deliveries) == ["sent"] * 3
    assert waited <= outbox.LEASE.total_seconds() + 5, waited
    assert all(r.status == "sent" and r.claimed_by == "new-worker" and r.attempts == 2
               for r in _rows(world, chats))
    assert all(world.texts(chat) == ["收到"] for chat in chats)


def test_a_live_workers_long_call_keeps_its_lease(world):
    """A call hanging far past the lease (the clock runs 3 minutes): the heartbeat keeps the row,
    a second worker polling all the while takes nothing, and the group gets one message."""
    chat = "oc_long_call"
    add_chats(world, [chat])
    with world.state.factory() as s, s.begin():
        outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=chat, key="reply", now=world.clock.now(),
                           ops=[SendText("一条回复")])
    gate = Gate(world.fake)
    gate.hold(lambda c, _path: c == chat)
    holder = sender_through(world, gate, me="worker-a")
    holder.heartbeat_seconds = 0.02
    rival = OutboxSender(world.state.factory, world.state.client, world.clock, me="worker-b",
                         renderers=world.state.sender.renderers, context=world.state.sender.context)
    rival_got = []
    with running(world, holder):
        wait_until(lambda: gate.waiting(chat), "worker-a's call is in flight")
        for _ in range(36):                       # 36 × 5 s of bot time, each beat gets a chance
            world.clock.advance(timedelta(seconds=5))
            time.sleep(0.1)
            rival_got += world.http.portal.call(rival.run_once)
        gate.release()
        wait_until(lambda: _rows(world, [chat])[0].status == "sent", "worker-a finishes")
    assert rival_got == []
    row = _rows(world, [chat])[0]
    assert row.claimed_by == "worker-a" and row.attempts == 1
    calls = Counter(c.uuid for c in world.fake.calls_to(MSG_PATH, "POST"))
    assert list(calls.values()) == [1] and world.texts(chat) == ["一条回复"]


def test_lease_is_seconds_and_beats_leave_room_for_a_missed_one():
    assert outbox.LEASE <= timedelta(seconds=20)
    assert outbox.HEARTBEAT_SECONDS * 2 < outbox.LEASE.total_seconds()
    assert NAMES  # the sample people exist for add_chats
