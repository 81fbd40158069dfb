"""From a verified event to its handler, exactly once.

1. `store` writes the event to the inbox (unique event_id; message_id for messages) in its
   own committed transaction — only then do we answer 200.
2. `process` claims the inbox row and runs the handler in ONE transaction with the claim
   and the outbox rows for whatever the handler wants sent. A crash before commit leaves the
   row pending (a restart finishes it); after commit the sends are durable.
A card callback, answered inline, takes both steps in one transaction (`callback`): its row is
written already done with the handler's changes and sends, or not at all.
Concurrency conflicts (two clicks racing on one row) are retried; a UserError becomes a
clear answer and changes nothing; an unexpected error is logged with a reference id.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any, Callable, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Insert, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot import db, outbox, repository, texts
from bot.actions import ActionError, ActionValue, from_name
from bot.chatter import EVERY_MESSAGE, NameBook, is_chatter, mentioned_names
from bot.clock import Clock
from bot.domain import CaseStatus
from bot.envelope import MAX_TEXT, BotAddedEvent, BotRemovedEvent, CardAction, Event, MessageEvent, parse_event
from bot.models import InboxEvent
from bot.routing import CallbackAnswer, CaseArchived, Ctx, Router, UserError, split_command

log = logging.getLogger(__name__)

RETRIES = 4


class DatabaseUnavailable(Exception):
    """The inbox could not be written: answer 503 so Feishu retries."""


class Refused:
    """The database refused the event's data (answered 400)."""


REFUSED = Refused()


def _retrying(exc: Exception, what: str, event_id: str, attempt: int) -> bool:
    """Whether `exc` is two transactions racing (a unique row written twice, a row changed under
    us, PostgreSQL's deadlock or serialisation failure) or a connection lost under the transaction
    (the next attempt takes a new one): logged, and the caller tries again. Any other
    OperationalError is the database being unavailable."""
    if isinstance(exc, OperationalError):
        if exc.connection_invalidated:   # a pooled connection the server dropped: nothing was kept
            name = "connection lost"
        elif not db.is_conflict(exc):
            return False
        else:
            name = type(exc.orig).__name__
    else:
        name = type(exc).__name__
    log.info("%s %s conflicted (%s), retry %d", what, event_id, name, attempt + 1)
    return True


def _chat_of(event: Event) -> str:
    return getattr(event, "chat_id", "") or ""


def _group_of(session: Session, event: Event) -> str:
    """The chat an event acts in. A click on a form the bot sent to someone's 1:1 chat (where a
    private card in the group could not serve) acts in the group the form belongs to — only for
    the person it was sent to."""
    chat = _chat_of(event)
    if isinstance(event, CardAction) and event.message_id:
        card = repository.posted_card(session, tenant_key=event.header.tenant_key, message_id=event.message_id)
        if card is not None and card.private_for and card.private_for == _actor(event) and card.chat_id != chat:
            return card.chat_id
    return chat


