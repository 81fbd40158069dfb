"""The ack path's group commit: concurrent inbox inserts share a transaction, and each caller
still learns whether its event is a first delivery (duplicates inside one batch included: S5, F9).
A row the database refuses is tested with the front door's attacks (tests/test_front_door.py)."""
from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.envelope import parse_event
from bot.models import InboxEvent
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, LEAD, TENANT, VERIFICATION_TOKEN


def _message(i: int, **kw):
    payload = ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=f"消息 {i}", app_id=APP_ID,
                               tenant_key=TENANT, token=VERIFICATION_TOKEN, create_ms=1, **kw)
    return payload, parse_event(payload)


def test_concurrent_stores_share_batches_and_spot_duplicates(world):
    items = [_message(i) for i in range(30)]
    same_event = items[3]
    backfill = _message(99, message_id=items[5][1].message_id)  # new event_id, same message
    calls = items + [same_event, backfill, same_event]
    dispatcher = world.state.dispatcher
    batches: list[int] = []
    original = dispatcher.store_many

    def counting(batch):
        batches.append(len(batch))
        return original(batch)

    dispatcher.store_many = counting

    async def all_at_once():
        return await asyncio.gather(*(dispatcher.astore(p, e) for p, e in calls))

    results = world.http.portal.call(all_at_once)
    assert results == [True] * 30 + [False, False, False]
    assert len(batches) < len(calls)  # shared transactions, not one per request
    with world.state.factory() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 30
    # and again later, outside any batch
    assert dispatcher.store(*items[0]) is False
