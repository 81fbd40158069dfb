"""Claiming is a write transaction: in a fan-out the sender claims rows in batches as chains free
up, not one row per finished send, while a row someone just caused (a kick) is claimed at once."""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from bot import outbox
from bot.models import Outbox
from bot.outbox import SendText
from tests.driver import LEAD, TENANT
from tests.test_outbox_concurrency import Gate, add_chats, help_cards, running, say, sender_through, wait_until


def _spy_claims(monkeypatch) -> list[int]:
    """The real claim_due, recording how many rows each call took."""
    sizes: list[int] = []
    real = outbox.claim_due

    def claim_due(*args, **kwargs):
        claims = real(*args, **kwargs)
        sizes.append(len(claims))
        return claims

    monkeypatch.setattr(outbox, "claim_due", claim_due)
    return sizes


def test_a_fan_out_is_claimed_in_batches_as_chains_free_up(world, monkeypatch):
    chats = [f"oc_fan_{i:03d}" for i in range(256)]
    add_chats(world, chats)
    world.fake.limits_enabled = False  # its clock stands still
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key="standup",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("今日站会")))
    rng = random.Random(3)
    sender = sender_through(world, Gate(world.fake, latency=lambda: rng.uniform(0.005, 0.03)), concurrency=64)
    sizes = _spy_claims(monkeypatch)
    deliveries = world.http.portal.call(sender.run_once)
    assert sorted(d.status for d in deliveries) == ["sent"] * 256
    assert all(len(world.fake.messages(c)) == 1 for c in chats)
    assert sizes[0] == 64
    # then one claim per 16 finished chains (a quarter of 64), not one per finished send, and
    # after the last rows only a few claims that find nothing (one per 16 finished, at most)
    taking = [n for n in sizes if n]
    assert all(n >= sender.refill for n in taking[:-1]), sizes
    assert len(taking) <= 1 + 192 // 16 + 1, sizes
    assert sizes.count(0) <= 64 // sender.refill, sizes
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(Outbox).where(Outbox.status == "sent")) == 256


def test_a_reply_is_claimed_at_once_while_most_chains_hang(world, monkeypatch):
    slow = [f"oc_hangs_{i}" for i in range(7)]
    asker = "oc_asks_for_help"
    add_chats(world, [*slow, asker])
    with world.state.factory() as s, s.begin():
        for chat in slow:
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key="standup",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("今日站会")))
    gate = Gate(world.fake)
    gate.hold(lambda chat, _path: chat in slow)
    sender = sender_through(world, gate, concurrency=8)   # refill 2: one free chain is below it
    assert sender.refill == 2
    # a long idle tick: only the kick can make the claim happen soon
    with running(world, sender, idle_seconds=30):
        wait_until(lambda: all(gate.waiting(c) for c in slow), "seven sends hang")
        say(world, asker, LEAD, "/帮助")
        wait_until(lambda: help_cards(world, asker), "the reply went out while seven chains hang", timeout=5)
        assert all(gate.waiting(c) for c in slow)
        gate.release()
        wait_until(lambda: all(world.fake.messages(c) for c in slow), "the hanging sends finish")


def test_a_row_another_process_wrote_is_claimed_while_one_chat_trickles(world):
    """A busy chat finishing a send every 0.2 s wakes the loop again and again, but never 16
    times in a row quickly: rows written elsewhere (no kick reaches this process) still go out
    within the idle tick, not after a quarter of the chains finished."""
    busy, other = "oc_busy_backlog", "oc_written_elsewhere"
    add_chats(world, [busy, other])
    world.fake.limits_enabled = False
    with world.state.factory() as s, s.begin():
        for i in range(40):
            outbox.enqueue(s, tenant_key=TENANT, chat_id=busy, kind="immediate", fire_key=f"reply-{i}",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText(f"回复 {i}")))
    gate = Gate(world.fake, latency=lambda: 0.2)
    sender = sender_through(world, gate, concurrency=64)
    with running(world, sender, idle_seconds=0.5):
        wait_until(lambda: len(world.fake.messages(busy)) >= 2, "the busy chat is sending")
        with world.state.factory() as s, s.begin():   # as another replica or a planner elsewhere would
            outbox.enqueue(s, tenant_key=TENANT, chat_id=other, kind="immediate", fire_key="standup",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("今日站会")))
        wait_until(lambda: world.fake.messages(other), "the other group's row went out", timeout=1.5)
        assert len(world.fake.messages(busy)) < 40   # the backlog was still going


