"""A restart handles at once what the previous process acknowledged and never handled (F6): no
waiting for the inbox sweep, and the replies go out through the sender it starts."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot.models import InboxEvent
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, LEAD, OTHER_CHAT, TENANT, VERIFICATION_TOKEN, FeishuWorld
from tests.test_outbox_concurrency import help_cards, wait_until


def _help(world, chat):
    return ev.message_event(chat_id=chat, sender_open_id=LEAD, text="/帮助", app_id=APP_ID, tenant_key=TENANT,
                            token=VERIFICATION_TOKEN, create_ms=int(world.clock.now().timestamp() * 1000))


async def _start(state):
    import bot.app as app_module

    state.spawn(app_module._start(state))
    await asyncio.wait_for(state.ready.wait(), timeout=20)


def test_restart_handles_events_acknowledged_just_before_the_crash_at_once(database_url, clock):
    first = FeishuWorld(database_url, clock)
    first.state.spawn = lambda coro: coro.close()  # answered 200, then the process died
    for chat in (CHAT, OTHER_CHAT):
        assert first.post(_help(first, chat)).status_code == 200
    first.close()
    clock.advance(timedelta(seconds=1))              # back a second later; the clock stays there

    second = FeishuWorld(database_url, clock, fake=first.fake)
    try:
        second.http.portal.call(_start, second.state)
        with second.state.factory() as s:
            assert set(s.scalars(select(InboxEvent.status))) == {"done"}  # before ready, no sweep tick
        wait_until(lambda: all(help_cards(second, chat) for chat in (CHAT, OTHER_CHAT)),
                   "both replies sent by the restarted sender", timeout=5)
    finally:
        second.state.ticker.shutdown()
        second.close()
    assert [len(help_cards(second, chat)) for chat in (CHAT, OTHER_CHAT)] == [1, 1]
