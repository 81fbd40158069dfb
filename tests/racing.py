"""Racers for the concurrency tests: stored events processed by threads released together, planning
ticks on their own engines, and a second process's outbox sender beside the world's. Each returns
every racer's result, so the tests assert on all of them."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator

from sqlalchemy import event

from bot import db
from bot.envelope import parse_event
from bot.outbox import OutboxSender
from feishu_fake import events as ev
from handlers.jobs import plan_tick
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


# How long a click that reached its first write waits for the others to reach theirs: where clicks
# on one case run one after another the others cannot, and the first goes on after this.
MEET_SECONDS = 1.0


@contextmanager
def meeting_before_first_write(engine, n: int) -> Iterator[None]:
    """Every callback transaction that starts meanwhile (its inbox row is its first statement)
    waits, at its first write after that, until `n` of them are there (or MEET_SECONDS passed):
    each has made its checks and none has written yet — the moment two clicks' checks both pass
    when nothing makes the second wait for the first, however the threads happen to be scheduled."""
    meeting = threading.Barrier(n)

    def before(conn, _cursor, statement, *_args):
        head = statement.lstrip()[:24].upper()
        if head.startswith("INSERT INTO INBOX_EVENTS"):
            conn.info["racing"] = True
        elif head.startswith(("INSERT", "UPDATE", "DELETE")) and conn.info.pop("racing", False):
            try:
                meeting.wait(MEET_SECONDS)
            except threading.BrokenBarrierError:
                pass   # the others wait for this one (its lock): it goes on alone

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)


def callbacks_at_once(world, clicks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Card callbacks (each `clicks` item: card_action_event's user, message_id, form / value,
    name) posted to the webhook by threads released at the same moment, as Feishu delivers a
    double click: each through the front door, the callback lane and its one transaction, the
    database deciding; they meet after their checks (meeting_before_first_write). Every answer is
    put into the clicked card as Feishu does, in the order they came back, and the group's cards
    are redrawn. Feishu's view of each answer (status and body), in the order of `clicks`."""
    payloads = [ev.card_action_event(chat_id=c.get("chat", CHAT), message_id=c["message_id"],
                                     operator_open_id=c["user"], value=c.get("value"), form_value=c.get("form"),
                                     name=c.get("name"), **world._common()) for c in clicks]
    barrier = threading.Barrier(len(payloads))

    def run(payload):
        barrier.wait()
        response = world.post(payload)
        return time.monotonic(), response

    with meeting_before_first_write(world.state.engine, len(payloads)), ThreadPoolExecutor(len(payloads)) as pool:
        results = list(pool.map(run, payloads))
    answers = [{"status": r.status_code, **(r.json() if r.status_code == 200 else {})} for _t, r in results]
    for (_t, _r), click, answer in sorted(zip(results, clicks, answers), key=lambda x: x[0][0]):
        if "card" in answer:
            world.fake.apply_callback_card(click["message_id"], answer["card"]["data"])
    world.clock.advance(timedelta(seconds=2))   # the cards' redraws are due
    world.drain()
    return answers


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
