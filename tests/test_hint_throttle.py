"""The hint after a bare @mention: once per person per group per hour, behind everything else."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot import texts
from bot.models import InboxEvent, Outbox
from bot.outbox import Priority
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, LEAD, OTHER_CHAT, TECH_HEAD, TENANT, VERIFICATION_TOKEN


def _mentions(world):
    return [{"key": "@_user_1", "open_id": world.fake.bot_open_id, "name": "协作助手"}]


def mention(world, user: str, chat: str = CHAT) -> None:
    world.say(user, "@_user_1 在吗", chat=chat, mentions=_mentions(world))


def hints(world, chat: str = CHAT) -> list[str]:
    return [t for t in world.texts(chat) if t == texts.ADDRESSED_HINT]


def test_five_mentions_in_an_hour_get_one_hint_each_person_their_own(world):
    for _ in range(5):
        mention(world, LEAD)
        world.clock.advance(timedelta(minutes=10))
    assert len(hints(world)) == 1
    mention(world, TECH_HEAD)                      # someone else: their own hint
    assert len(hints(world)) == 2
    mention(world, LEAD, chat=OTHER_CHAT)          # the same person in another group: its own
    assert len(hints(world, OTHER_CHAT)) == 1
    world.clock.advance(timedelta(minutes=11))     # 61 minutes after the first hint
    mention(world, LEAD)
    assert len(hints(world)) == 3


def test_an_hour_boundary_does_not_give_a_second_hint(world):
    world.clock.set(datetime(2026, 12, 8, 1, 59, 30, tzinfo=timezone.utc))
    mention(world, LEAD)
    world.clock.set(datetime(2026, 12, 8, 2, 0, 10, tzinfo=timezone.utc))   # a new clock hour, 40 s later
    mention(world, LEAD)
    assert len(hints(world)) == 1
    world.clock.set(datetime(2026, 12, 8, 2, 59, 40, tzinfo=timezone.utc))  # an hour after the hint
    mention(world, LEAD)
    assert len(hints(world)) == 2


def test_two_mentions_handled_at_the_same_moment_give_one_hint(world):
    world.state.spawn = lambda coro: coro.close()  # store both; handle them side by side below
    ids = []
    for _ in range(2):
        payload = ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text="@_user_1 在吗", app_id=APP_ID,
                                   tenant_key=TENANT, token=VERIFICATION_TOKEN, mentions=_mentions(world),
                                   create_ms=int(world.clock.now().timestamp() * 1000))
        assert world.post(payload).status_code == 200
        ids.append(payload["header"]["event_id"])

    async def both():
        return await asyncio.gather(*(asyncio.to_thread(world.state.dispatcher.process, i) for i in ids))

    world.http.portal.call(both)
    world.drain()
    with world.state.factory() as s:
        assert set(s.scalars(select(InboxEvent.status))) == {"done"}
        rows = list(s.scalars(select(Outbox).where(Outbox.kind == "hint")))
    assert [(r.status, r.priority) for r in rows] == [("sent", Priority.HINT)]
    assert len(hints(world)) == 1
