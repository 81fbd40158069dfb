"""From a verified event to its handler, exactly once.

1. `store` writes the event to the inbox (unique event_id; message_id for messages) in its
   own committed transaction — only then do we answer 200.
2. `process` claims the inbox row and runs the handler in ONE transaction with the claim
   and the outbox rows for whatever the handler wants sent. A crash before commit leaves the
   row pending (a restart finishes it); after commit the sends are durable.
Concurrency conflicts (two clicks racing on one row) are retried; a UserError becomes a
clear answer and changes nothing; an unexpected error is logged with a reference id.
"""
from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot import outbox, texts
from bot.actions import ActionError, ActionValue, from_name
from bot.clock import Clock
from bot.envelope import BotAddedEvent, BotRemovedEvent, CardAction, Event, MessageEvent, parse_event
from bot.models import InboxEvent
from bot.routing import CallbackAnswer, Ctx, Router, UserError, split_command

log = logging.getLogger(__name__)

RETRIES = 4


class DatabaseUnavailable(Exception):
    """The inbox could not be written: answer 503 so Feishu retries."""


def _chat_of(event: Event) -> str:
    return getattr(event, "chat_id", "") or ""


class Dispatcher:
    def __init__(self, factory: sessionmaker[Session], router: Router, clock: Clock, tz: ZoneInfo, *,
                 on_outbox: Callable[[], None] = lambda: None) -> None:
        self.factory, self.router, self.clock, self.tz = factory, router, clock, tz
        self.on_outbox = on_outbox
        self.bot_open_id = ""

    # ------------------------------------------------------------ inbox
    def store(self, payload: dict[str, Any], event: Event) -> bool:
        """True if this is the first delivery of the event."""
        h = event.header
        row = InboxEvent(event_id=h.event_id, event_type=h.event_type, tenant_key=h.tenant_key,
                         chat_id=_chat_of(event), payload=payload, received_at=self.clock.now(),
                         message_id=event.message_id if isinstance(event, MessageEvent) else None)
        try:
            with self.factory() as session, session.begin():
                session.add(row)
        except IntegrityError:
            return False  # duplicate event_id or message_id: already have it
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)[:200]) from exc
        return True

    def pending_ids(self, older_than: timedelta = timedelta(0)) -> list[str]:
        cutoff = self.clock.now() - older_than
        with self.factory() as session:
            return list(session.scalars(select(InboxEvent.event_id).where(
                InboxEvent.status == "pending", InboxEvent.received_at <= cutoff)
                .order_by(InboxEvent.received_at).limit(500)))

    def process_pending(self, older_than: timedelta = timedelta(0)) -> int:
        """Finish events that were stored but not processed (the process died after the 200)."""
        done = 0
        for event_id in self.pending_ids(older_than):
            self.process(event_id)
            done += 1
        return done

    # ------------------------------------------------------------ processing
    def process(self, event_id: str) -> CallbackAnswer | None:
        for attempt in range(RETRIES):
            try:
                return self._process_once(event_id)
            except (IntegrityError, StaleDataError) as exc:
                log.info("event %s conflicted (%s), retry %d", event_id, type(exc).__name__, attempt + 1)
            except OperationalError:
                log.warning("event %s: database unavailable, left pending", event_id)
                return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")
            except Exception:  # noqa: BLE001 - the one place unexpected errors become answers
                ref = uuidlib.uuid4().hex[:8]
                log.exception("event %s failed, ref %s", event_id, ref)
                return self._dead(event_id, ref)
        return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")

    def _process_once(self, event_id: str) -> CallbackAnswer | None:
        now = self.clock.now()
        with self.factory() as session, session.begin():
            claimed = session.execute(
                update(InboxEvent).where(InboxEvent.event_id == event_id, InboxEvent.status == "pending")
                .values(status="done", processed_at=now, attempts=InboxEvent.attempts + 1)).rowcount
            if not claimed:
                return None  # someone else finished it
            payload = session.scalar(select(InboxEvent.payload).where(InboxEvent.event_id == event_id))
            event = parse_event(payload)
            if event is None:
                return None
            ctx = Ctx(session=session, now=now, tz=self.tz, tenant_key=event.header.tenant_key,
                      chat_id=_chat_of(event), actor=_actor(event), event_id=event_id,
                      bot_open_id=self.bot_open_id)
            answer = self._route(ctx, event)
            outbox.enqueue_ops(session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, key=event_id,
                               now=now, ops=ctx.ops)
        if ctx.ops:
            self.on_outbox()
        return answer

    def _dead(self, event_id: str, ref: str) -> CallbackAnswer:
        try:
            with self.factory() as session, session.begin():
                row = session.get(InboxEvent, event_id)
                if row is not None:
                    row.status, row.last_error = "dead", f"ref {ref}"
                    event = parse_event(row.payload)
                    if isinstance(event, MessageEvent):
                        outbox.enqueue_ops(session, tenant_key=row.tenant_key, chat_id=row.chat_id,
                                           key=event_id, now=self.clock.now(),
                                           ops=[outbox.SendText(texts.INTERNAL_ERROR.format(ref=ref))])
            self.on_outbox()
        except Exception:  # noqa: BLE001
            log.exception("could not park event %s", event_id)
        return CallbackAnswer(toast=texts.INTERNAL_ERROR.format(ref=ref), toast_type="error")

    # ------------------------------------------------------------ routing
    def _route(self, ctx: Ctx, event: Event) -> CallbackAnswer | None:
        try:
            with ctx.session.begin_nested():  # a UserError rolls back only the handler's work
                return self._call(ctx, event)
        except UserError as err:
            ctx.ops.clear()
            if isinstance(event, CardAction):
                return CallbackAnswer(toast=err.message, toast_type=err.kind, card=err.card)
            ctx.send(outbox.SendText(err.message))
            return None

    def _call(self, ctx: Ctx, event: Event) -> CallbackAnswer | None:
        if isinstance(event, CardAction):
            return self._action(ctx, event)
        if isinstance(event, MessageEvent):
            self._message(ctx, event)
        elif isinstance(event, (BotAddedEvent, BotRemovedEvent)):
            handler = self.router.events.get(event.header.event_type)
            if handler:
                handler(ctx, event)
        return None

    def _message(self, ctx: Ctx, event: MessageEvent) -> None:
        if event.sender_type and event.sender_type != "user":
            return
        parsed = split_command(event.text)
        if parsed is None:
            addressed = any(m.open_id and m.open_id == self.bot_open_id for m in event.mentions)
            if addressed and (hint := self.router.events.get("bot.addressed")):
                hint(ctx, event)
            return  # ordinary chatter
        name, args = self._resolve(*parsed)
        handler = self.router.commands.get(name)
        if handler is None:
            raise UserError(texts.UNKNOWN_COMMAND.format(command=name[:20]))
        handler(ctx, event, args)

    def _resolve(self, head: str, args: str) -> tuple[str, str]:
        """Accept '/问题新品推广' (no space) as '/问题' + '新品推广'."""
        if head in self.router.commands:
            return head, args
        for name in sorted(self.router.commands, key=len, reverse=True):
            if head.startswith(name):
                return name, (head[len(name):] + " " + args).strip()
        return head, args

    def _action(self, ctx: Ctx, event: CardAction) -> CallbackAnswer:
        if not event.chat_id:
            raise UserError(texts.WRONG_CHAT)
        try:
            value = ActionValue.parse(event.value) if isinstance(event.value, dict) and event.value \
                else from_name(event.name)
        except ActionError as exc:
            raise UserError(texts.UNKNOWN_ACTION) from exc
        handler = self.router.actions.get(value.action)
        if handler is None:
            raise UserError(texts.UNKNOWN_ACTION)
        return handler(ctx, event, value) or CallbackAnswer()


def _actor(event: Event) -> str:
    if isinstance(event, CardAction):
        return event.operator_open_id
    if isinstance(event, MessageEvent):
        return event.sender_open_id
    if isinstance(event, BotAddedEvent):
        return event.operator_open_id
    return ""