class Dispatcher:
    def __init__(self, factory: sessionmaker[Session], router: Router, clock: Clock, tz: ZoneInfo, *,
                 on_outbox: Callable[[], None] = lambda: None) -> None:
        self.factory, self.router, self.clock, self.tz = factory, router, clock, tz
        self.on_outbox = on_outbox
        self.bot_open_id = ""
        self.names = NameBook(factory, clock)
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._batch: list[tuple[dict[str, Any], Event, asyncio.Future[bool | None]]] = []
        self._flushing = False

    # ------------------------------------------------------------ intake
    def take_chatter(self, event: Event) -> bool:
        """True if the event is chatter (bot.chatter): it is not stored; the names its mentions
        teach are queued for the next batched write (`names.flush_soon`)."""
        if not is_chatter(event, bot_open_id=self.bot_open_id,
                          every_message_handled=EVERY_MESSAGE in self.router.events):
            return False
        assert isinstance(event, MessageEvent)
        self.names.note(event.header.tenant_key, mentioned_names(event, self.bot_open_id))
        return True

    # ------------------------------------------------------------ inbox
    def store(self, payload: dict[str, Any], event: Event) -> bool | None:
        """True if this is the first delivery of the event (None: refused, see store_many)."""
        return self.store_many([(payload, event)])[0]

    def store_many(self, items: list[tuple[dict[str, Any], Event]]) -> list[bool | None]:
        """Insert several events in ONE committed transaction (group commit); for each, True if
        it is the first delivery, False for a duplicate (event_id, or message_id for messages,
        also within the batch), None if the database refused that row's data. A refused row
        never fails its neighbours: the batch is then written again row by row."""
        rows, owner = self._inbox_rows(items)
        try:
            inserted = self._insert(rows)
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)[:200]) from exc
        except (StatementError, ValueError, TypeError) as exc:
            log.warning("inbox batch of %d refused (%s); writing row by row", len(rows), type(exc).__name__)
            inserted, refused = self._insert_one_by_one(rows)
            return [None if i is not None and i in refused else
                    (i is not None and rows[i]["event_id"] in inserted) for i in owner]
        return [i is not None and rows[i]["event_id"] in inserted for i in owner]

    def _inbox_rows(self, items: list[tuple[dict[str, Any], Event]]
                    ) -> tuple[list[dict[str, Any]], list[int | None]]:
        now = self.clock.now()
        rows: list[dict[str, Any]] = []
        first_of: dict[tuple[str, str], int] = {}
        owner: list[int | None] = []
        for payload, event in items:
            h = event.header
            message_id = event.message_id if isinstance(event, MessageEvent) else None
            keys = [("e", h.event_id)] + ([("m", message_id)] if message_id else [])
            if any(k in first_of for k in keys):
                owner.append(None)  # the same event twice in one batch: the later one is a duplicate
                continue
            for k in keys:
                first_of[k] = len(rows)
            owner.append(len(rows))
            rows.append(dict(event_id=h.event_id, event_type=h.event_type, tenant_key=h.tenant_key,
                             chat_id=_chat_of(event), payload=payload, received_at=now, message_id=message_id,
                             status="pending", attempts=0))
        return rows, owner

    def _insert(self, rows: list[dict[str, Any]]) -> set[str]:
        with self.factory() as session, session.begin():
            # Core insert on the connection: the ORM bulk path costs ~15 µs more per row.
            conn = session.connection()
            stmt = _insert_ignoring_duplicates(conn.dialect.name, True)
            return set(conn.execute(stmt, rows).scalars())

    def _insert_one_by_one(self, rows: list[dict[str, Any]]) -> tuple[set[str], set[int]]:
        inserted: set[str] = set()
        refused: set[int] = set()
        for index, row in enumerate(rows):
            try:
                inserted |= self._insert([row])
            except OperationalError as exc:
                raise DatabaseUnavailable(str(exc.orig)[:200]) from exc
            except (StatementError, ValueError, TypeError) as exc:
                log.warning("inbox refused event %s: %s", row["event_id"], type(exc).__name__)
                refused.add(index)
        return inserted, refused

    async def astore(self, payload: dict[str, Any], event: Event) -> bool | None:
        """`store` for the event loop: concurrent callers share one transaction (the inbox insert
        dominates the ack path; one commit per request caps it at a few hundred per second on
        SQLite). Each caller still gets its answer only after its row is committed."""
        loop = asyncio.get_running_loop()
        if self._batch_loop is not loop:
            self._batch_loop, self._batch, self._flushing = loop, [], False
        future: asyncio.Future[bool | None] = loop.create_future()
        self._batch.append((payload, event, future))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """One writer at a time; whatever arrives while it writes forms the next batch."""
        try:
            while self._batch:
                await asyncio.sleep(0)  # let requests read in this loop iteration join the batch
                batch, self._batch = self._batch, []
                try:
                    results = await asyncio.to_thread(self.store_many, [(p, e) for p, e, _f in batch])
                except BaseException as exc:
                    for _p, _e, future in batch:
                        if not future.done():
                            future.set_exception(exc if isinstance(exc, Exception)
                                                 else DatabaseUnavailable("shutting down"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_p, _e, future), first in zip(batch, results):
                    if not future.done():
                        future.set_result(first)
        finally:
            self._flushing = False

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

    PRUNE_BATCH = 2000

    def prune_inbox(self, keep: timedelta) -> int:
        """Delete handled rows older than `keep` (past Feishu's redelivery window), a batch per
        transaction so a large backlog never holds a long lock; returns how many went."""
        cutoff, total = self.clock.now() - keep, 0
        while True:
            with self.factory() as session, session.begin():
                old = select(InboxEvent.event_id).where(InboxEvent.status == "done", InboxEvent.processed_at < cutoff) \
                    .limit(self.PRUNE_BATCH)
                gone = db.rowcount(session.execute(delete(InboxEvent).where(InboxEvent.event_id.in_(old))
                                                .execution_options(synchronize_session=False)))
            total += gone
            if gone < self.PRUNE_BATCH:
                return total

    # ------------------------------------------------------------ processing
    def process(self, event_id: str, event: Event | None = None) -> CallbackAnswer | None:
        """Claim and handle one stored event. `event`: the request's own parsed copy, which saves
        reading the payload back (a restart or the sweep reads it from the row)."""
        for attempt in range(RETRIES):
            try:
                return self._process_once(event_id, event)
            except (IntegrityError, StaleDataError, OperationalError) as exc:
                if _retrying(exc, "event", event_id, attempt):
                    continue
                log.warning("event %s: database unavailable, left pending", event_id)
                return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")
            except Exception:
                ref = uuidlib.uuid4().hex[:8]
                log.exception("event %s failed, ref %s", event_id, ref)
                return self._dead(event_id, ref)
        return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")

    def _process_once(self, event_id: str, known: Event | None = None) -> CallbackAnswer | None:
        now = self.clock.now()
        event: Event | None = None
        try:
            with self.factory() as session, session.begin():
                if not _claim(session, event_id, now):
                    return None  # someone else finished it
                event = known if known is not None and known.header.event_id == event_id else parse_event(
                    session.execute(select(InboxEvent.payload).where(InboxEvent.event_id == event_id))
                    .scalar_one())
                if event is None:
                    return None
                answer, ctx = self._handle(session, event, now)
        except UserError as err:
            assert event is not None
            return self._refuse(event, err, now, None)
        if ctx.ops:
            self.on_outbox()
        return answer

    def _refuse(self, event: Event, err: UserError, now: datetime, row: dict[str, Any] | None
                ) -> CallbackAnswer | None:
        """A UserError: everything the handler did was rolled back with its transaction (no
        savepoint on every event for the few that are refused). The event is marked done in a
        new one, with only the clear answer: a toast for a click, a line in the group for a
        message. `row`: the callback's inbox row, not stored yet (None: claim the stored one)."""
        event_id = event.header.event_id
        with self.factory() as session, session.begin():
            if row is None:
                first = _claim(session, event_id, now)
            else:
                conn = session.connection()
                first = bool(conn.execute(_insert_ignoring_duplicates(conn.dialect.name, True),
                                          [dict(row, status="done", processed_at=now, attempts=1)]).scalars().all())
            if not first:
                return None   # handled meanwhile by someone else
            if isinstance(event, CardAction):
                return CallbackAnswer(toast=err.message, toast_type=err.kind, card=err.card)
            outbox.enqueue_ops(session, tenant_key=event.header.tenant_key, chat_id=_chat_of(event), key=event_id,
                               now=now, ops=[outbox.SendText(err.message)])
        self.on_outbox()
        return None

    def _handle(self, session: Session, event: Event, now: datetime) -> tuple[CallbackAnswer | None, Ctx]:
        """The handler and the outbox rows for what it sends, in the caller's transaction."""
        event_id = event.header.event_id
        ctx = Ctx(session=session, now=now, tz=self.tz, tenant_key=event.header.tenant_key,
                  chat_id=_group_of(session, event), actor=_actor(event), event_id=event_id,
                  bot_open_id=self.bot_open_id, registry=self.router)
        answer = self._call(ctx, event)
        outbox.enqueue_ops(session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, key=event_id,
                           now=now, ops=ctx.ops)
        return answer, ctx

    # ------------------------------------------------------------ card callbacks
    def callback(self, payload: dict[str, Any], event: CardAction) -> CallbackAnswer | None | Refused:
        """A card callback stored in the inbox and handled in ONE transaction: its row is written
        already done, with the handler's changes and outbox rows, or not at all. Someone waits
        for the answer (Feishu gives up after 3 s), so nothing is left to do after it, and one
        transaction costs half of store-then-claim. A redelivery (the row exists) answers None
        and does nothing; a database that cannot be written raises DatabaseUnavailable (503)."""
        rows, _owner = self._inbox_rows([(payload, event)])
        for attempt in range(RETRIES):
            stored = [False]
            try:
                return self._callback_once(rows[0], event, stored)
            except (IntegrityError, StaleDataError, OperationalError) as exc:
                if _retrying(exc, "callback", event.header.event_id, attempt):
                    continue
                assert isinstance(exc, OperationalError)   # the others always are conflicts
                if not stored[0]:
                    raise DatabaseUnavailable(str(exc.orig)[:200]) from exc
                log.warning("callback %s: database unavailable, not handled", event.header.event_id)
                return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")
            except (StatementError, ValueError, TypeError) as exc:
                if stored[0]:
                    return self._dead_callback(rows[0], exc)
                log.warning("inbox refused event %s: %s", event.header.event_id, type(exc).__name__)
                return REFUSED
            except Exception as exc:  # noqa: BLE001 - a handler bug is parked with a reference
                return self._dead_callback(rows[0], exc)
        return CallbackAnswer(toast=texts.BUSY_RETRY, toast_type="warning")

    def _callback_once(self, row: dict[str, Any], event: CardAction, stored: list[bool]) -> CallbackAnswer | None:
        now = self.clock.now()
        try:
            with self.factory() as session, session.begin():
                conn = session.connection()
                done = dict(row, status="done", processed_at=now, attempts=1)
                first = conn.execute(_insert_ignoring_duplicates(conn.dialect.name, True),
                                     [done]).scalars().all()
                stored[0] = True
                if not first:
                    return None   # a redelivery: the first delivery was (or is being) handled
                answer, ctx = self._handle(session, event, now)
        except UserError as err:
            return self._refuse(event, err, now, row)
        if ctx.ops:
            self.on_outbox()
        return answer

    def rehearse(self) -> int:
        """Run the router's rehearsal clicks (synthetic clicks on real rows, `Router.rehearsals`)
        each in a transaction that is always rolled back: nothing is stored or sent. The statements a
        click runs get compiled and its code warm before the first real click; without it a burst
        of clicks right after a start compiled the same statements side by side (the first 20
        progress updates took 70–130 ms longer). Returns how many ran to the end."""
        events: list[CardAction] = []
        for make in self.router.rehearsals:
            try:
                with self.factory() as session:
                    events += make(session)
            except Exception:  # a rehearsal never stops a start
                log.info("rehearsal clicks not built", exc_info=True)
        done, now = 0, self.clock.now()
        for event in events:
            row = dict(self._inbox_rows([({}, event)])[0][0], status="done", processed_at=now, attempts=1)
            with self.factory() as session:
                session.begin()
                try:
                    conn = session.connection()
                    conn.execute(_insert_ignoring_duplicates(conn.dialect.name, True), [row])
                    self._handle(session, event, now)
                    session.flush()
                    done += 1
                except Exception:  # noqa: BLE001 - e.g. a refused form: still rehearsed up to there
                    pass
                finally:
                    session.rollback()
        return done

    def _dead_callback(self, row: dict[str, Any], exc: BaseException) -> CallbackAnswer:
        """The handler failed: the event is kept, parked, with a reference the clicker is shown."""
        ref = uuidlib.uuid4().hex[:8]
        log.error("event %s failed, ref %s", row["event_id"], ref, exc_info=exc)
        try:
            with self.factory() as session, session.begin():
                conn = session.connection()
                conn.execute(_insert_ignoring_duplicates(conn.dialect.name),
                             [dict(row, status="dead", last_error=f"ref {ref}")])
        except Exception:
            log.exception("could not park event %s", row["event_id"])
        return CallbackAnswer(toast=texts.INTERNAL_ERROR.format(ref=ref), toast_type="error")

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
        except Exception:
            log.exception("could not park event %s", event_id)
        return CallbackAnswer(toast=texts.INTERNAL_ERROR.format(ref=ref), toast_type="error")

    # ------------------------------------------------------------ routing
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
        # Mentions carry display names: keep them for toasts and exports.
        repository.remember_people(ctx.session, tenant_key=ctx.tenant_key, now=ctx.now,
                                   people=[(m.open_id, m.name) for m in event.mentions
                                           if m.open_id and m.open_id != self.bot_open_id])
        parsed = split_command(event.text)
        if parsed is not None and event.unreadable:
            raise UserError(texts.UNREADABLE_TEXT)
        if parsed is not None and event.too_long:  # only its start was read: never act on a cut command
            raise UserError(texts.COMMAND_TOO_LONG.format(limit=MAX_TEXT))
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
        if event.unreadable:
            raise UserError(texts.UNREADABLE_INPUT)
        try:
            value = ActionValue.parse(event.value) if isinstance(event.value, dict) and event.value \
                else from_name(event.name)
        except ActionError as exc:
            raise UserError(texts.UNKNOWN_ACTION) from exc
        handler = self.router.actions.get(value.action)
        if handler is None:
            raise UserError(texts.UNKNOWN_ACTION)
        if value.case_id is not None:
            # Clicks on one case run one at a time, each from its checks to its commit, as SQLite's
            # one writer runs every click: on PostgreSQL (READ COMMITTED) two clicks' checks could
            # both read the state before either wrote, and both act (a progress update recorded
            # twice, a request filed twice, the last two tasks finished and the case left in step
            # 5). The case's row lock, taken before anything is checked, makes the second wait and
            # then check what the first left: a repeat is then answered as a repeated click is (the
            # stale-click check below, or the handler's own "already"). A row lock rather than a
            # compare-and-set (`UPDATE … WHERE version = :v`): it covers every check at once —
            # versions counted from rows (update forms), adds with no row to compare yet, guards over
            # several rows (all tasks done) — needs no version bump in every handler, and costs no
            # statement: the read of the case that every such click makes anyway now locks.
            repository.lock_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                                 case_id=value.case_id)
        written = ctx.session.connection().info
        before = db.writes(written)
        session = ctx.session
        ctx.wrote = lambda: bool(session.new or session.dirty or session.deleted) or db.writes(written) > before
        stale = self._stale(ctx, value)
        try:
            answer = stale or handler(ctx, event, value) or CallbackAnswer()
        except CaseArchived as exc:  # show what the button was about instead of refusing
            card = self.router.read_only(ctx, value) if self.router.read_only is not None else None
            if card is None:
                raise
            raise UserError(texts.ARCHIVED_SHOWN, card=card, kind="info") from exc
        hook = self.router.answer_hook
        return hook(ctx, event, answer) if hook is not None else answer

    def _stale(self, ctx: Ctx, value: ActionValue) -> CallbackAnswer | None:
        """A click on a card whose content has changed since it was drawn gets the current card
        and changes nothing (one place for every button that acts on what it showed)."""
        spec = self.router.versioned.get(value.action)
        if spec is None or value.case_id is None:
            return None
        case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                                   case_id=value.case_id)
        if case is None or case.status != CaseStatus.ACTIVE or case.step != spec.step \
                or value.version == spec.current(ctx.session, case, value):
            return None
        return CallbackAnswer(toast=texts.STALE_CARD, toast_type="warning", card=spec.card(ctx, case, value))


def _claim(session: Session, event_id: str, now: datetime) -> bool:
    """Mark a stored event done, if nobody has (compare-and-set: one worker wins)."""
    return bool(db.rowcount(session.execute(
        update(InboxEvent).where(InboxEvent.event_id == event_id, InboxEvent.status == "pending")
        .values(status="done", processed_at=now, attempts=InboxEvent.attempts + 1))))


@functools.cache
def _insert_ignoring_duplicates(dialect: str, returning: bool = False) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING for the inbox, in the connection's dialect (RETURNING the
    event ids inserted). Built once: statements are immutable, and one built anew per event costs
    its construction and its cache key every time."""
    table = cast(Table, InboxEvent.__table__)  # declarative types __table__ as any FromClause
    stmt = (postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table)).on_conflict_do_nothing()
    return stmt.returning(InboxEvent.event_id) if returning else stmt


def _actor(event: Event) -> str:
    if isinstance(event, CardAction):
        return event.operator_open_id
    if isinstance(event, MessageEvent):
        return event.sender_open_id
    if isinstance(event, BotAddedEvent):
        return event.operator_open_id
    return ""


