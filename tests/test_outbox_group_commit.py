"""Sends that finish close together record their results in one write transaction (group
commit), and every guarantee of one transaction per result holds: each row is marked sent once
with its message id, a group's next row goes out only after its previous row's result is
committed (a patch never overtakes its send), a refused row does not fail its neighbours, and
a crash before the results are written sends the row again with the same uuid (one message)."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

from sqlalchemy import event, select

from bot import outbox
from bot.models import Outbox
from bot.outbox import SendText
from tests.driver import TENANT
from tests.test_outbox_concurrency import MSG_PATH, Gate, _chat_of, add_chats, sender_through


def _enqueue(world, chats: list[str], numbers, key: str = "k") -> None:
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=chat, key=f"{key}-{chat}",
                               now=world.clock.now(), ops=[SendText(str(n)) for n in numbers])


class ResultWrites:
    """Counts committed transactions that wrote a send's result (`sent_at` is set by nothing else)."""

    def __init__(self, engine) -> None:
        self.count, self.rows_per = 0, []
        self._open: dict[int, int] = {}
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _statement(self, conn, _cursor, statement, params, _context, executemany) -> None:
        s = " ".join(statement.split()).upper()
        if s.startswith("UPDATE OUTBOX SET") and "SENT_AT" in s:
            self._open[id(conn.connection)] = self._open.get(id(conn.connection), 0) + (
                len(params) if executemany else 1)

    def _commit(self, conn) -> None:
        rows = self._open.pop(id(conn.connection), 0)
        if rows:
            self.count += 1
            self.rows_per.append(rows)

    def _rollback(self, conn) -> None:
        self._open.pop(id(conn.connection), None)


def _engine(world):
    return world.state.factory.kw["bind"]


def _rows(world, chats=None) -> list[Outbox]:
    with world.state.factory() as s:
        q = select(Outbox).order_by(Outbox.id)
        if chats is not None:
            q = q.where(Outbox.chat_id.in_(chats))
        return list(s.scalars(q))


def test_sends_that_finish_together_share_a_few_write_transactions(world):
    n = 40
    chats = [f"oc_gc_{i:02d}" for i in range(n)]
    add_chats(world, chats)
    world.fake.limits_enabled = False  # its clock stands still: 40 sends would all fall in one "second"
    gate = Gate(world.fake)
    gate.hold(lambda _chat, path: path.startswith(MSG_PATH))
    sender = sender_through(world, gate, concurrency=n)
    _enqueue(world, chats, [1])
    writes = ResultWrites(_engine(world))

    async def all_answered_at_once():
        run = asyncio.ensure_future(sender.run_once(batch=n))
        while sum(gate.held.values()) < n:   # every send waits at Feishu
            await asyncio.sleep(0.01)
        gate.release()
        return await run

    deliveries = world.http.portal.call(all_answered_at_once)
    assert sorted(d.status for d in deliveries) == ["sent"] * n
    rows = _rows(world, chats)
    assert all(r.status == "sent" and r.message_id for r in rows)
    assert len({r.message_id for r in rows}) == n
    assert [world.texts(chat) for chat in chats] == [["1"]] * n
    assert sum(writes.rows_per) == n, "each result written once"
    assert writes.count <= 5, f"{n} results in {writes.count} transactions: {writes.rows_per}"


