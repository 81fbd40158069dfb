"""Group chatter: the messages that change nothing, answered without a database transaction.

With the `im:message.group_msg` scope every message of every group reaches the webhook, and most
of them are people talking to each other. Such a message changes nothing: no command, not
addressed to the bot, and no handler looks at it (`Dispatcher._message` returns before any
handler runs). Storing it in the inbox and claiming it again cost two transactions per message
for nothing, so it is answered at once and never stored; its redelivery is classified the same
way and so does nothing either.

The one thing the bot learns from chatter is display names from @mentions (for toasts and
exports). `NameBook` keeps the names it has written in a bounded cache and writes only new or
changed ones, many messages' worth in one transaction (the inbox's group commit, applied to
names). Names are a convenience, not a promise: a batch lost in a crash or an outage comes back
with the next mention and with the next member-list sync.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.envelope import Event, MessageEvent
from bot.models import Person
from bot.routing import split_command

log = logging.getLogger(__name__)

EVERY_MESSAGE = "im.message.receive_v1"  # a Router event under this name would see every message


def is_chatter(event: Event, *, bot_open_id: str, every_message_handled: bool) -> bool:
    """True for a message whose handling changes nothing, decided exactly as `Dispatcher._message`
    decides it: a bot's own message, or text that is not a command and does not mention the bot.
    While the bot's open_id is not known yet, a message with any mention takes the durable path
    (it might address the bot)."""
    if not isinstance(event, MessageEvent) or every_message_handled:
        return False
    if event.sender_type and event.sender_type != "user":
        return True
    if split_command(event.text) is not None:
        return False
    if not bot_open_id:
        return not event.mentions
    return not any(m.open_id == bot_open_id for m in event.mentions)


def mentioned_names(event: MessageEvent, bot_open_id: str) -> list[tuple[str, str]]:
    """The (open_id, name) pairs a user's message teaches (the bot itself excluded)."""
    if event.sender_type and event.sender_type != "user":
        return []
    return [(m.open_id, m.name) for m in event.mentions if m.open_id and m.name and m.open_id != bot_open_id]


class NameBook:
    """Display names seen in chatter, written in batches; only new or changed ones are written."""

    CACHE = 50_000   # (tenant, open_id) pairs remembered as written; the oldest are forgotten
    PENDING = 5_000  # names waiting while the database is down; beyond that new ones are dropped

    def __init__(self, factory: sessionmaker[Session], clock: Clock) -> None:
        self.factory, self.clock = factory, clock
        self._written: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._pending: dict[tuple[str, str], str] = {}
        self._flushing = False

    def note(self, tenant_key: str, people: list[tuple[str, str]]) -> bool:
        """Queue what is new; True when something waits to be written."""
        for open_id, name in people:
            key, name = (tenant_key, open_id), name[:100]
            if self._written.get(key) == name:
                self._written.move_to_end(key)
            elif len(self._pending) < self.PENDING or key in self._pending:
                self._pending[key] = name
        return bool(self._pending)

    def flush(self) -> int:
        """Write what is pending in one transaction; returns how many names were written."""
        batch, self._pending = self._pending, {}
        return self._settle(batch, self._write(batch))

    def flush_soon(self, spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        """Start one writer if none runs; what arrives while it writes forms its next batch."""
        if not self._flushing and self._pending:
            self._flushing = True
            spawn(self._run())

    async def _run(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let requests read in this loop iteration join the batch
                batch, self._pending = self._pending, {}  # swapped and settled on the loop
                if not self._settle(batch, await asyncio.to_thread(self._write, batch)):
                    return  # the database refused: the next mention tries again
        finally:
            self._flushing = False

    def _write(self, batch: dict[tuple[str, str], str]) -> bool:
        if not batch:
            return True
        now = self.clock.now()
        rows = [{"tenant_key": tenant_key, "open_id": open_id, "name": name[:100], "updated_at": now}
                for (tenant_key, open_id), name in batch.items() if open_id and name]
        try:
            with self.factory() as session, session.begin():
                conn = session.connection()
                conn.execute(_upsert_names(conn.dialect.name), rows)
        except SQLAlchemyError as exc:
            log.warning("could not store %d display name(s) (%s); retried with the next mention",
                        len(batch), type(exc).__name__)
            return False
        return True

    def _settle(self, batch: dict[tuple[str, str], str], written: bool) -> int:
        if not written:
            for key, name in batch.items():  # names noted meanwhile are newer and win
                if len(self._pending) < self.PENDING:
                    self._pending.setdefault(key, name)
            return 0
        for key, name in batch.items():
            self._written[key] = name
            self._written.move_to_end(key)
        while len(self._written) > self.CACHE:
            self._written.popitem(last=False)
        return len(batch)


@lru_cache(maxsize=2)
def _upsert_names(dialect: str) -> Insert:
    """The batch as ONE statement: new names inserted, changed ones updated, unchanged ones left
    alone (as `repository.remember_people` does, without its look-up, a savepoint per new person
    and an ORM flush: mentions of people whose display names the bot has not seen yet are most
    of what chatter writes). Built once per dialect."""
    table = cast(Table, Person.__table__)
    insert = postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    return insert.on_conflict_do_update(
        index_elements=["tenant_key", "open_id"],
        set_={"name": insert.excluded.name, "updated_at": insert.excluded.updated_at},
        where=table.c.name != insert.excluded.name)