def test_rows_already_stale_are_settled_by_the_claim_not_rendered_one_by_one(world, monkeypatch):
    """Yesterday's standup, nudge and close of 30 groups are due and stale (planned after the
    bot was down); today's standup is due too. The claim marks the stale ones skipped_stale in
    one statement (they sorted first and used to be claimed and opened one transaction each
    before any of today's went out) and claims today's rows only."""
    chats = [f"oc_stale_{i:02d}" for i in range(30)]
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        for chat in chats:
            for kind, hours in [("standup", 24), ("standup_nudge", 23.5), ("standup_close", 23)]:
                outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind=kind, fire_key="yesterday",
                               due_at=now - timedelta(hours=hours), stale_after=now - timedelta(hours=hours - 0.5))
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key="today",
                           due_at=now, stale_after=now + timedelta(hours=1),
                           payload=outbox.dump_op(SendText("今日站会")))
    claims = outbox.claim_due(world.state.factory, me="w", now=now, batch=30)
    assert len(claims) == 30
    with world.state.factory() as s:
        claimed = s.scalars(select(Outbox.fire_key).where(Outbox.id.in_([c.id for c in claims]))).all()
        statuses = dict(s.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
    assert set(claimed) == {"today"}
    assert statuses == {"sending": 30, "skipped_stale": 90}


def test_the_stale_sweep_runs_at_most_once_a_second_unless_a_backlog_is_left(world, monkeypatch):
    """The sweep reads every pending due row inside the claim's write transaction, so during a
    fan-out (a claim many times a second) it runs with a claim only once a second of the clock;
    while sweeps come back full (a backlog after downtime) every claim sweeps until it is gone."""
    sweeps: list[tuple[bool, int]] = []
    real = outbox.claim_due

    def claim_due(*args, **kwargs):
        claims = real(*args, **kwargs)
        sweeps.append((kwargs["sweep_stale"], claims.stale_swept))
        return claims

    monkeypatch.setattr(outbox, "claim_due", claim_due)
    now = world.clock.now()
    chats = [f"oc_sweep_{i:03d}" for i in range(outbox.STALE_BATCH + 50)]
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="standup", fire_key="yesterday",
                           due_at=now - timedelta(hours=24), stale_after=now - timedelta(hours=23))
    sender = sender_through(world, Gate(world.fake))

    def claim() -> None:
        async def go():
            await sender._claim_more(10, force=True)
        world.http.portal.call(go)

    claim()
    claim()                       # the first sweep was full: the next claim sweeps again
    claim()                       # that one found the rest: no sweep until a second has passed
    world.clock.advance(timedelta(seconds=0.5))
    claim()
    world.clock.advance(timedelta(seconds=0.6))
    claim()
    assert sweeps == [(True, outbox.STALE_BATCH), (True, 50), (False, 0), (False, 0), (True, 0)]
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).where(Outbox.status == "skipped_stale")) == len(chats)


def test_a_claim_builds_no_statement_and_still_leaves_held_and_busy_rows(world, monkeypatch):
    """The claim's statements are built once (building them cost 6 ms of CPU a claim, more than
    running them, and the sender claims after every kick); the parameters still do their work:
    a chat with a send in flight waits, a row this worker holds is not taken back."""
    add_chats(world, ["oc_claim_a", "oc_claim_b"])
    now = world.clock.now()

    def due(chat: str, key: str) -> None:
        with world.state.factory() as s, s.begin():
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key=key,
                           due_at=now, payload=outbox.dump_op(SendText("提醒")))

    def no_building(*_args, **_kwargs):
        raise AssertionError("a claim built a statement")
    monkeypatch.setattr(outbox, "aliased", no_building)
    due("oc_claim_a", "a1")
    first = outbox.claim_due(world.state.factory, me="w", now=now, batch=10)
    assert [c.chat_id for c in first] == ["oc_claim_a"]
    due("oc_claim_a", "a2")
    due("oc_claim_b", "b1")
    second = outbox.claim_due(world.state.factory, me="w", now=now, batch=10)
    assert [c.chat_id for c in second] == ["oc_claim_b"]   # chat a has a send in flight: a2 waits
    expired = now + outbox.LEASE + timedelta(seconds=1)
    held = [c.id for c in first + second]
    third = outbox.claim_due(world.state.factory, me="w", now=expired, batch=10, exclude=held)
    assert {c.id for c in third}.isdisjoint(held) and len(third) == 1   # a2; its own expired leases stay
    assert {c.id for c in outbox.claim_due(world.state.factory, me="w", now=expired, batch=10)} == set(held)