def test_order_and_exactly_once_hold_with_batched_results_and_two_senders(world):
    chats = [f"oc_gco_{i:02d}" for i in range(10)]
    add_chats(world, chats)
    world.fake.limits_enabled = False
    numbers = range(1, 7)
    _enqueue(world, chats, numbers)
    seen_out_of_order: list[str] = []

    def check(chat: str, request_text: str) -> None:
        # the previous rows of this group are committed as sent before its next send starts
        k = int(request_text)
        with world.state.factory() as s:
            statuses = list(s.scalars(select(Outbox.status).where(Outbox.chat_id == chat).order_by(Outbox.id)))
        if statuses[:k - 1] != ["sent"] * (k - 1):
            seen_out_of_order.append(f"{chat} {k}: {statuses}")

    gates, senders = [], []
    for me in ("worker-a", "worker-b"):
        gate = Gate(world.fake, latency=lambda: 0.002)
        inner = gate.handle

        async def handle(request, inner=inner):
            if request.url.path.startswith(MSG_PATH) and request.method == "POST":
                body = json.loads(request.content)
                check(_chat_of(request), json.loads(body["content"])["text"])
            return await inner(request)

        gate.handle = handle  # type: ignore[method-assign]
        gates.append(gate)
        senders.append(sender_through(world, gate, me=me, concurrency=6, finish_window=0.02))
    writes = ResultWrites(_engine(world))

    async def both():
        done = await asyncio.gather(*(s.run_once(batch=4) for s in senders))
        return done[0] + done[1]

    deliveries = world.http.portal.call(both)
    # a sender that finds every group busy in the other's hands stops: the rest is sent after
    while len([d for d in deliveries if d.status == "sent"]) < 60:
        more = world.http.portal.call(senders[0].run_once)
        assert more, "nothing left to send, yet not all rows were sent"
        deliveries += more
    assert sorted(d.status for d in deliveries) == ["sent"] * 60
    assert seen_out_of_order == []
    for chat in chats:
        assert world.texts(chat) == [str(n) for n in numbers], chat
    rows = _rows(world, chats)
    assert all(r.status == "sent" and r.message_id for r in rows)
    assert len({r.message_id for r in rows}) == 60, "each row its own message, marked once"
    assert Counter(c.uuid for c in world.fake.calls_to(MSG_PATH, "POST")).most_common(1)[0][1] == 1
    assert sum(writes.rows_per) == 60 and writes.count < 60, writes.rows_per


def test_a_refused_result_does_not_fail_the_rows_written_with_it(world, monkeypatch):
    chats = [f"oc_gcr_{i}" for i in range(6)]
    add_chats(world, chats)
    world.fake.limits_enabled = False
    gate = Gate(world.fake)
    gate.hold(lambda _chat, path: path.startswith(MSG_PATH))
    sender = sender_through(world, gate, concurrency=6)
    _enqueue(world, chats, [1])
    bad = _rows(world, [chats[2]])[0].id
    real = outbox.OutboxSender._finish_row

    def refuse_one(self, session, done):
        if done.row_id == bad:
            raise ValueError("this row's data is refused")
        real(self, session, done)

    monkeypatch.setattr(outbox.OutboxSender, "_finish_row", refuse_one)

    async def all_at_once():
        run = asyncio.ensure_future(sender.run_once(batch=6))
        while sum(gate.held.values()) < 6:
            await asyncio.sleep(0.01)
        gate.release()
        return await run

    deliveries = {d.row_id: d.status for d in world.http.portal.call(all_at_once)}
    assert deliveries.pop(bad) == "error"
    assert set(deliveries.values()) == {"sent"} and len(deliveries) == 5
    by_id = {r.id: r for r in _rows(world, chats)}
    assert by_id[bad].status == "sending"      # sent again with its uuid once its lease ends
    assert all(r.status == "sent" for i, r in by_id.items() if i != bad)


def test_a_crash_before_the_results_are_written_sends_again_with_the_same_uuid(world):
    chats = [f"oc_gcc_{i}" for i in range(3)]
    add_chats(world, chats)
    world.fake.limits_enabled = False
    dead = sender_through(world, Gate(world.fake), me="dead-worker")
    _enqueue(world, chats, [1])

    async def never_written():
        await asyncio.Event().wait()

    async def nothing():
        return None

    dead._flush_finishes = never_written  # type: ignore[method-assign]
    dead._stop = nothing                   # type: ignore[method-assign]  # a dead process releases nothing

    async def answered_then_died():
        run = asyncio.ensure_future(dead.run_forever(idle_seconds=0.05))
        while not all(world.texts(chat) for chat in chats):
            await asyncio.sleep(0.01)
        for task in [run, *dead._tasks, dead._finisher]:
            if task is not None:
                task.cancel()
        await asyncio.gather(run, *dead._tasks, return_exceptions=True)

    world.http.portal.call(answered_then_died)
    assert {r.status for r in _rows(world, chats)} == {"sending"}   # Feishu has them; our rows do not say so
    world.clock.advance(outbox.LEASE + timedelta(seconds=1))
    again = sender_through(world, Gate(world.fake), me="next-worker")
    deliveries = world.http.portal.call(again.run_once)
    assert sorted(d.status for d in deliveries) == ["sent"] * 3
    uuids = Counter(c.uuid for c in world.fake.calls_to(MSG_PATH, "POST"))
    assert sorted(uuids.values()) == [2, 2, 2], "each row sent twice, with its own uuid both times"
    assert [world.texts(chat) for chat in chats] == [["1"]] * 3, "Feishu kept one message each"
    rows = _rows(world, chats)
    assert all(r.status == "sent" and r.attempts == 2 for r in rows)
