"""Claiming is a write transaction: in a fan-out the sender claims rows in batches as chains free
up, not one row per finished send, while a row someone just caused (a kick) is claimed at once."""
from __future__ import annotations

import random

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
