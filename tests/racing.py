"""Racers for the concurrency tests: stored events processed by threads released together, planning
ticks on their own engines, and a second process's outbox sender beside the world's. Each returns
every racer's result, so the tests assert on all of them."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from bot import db
from bot.envelope import parse_event
from bot.outbox import OutboxSender
from feishu_fake import events as ev
from handlers.reminders import plan_tick
from tests.driver import CHAT, find_submit


def stored_click(world, user: str, message_id: str, value: dict | None = None, *, form: dict | None = None,
                 name: str | None = None, chat: str = CHAT, tenant: str | None = None) -> str:
    """A card callback stored in the inbox, not processed yet (as a replica leaves it): its event id."""
    common = world._common()
    if tenant:
        common["tenant_key"] = tenant
    payload = ev.card_action_event(chat_id=chat, message_id=message_id, operator_open_id=user, value=value,
                                   form_value=form, name=name, **common)
    event = parse_event(payload)
    assert world.state.dispatcher.store(payload, event)
    return event.header.event_id


def process_at_once(world, event_ids: list[str]) -> list[Any]:
    """Process stored events in threads released at the same moment (the real database decides);
    the answers in the order of `event_ids`."""
    barrier = threading.Barrier(len(event_ids))

    def run(event_id):
        barrier.wait()
        return world.state.dispatcher.process(event_id)

    with ThreadPoolExecutor(len(event_ids)) as pool:
        return list(pool.map(run, event_ids))


def plan_ticks_at_once(world, n: int, now: datetime | None = None) -> list[Any]:
    """`n` planning ticks at once, each on its own engine as separate replicas run them; every
    tick's count of rows made, or the exception it raised."""
    at = now or world.clock.now()
    engines = [db.make_engine(world.settings.database_url) for _ in range(n)]
    factories = [db.make_sessionmaker(e) for e in engines]

    async def race():
        return await asyncio.gather(*(asyncio.to_thread(plan_tick, f, at, world.state.dispatcher.router)
                                      for f in factories), return_exceptions=True)

    try:
        return list(world.http.portal.call(race))
    finally:
        for e in engines:
            e.dispose()


def two_senders_at_once(world) -> tuple[list, list]:
    """One run of the world's outbox sender and of a second process's (same client and syncers) at
    once: what each delivered."""
    first = world.state.sender
    second = OutboxSender(world.state.factory, first.client, world.clock, renderers=first.renderers,
                          context=first.context, syncers=first.syncers)

    async def race():
        return await asyncio.gather(first.run_once(), second.run_once())

    one, two = world.http.portal.call(race)
    return one, two


def submit_private_forms_at_once(world, forms: dict[str, dict], typed: dict[str, dict], button: str | None = None
                                 ) -> dict[str, Any]:
    """Everyone in `typed` submits their own private form (`forms[who]`) at the same moment; each
    answer goes into that person's card as Feishu puts it there. The answers, by person."""
    ids = [stored_click(world, who, forms[who]["message_id"], form=form,
                        name=find_submit(forms[who]["content"], button)) for who, form in typed.items()]
    answers = dict(zip(typed, process_at_once(world, ids)))
    for who, answer in answers.items():
        assert answer is not None, who
        if answer.card is not None:
            world.fake.apply_callback_card(forms[who]["message_id"], answer.card)
    world.clock.advance(timedelta(seconds=2))
    world.drain()
    return answers
