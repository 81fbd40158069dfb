"""Transactional outbox: every message the bot sends is first a row, written in the same
transaction as the state change that caused it, then claimed with a lease and sent with a
Feishu `uuid` derived from its unique key. A crash anywhere neither loses nor doubles a send
(Feishu keeps one message per uuid for an hour; our lease is far shorter).

Rows carry a priority (replies to people, then reminders, then hints): claimed in that order and
granted the pacer's slots in that order, so when the app's quota is the bottleneck a person's
answer does not queue behind a fan-out.

Rows are (tenant, chat, kind, fire_key)-unique, so planning the same reminder twice is
harmless. What a row sends is decided by a *renderer* registered for its kind, called at
delivery time with a database session — so a reminder always shows the current state.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import socket
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Callable, Iterable, Mapping, cast

from sqlalchemy import ColumnElement, Connection, Insert, Table, and_, bindparam, exists, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, aliased, make_transient_to_detached, sessionmaker

from bot import texts
from bot.clock import Clock
from bot.db import rowcount
from bot.feishu import FeishuError, Permanent
from bot.ids import text_mention
from bot.models import Outbox, PostedCard
from bot.pacer import PrioritySemaphore, send_priority
from bot.repository import remember_members, remember_people

log = logging.getLogger(__name__)

# Short, so a dead worker's rows move on within seconds; safe because live workers renew
# theirs (see OutboxSender). Far below Feishu's one-hour uuid dedupe either way.
LEASE = timedelta(seconds=15)
HEARTBEAT_SECONDS = 5.0
FINISH_WINDOW = 0.05   # seconds: under load, at most one transaction of results this often
MAX_ATTEMPTS = 8
RENDER_THREADS = 2     # renders running at once (see OutboxSender._render_slots)
CLAIM_LOCK = 0x6F7574626F78   # PostgreSQL advisory lock key held while claiming ("outbox")


class Priority(IntEnum):
    """Claimed lowest first, and granted pacer slots in that order, when the quota is short."""

    REPLY = 0   # the answer to a command or a click: a person is waiting
    BULK = 1    # reminders, nudges, fan-outs
    HINT = 2    # "what can I do for you?" after a bare @mention


# ---------------------------------------------------------------- operations
@dataclass(frozen=True)
class SendCard:
    card: dict[str, Any]
    bind_case_card: int | None = None   # remember the message as this case's live card
    pin: bool = False
    reply_to: str | None = None
    # what the card shows of which case (a posted_cards row), so it is kept true; None: untracked
    view: str | None = None
    case_id: int | None = None


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class PatchCard:
    message_id: str
    card: dict[str, Any]
    supersede: bool = False   # the card now points to a newer one: never synced again


@dataclass(frozen=True)
class SendPrivate:
    """A form for one person, in the group but visible to them only (ephemeral/v1/send)."""

    open_id: str
    card: dict[str, Any]
    case_id: int | None = None
    view: str = "form"


@dataclass(frozen=True)
class DeletePrivate:
    message_id: str


@dataclass(frozen=True)
class PinMessage:
    """Pin a message already in the group (an output once it is final), instead of posting a copy."""

    message_id: str


@dataclass(frozen=True)
class SyncMembers:
    """Not a message: read the group's member list so cards and toasts can use names."""


@dataclass(frozen=True)
class SyncFeishu:
    """Not a message: bring a case's copy in Feishu (target "tasks": 飞书任务) in line with the bot,
    and read back what changed there (`poll`). Run by the syncer the sender was given for the
    target; as a row of the case's chat it never runs beside another write of that chat."""

    target: str
    case_id: int
    poll: bool = False


Op = SendCard | SendText | PatchCard | SyncMembers | SyncFeishu | SendPrivate | DeletePrivate | PinMessage
# A syncer carries out a SyncFeishu op (bot.sync_tasks); it talks to Feishu through the client.
Syncer = Callable[[Outbox, "SyncFeishu"], Any]
# A renderer turns a claimed row into what to send now; returning None skips the row. Reminder
# kinds register theirs on a Router (`@router.renderer(kind)`); the sender is given them.
Renderer = Callable[[Session, Outbox, datetime, Any], "list[Op] | None"]   # the last: the sender's context


@dataclass(frozen=True)
class Bundle:
    """Reminder kinds that fall due for one group together go out as ONE message: `merge` turns
    the ops of each row (in due order) into the ops of that one message."""

    kinds: frozenset[str]
    merge: Callable[[list[list[Op]]], list[Op]]


def feishu_uuid(row: Outbox, index: int = 0) -> str:
    """≤ 50 chars, stable for the row (and op index), so a retry is deduplicated by Feishu."""
    key = f"{row.tenant_key}|{row.chat_id}|{row.kind}|{row.fire_key}|{index}"
    return "ob-" + hashlib.sha256(key.encode()).hexdigest()[:40]


# ---------------------------------------------------------------- writing
def enqueue(session: Session, *, tenant_key: str, chat_id: str, kind: str, fire_key: str,
            due_at: datetime, case_id: int | None = None, payload: dict[str, Any] | None = None,
            stale_after: datetime | None = None, priority: int = Priority.BULK) -> bool:
    """Add a send; False if the same (tenant, chat, kind, fire_key) already exists."""
    exists = session.scalar(select(Outbox.id).where(
        Outbox.tenant_key == tenant_key, Outbox.chat_id == chat_id, Outbox.kind == kind,
        Outbox.fire_key == fire_key))
    if exists:
        return False
    try:
        with session.begin_nested():
            session.add(Outbox(tenant_key=tenant_key, chat_id=chat_id, kind=kind, fire_key=fire_key,
                               due_at=due_at, case_id=case_id, payload=payload or {},
                               stale_after=stale_after, priority=int(priority)))
    except IntegrityError:
        return False  # a concurrent planner won; same row
    return True


def enqueue_ops(session: Session, *, tenant_key: str, chat_id: str, key: str, now: datetime,
                ops: Iterable[Op], case_id: int | None = None, priority: int = Priority.REPLY) -> None:
    """Immediate sends caused by one event (key = event id): one row per op, in order, all in ONE
    INSERT … ON CONFLICT DO NOTHING (a row whose key exists is left as it is, as `enqueue` does).
    Every command and click writes these: a look-up and a savepoint per row cost more than the
    rows themselves."""
    rows = [dict(tenant_key=tenant_key, chat_id=chat_id, kind="immediate", fire_key=f"{key}#{i}", due_at=now,
                 case_id=case_id, payload=dump_op(op), stale_after=None, priority=int(priority), status="pending",
                 attempts=0) for i, op in enumerate(ops)]
    if not rows:
        return
    if session.new or session.dirty or session.deleted:
        session.flush()   # rows they refer to (a case just created) exist before these do
    conn = session.connection()
    conn.execute(_insert_ignoring_duplicates(conn.dialect.name), rows)


def enqueue_planned(session: Session, rows: list[dict[str, Any]]) -> int:
    """Many planned sends (`tenant_key, chat_id, kind, fire_key, due_at, case_id, stale_after`) in
    ONE INSERT … ON CONFLICT DO NOTHING; a row whose key exists is left as it is, as `enqueue` does.
    The planner writes hundreds of rows a batch: row by row (a look-up, a savepoint and an insert
    each) its batch held SQLite's writers' lock ~2 s, and commands waited behind it. Returns the
    rows inserted."""
    if not rows:
        return 0
    full = [dict(r, payload={}, priority=int(Priority.BULK), status="pending", attempts=0) for r in rows]
    conn = session.connection()
    count = rowcount(conn.execute(_insert_ignoring_duplicates(conn.dialect.name), full))
    return count if count >= 0 else len(full)


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    table = cast(Table, Outbox.__table__)   # declarative types __table__ as any FromClause
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def enqueue_throttled(session: Session, *, tenant_key: str, chat_id: str, kind: str, who: str,
                      now: datetime, every: timedelta, op: Op, priority: int = Priority.HINT) -> bool:
    """At most one `kind` send per person per chat per `every`; False if one went out lately.
    The time bucket in the fire_key lets the unique key settle two events racing; the look-back
    covers a bucket edge (10:59 and then 11:00 are one hint, not two)."""
    prefix = f"{who}@"
    recent = session.scalar(select(Outbox.id).where(
        Outbox.tenant_key == tenant_key, Outbox.chat_id == chat_id, Outbox.kind == kind,
        Outbox.fire_key.startswith(prefix, autoescape=True), Outbox.due_at > now - every).limit(1))
    if recent is not None:
        return False
    bucket = int(now.timestamp() // every.total_seconds())
    return enqueue(session, tenant_key=tenant_key, chat_id=chat_id, kind=kind, fire_key=f"{prefix}{bucket}",
                   due_at=now, payload=dump_op(op), priority=priority)


def dump_op(op: Op) -> dict[str, Any]:
    if isinstance(op, SendCard):
        return {"op": "send_card", "card": op.card, "bind_case_card": op.bind_case_card, "pin": op.pin,
                "reply_to": op.reply_to, "view": op.view, "case_id": op.case_id}
    if isinstance(op, SendText):
        return {"op": "send_text", "text": op.text}
    if isinstance(op, SyncMembers):
        return {"op": "sync_members"}
    if isinstance(op, SyncFeishu):
        return {"op": "sync_feishu", "target": op.target, "case_id": op.case_id, "poll": op.poll}
    if isinstance(op, SendPrivate):
        return {"op": "send_private", "open_id": op.open_id, "card": op.card, "case_id": op.case_id,
                "view": op.view}
    if isinstance(op, DeletePrivate):
        return {"op": "delete_private", "message_id": op.message_id}
    if isinstance(op, PinMessage):
        return {"op": "pin", "message_id": op.message_id}
    return {"op": "patch_card", "message_id": op.message_id, "card": op.card, "supersede": op.supersede}


def load_op(data: dict[str, Any]) -> Op:
    kind = data.get("op")
    if kind == "send_card":
        return SendCard(card=data["card"], bind_case_card=data.get("bind_case_card"),
                        pin=bool(data.get("pin")), reply_to=data.get("reply_to"),
                        view=data.get("view"), case_id=data.get("case_id"))
    if kind == "send_text":
        return SendText(text=data["text"])
    if kind == "sync_members":
        return SyncMembers()
    if kind == "sync_feishu":
        return SyncFeishu(target=str(data["target"]), case_id=int(data["case_id"]), poll=bool(data.get("poll")))
    if kind == "patch_card":
        return PatchCard(message_id=data["message_id"], card=data["card"], supersede=bool(data.get("supersede")))
    if kind == "send_private":
        return SendPrivate(open_id=data["open_id"], card=data["card"], case_id=data.get("case_id"),
                           view=data.get("view") or "form")
    if kind == "delete_private":
        return DeletePrivate(message_id=data["message_id"])
    if kind == "pin":
        return PinMessage(message_id=data["message_id"])
    raise ValueError(f"unknown op {kind!r}")


def card_digest(card: dict[str, Any]) -> str:
    """What a card shows, as a short stable hash: an unchanged card is not patched again."""
    return hashlib.sha256(json.dumps(card, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:40]


def _stored_op(_session: Session, row: Outbox, _now: datetime, _context: Any) -> list[Op]:
    return [load_op(row.payload)]


# Rows that carry their ops: replies written by handlers, and hints.
BUILTIN_RENDERERS: dict[str, Renderer] = {"immediate": _stored_op, "hint": _stored_op}


def cancel(session: Session, *, tenant_key: str, chat_id: str, kind: str, fire_key_prefix: str = "",
           case_id: int | None = None) -> int:
    """Cancel pending rows (a deadline moved, a standup paused)."""
    cond = [Outbox.tenant_key == tenant_key, Outbox.chat_id == chat_id, Outbox.kind == kind,
            Outbox.status == "pending"]
    if fire_key_prefix:
        cond.append(Outbox.fire_key.startswith(fire_key_prefix))
    if case_id is not None:
        cond.append(Outbox.case_id == case_id)
    return rowcount(session.execute(update(Outbox).where(*cond).values(status="cancelled")))


def cancel_case_reminders(session: Session, *, tenant_key: str, chat_id: str, case_id: int) -> int:
    """An archived case sends nothing more: every pending reminder, nudge or check of it is cancelled
    (replies already written for people, kind "immediate", still go out)."""
    return rowcount(session.execute(update(Outbox).where(
        Outbox.tenant_key == tenant_key, Outbox.chat_id == chat_id, Outbox.case_id == case_id,
        Outbox.status == "pending", Outbox.kind != "immediate").values(status="cancelled")))


# ---------------------------------------------------------------- claiming
def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Claim:
    id: int
    tenant_key: str
    chat_id: str
    priority: int
    due_at: datetime


def claim_due(factory: sessionmaker[Session], *, me: str, now: datetime, batch: int = 100,
              lease: timedelta = LEASE, exclude: Iterable[int] = (), sweep_stale: bool = True) -> "Claims":
    """Lease up to `batch` due rows (or rows whose lease expired) to this worker, most urgent
    first. Rows of a chat that has a send in flight (a live lease, any worker) wait, so one
    chat's messages go out one after another; `exclude` are rows this worker still holds.
    `sweep_stale`: also settle stale due rows (`_skip_stale`); the result's `stale_swept` says
    how many."""
    skipped = 0
    params = {"c_now": now, "c_cutoff": now - lease, "c_held": list(exclude), "c_batch": batch, "c_me": me}
    with factory() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres and sweep_stale:   # its own write: the claim's choosing then reads unlocked
        with factory() as session, session.begin():
            skipped = _skip_stale(session, now, postgres)
    with factory() as session, session.begin():
        if postgres:
            # claims of all processes one at a time (a short statement): without it a claim that
            # has not committed yet hides its chat's send from another process's "chat busy"
            # check, and two processes would run two rows of one chat at once
            session.execute(_CLAIM.advisory_lock, {"k": CLAIM_LOCK})
            skipped = _skip_stale(session, now, postgres) if sweep_stale else 0
        if skipped:
            log.info("%d outbox rows skipped: stale", skipped)
        if postgres:
            claims = _lease(session, _CLAIM.lease_picked_pg, params)
        else:
            # Chosen by a read first: SQLite's writers' lock is taken at a transaction's first
            # write and held to its commit, and choosing among 10,000 due rows of a fan-out takes
            # ~100 ms that commands' inbox writes waited through, a claim or more a second. The
            # write then claims those still claimable (the same test, on a handful of rows).
            chosen = list(session.scalars(_CLAIM.pick, params))
            claims = _lease(session, _CLAIM.lease_chosen, dict(params, c_chosen=chosen)) if chosen else []
            if len(claims) < len(chosen):
                # another worker claimed some of them between the read and the write: this
                # transaction holds the writers' lock now, so the rest are chosen in the write (the
                # rows just leased are no longer claimable)
                claims += _lease(session, _CLAIM.lease_picked, dict(params, c_batch=batch - len(claims)))
    result = Claims(sorted(claims, key=lambda c: (c.priority, c.due_at, c.id)))
    result.stale_swept = skipped
    return result


def _lease(session: Session, stmt: Any, params: dict[str, Any]) -> list[Claim]:
    return [Claim(*r) for r in session.execute(stmt, params)]


class Claims(list[Claim]):
    """What one claim leased, most urgent first, and how many stale rows it settled."""

    stale_swept = 0


# stale rows settled per claim (the rest in the next ones; they are never picked meanwhile): a
# statement of a few ms, so a backlog of 30,000 never holds the write lock long at once
STALE_BATCH = 200
# When the last sweep found none, the next waits this long: the sweep reads every pending due row
# (10,000 during a company-wide standup) inside the claim's write transaction, and a claim runs
# many times a second during a fan-out, while a stale row only waits to be marked (never sent).
STALE_SWEEP_EVERY = timedelta(seconds=1)


_OB = cast(Table, Outbox.__table__)   # declarative types __table__ as any FromClause


def _claimable(row: Any) -> ColumnElement[bool]:
    """Due and not stale, its chat with no send in flight (a live lease, any worker); or its lease
    expired (and not one this worker still holds). Parameters: c_now, c_cutoff (now - lease),
    c_held."""
    now = bindparam("c_now", type_=_OB.c.due_at.type)
    cutoff = bindparam("c_cutoff", type_=_OB.c.claimed_at.type)
    busy = aliased(Outbox, name="busy")
    chat_busy = exists().where(busy.tenant_key == row.tenant_key, busy.chat_id == row.chat_id,
                               busy.status == "sending", busy.claimed_at >= cutoff)
    expired = and_(row.status == "sending", row.claimed_at < cutoff,
                   row.id.not_in(bindparam("c_held", expanding=True)))
    fresh = or_(row.stale_after.is_(None), row.stale_after >= now)   # stale ones: _skip_stale
    return or_(and_(row.status == "pending", row.due_at <= now, fresh, ~chat_busy), expired)


class _ClaimStatements:
    """The claim's statements, built once (as `_Statements` holds the sender's): building them
    (two aliases of the outbox, each a proxy of its every column) cost more than running them —
    6 ms of CPU a claim that found nothing, and the sender claims after every kick."""

    def __init__(self) -> None:
        row = aliased(Outbox, name="candidate")
        self.advisory_lock = text("SELECT pg_advisory_xact_lock(:k)")
        self.pick = select(row.id).where(_claimable(row)) \
            .order_by(row.priority, row.due_at, row.id).limit(bindparam("c_batch"))
        picked_pg = self.pick.with_for_update(skip_locked=True, of=row).scalar_subquery()
        leased = update(Outbox).values(
            status="sending", claimed_by=bindparam("c_me"), claimed_at=bindparam("c_now", type_=_OB.c.claimed_at.type),
            attempts=Outbox.attempts + 1
        ).returning(Outbox.id, Outbox.tenant_key, Outbox.chat_id, Outbox.priority, Outbox.due_at) \
            .execution_options(synchronize_session=False)
        self.lease_picked_pg = leased.where(Outbox.id.in_(picked_pg))
        self.lease_chosen = leased.where(Outbox.id.in_(bindparam("c_chosen", expanding=True)), _claimable(Outbox))
        self.lease_picked = leased.where(Outbox.id.in_(self.pick.scalar_subquery()))
        stale_row = aliased(Outbox, name="stale")
        s_now = bindparam("s_now", type_=_OB.c.due_at.type)
        self.stale_pick = select(stale_row.id).where(
            stale_row.status == "pending", stale_row.due_at <= s_now, stale_row.stale_after < s_now
        ).limit(STALE_BATCH)
        skip = update(Outbox).values(status="skipped_stale").execution_options(synchronize_session=False)
        self.skip_picked_pg = skip.where(Outbox.id.in_(
            self.stale_pick.with_for_update(skip_locked=True, of=stale_row).scalar_subquery()))
        self.skip_chosen = skip.where(Outbox.id.in_(bindparam("s_chosen", expanding=True)),
                                      Outbox.status == "pending", Outbox.stale_after < s_now)


def _skip_stale(session: Session, now: datetime, postgres: bool) -> int:
    """Mark due rows that are already stale `skipped_stale` in one statement, in the claim's
    transaction, instead of claiming each and opening it in a transaction of its own only to
    skip it. They sort first (earliest due): after downtime, or a first planning pass that
    caught up on yesterday's slots, 3 stale rows per group came before 1,000 groups' standups
    and the first standup went out only after 3,000 such renders (4–8 s). Same rule as
    `_render` (now > stale_after); `audit_skipped` records them as before."""
    if postgres:
        return rowcount(session.execute(_CLAIM.skip_picked_pg, {"s_now": now}))
    # looked for by a read (see claim_due): a sweep that finds none, the usual case, then takes
    # no write lock at all, where it held it for a scan of every due row
    chosen = list(session.scalars(_CLAIM.stale_pick, {"s_now": now}))
    if not chosen:
        return 0
    return rowcount(session.execute(_CLAIM.skip_chosen, {"s_now": now, "s_chosen": chosen}))


_CLAIM = _ClaimStatements()


def renew(factory: sessionmaker[Session], *, me: str, ids: list[int], now: datetime) -> int:
    """Heartbeat: keep this worker's leases alive while their sends are queued or in flight."""
    with factory() as session, session.begin():
        return rowcount(session.execute(update(Outbox).where(
            Outbox.id.in_(ids), Outbox.claimed_by == me, Outbox.status == "sending")
            .values(claimed_at=now)))


def release(factory: sessionmaker[Session], *, me: str, ids: list[int]) -> int:
    """On shutdown: hand unfinished rows back so the next process sends them at once. A send
    that was cut off mid-call is repeated with the same uuid, as after a crash."""
    with factory() as session, session.begin():
        return rowcount(session.execute(update(Outbox).where(
            Outbox.id.in_(ids), Outbox.claimed_by == me, Outbox.status == "sending")
            .values(status="pending", claimed_by=None)))


@dataclass
class Delivery:
    """Outcome of one row, for the caller's metrics and tests."""

    row_id: int
    status: str
    message_ids: list[str] = field(default_factory=list)
    error: str | None = None


def _nothing_now(row: Outbox, now: datetime) -> None:
    """A renderer had nothing to send: the row is cancelled — unless the renderer moved its time
    ahead (e.g. a reminder that waits for working hours), then it is pending again for then."""
    if row.due_at > now:
        row.status, row.claimed_by, row.claimed_at = "pending", None, None
    else:
        row.status = "cancelled"


class OutboxSender:
    """Claims due rows continuously and sends them concurrently, one chain per chat.

    Each chat has at most one send in flight and its rows go out in claim order (a patch never
    overtakes the send it patches); different chats never wait for each other, so a call that
    hangs for a minute delays only its own chat. `concurrency` bounds the chats in flight; the
    claim loop keeps claiming while sends are running, whenever a row is written (kick), at least
    every `idle_seconds`, and when chains finish — then once per quarter of `concurrency` finished
    (or when none is left running): a claim is a write transaction, and claiming one row per
    finished send (50 a second in a fan-out, and again after the last row was claimed) kept the
    database's write lock and the interpreter busy, which made the pacer's sleepers wake late.

    Leases: a short LEASE renewed by a heartbeat every HEARTBEAT_SECONDS for every row this
    worker holds (queued or in flight, however long the call). A live worker never loses a
    row, so two live processes never send the same row; a dead one stops renewing and its rows
    are taken over within LEASE. This works across hosts and containers, where a pid check
    ("is that process still alive?") cannot see the other process.
    """

    def __init__(self, factory: sessionmaker[Session], client: Any, clock: Clock, *,
                 me: str | None = None, lease: timedelta = LEASE, concurrency: int = 64,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 renderers: Mapping[str, Renderer] | None = None, context: Any = None,
                 syncers: Mapping[str, Syncer] | None = None,
                 bundle: Bundle | None = None, finish_window: float = FINISH_WINDOW) -> None:
        """`renderers` come from the composed Router; `context` is handed to each of them (the
        reminder policy read from the settings); `finish_window`: see `_flush_finishes`."""
        self.factory, self.client, self.clock = factory, client, clock
        self.context = context
        self.bundle = bundle
        self.renderers: dict[str, Renderer] = {**BUILTIN_RENDERERS, **(renderers or {})}
        self.syncers: dict[str, Syncer] = dict(syncers or {})
        self.me = me or worker_id()
        self.lease = lease
        self.concurrency = concurrency
        self.heartbeat_seconds = heartbeat_seconds
        self.refill = max(1, concurrency // 4)   # finished chains worth a claim
        self._wake = asyncio.Event()
        self._urgent = False                      # rows were written: claim even for one free chain
        self._freed = 0                           # chains finished since the last claim
        self._last_claim = 0.0                    # loop time of the last claim
        self._next_stale_sweep: datetime | None = None  # clock time (STALE_SWEEP_EVERY)
        self._chains: dict[tuple[str, str], deque[Claim]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()           # claimed by us and not finished
        self._listeners: list[list[Delivery]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.finish_window = finish_window
        self._finishing: list[tuple[_Finish, asyncio.Future[None]]] = []
        self._finisher: asyncio.Task[None] | None = None
        self._finish_loop: asyncio.AbstractEventLoop | None = None
        self._last_finish = float("-inf")   # loop time of the last results' write
        self._renders: PrioritySemaphore | None = None
        self._renders_loop: asyncio.AbstractEventLoop | None = None

    def kick(self) -> None:
        """New rows were written: claim now. Safe from any thread (handlers run in threads)."""
        loop = self._loop
        if loop is None:
            return  # not running: the next run claims them anyway
        self._urgent = True
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._wake.set()
        else:
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass  # the loop is closing

    async def run_forever(self, idle_seconds: float = 1.0, batch: int = 200) -> None:
        self._loop = asyncio.get_running_loop()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            force = True
            while True:
                self._wake.clear()
                # a slow trickle of finished chains must not hold back rows other processes wrote
                force = force or self._loop.time() - self._last_claim >= idle_seconds
                try:
                    if await self._claim_more(batch, force=force):
                        force = True
                        continue
                except Exception:
                    log.exception("outbox claim failed")
                force = False
                try:
                    # not wait_for: on 3.11 it swallows a cancel that meets a wake-up, and
                    # shutdown then waits for this loop forever
                    async with asyncio.timeout(idle_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    force = True   # rows fall due with time: claim whatever room there is
        finally:
            heartbeat.cancel()
            await self._stop()

    async def run_once(self, batch: int = 200) -> list[Delivery]:
        """Send everything due now; return when nothing due is left and nothing is in flight."""
        self._loop = asyncio.get_running_loop()
        results: list[Delivery] = []
        self._listeners.append(results)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            force = True
            while True:
                self._wake.clear()
                if await self._claim_more(batch, force=force):
                    continue
                force = False
                if not self._chains:
                    return results
                await self._wake.wait()  # a chain moved on: its chat may have more rows
        finally:
            heartbeat.cancel()
            self._listeners.remove(results)

    async def _claim_more(self, batch: int, *, force: bool = False) -> bool:
        """Claim into free chains; True if there may be more to claim right away. Unless forced
        or kicked, a claim waits until `refill` chains finished since the last one while others
        still run."""
        room = min(batch, self.concurrency - len(self._chains))
        if room <= 0:
            return False
        if not (force or self._urgent) and self._chains and self._freed < self.refill:
            return False
        self._urgent, self._freed = False, 0
        self._last_claim = asyncio.get_running_loop().time()
        now = self.clock.now()
        sweep = self._next_stale_sweep is None or now >= self._next_stale_sweep
        claims = await asyncio.to_thread(claim_due, self.factory, me=self.me, now=now,
                                         batch=room, lease=self.lease, exclude=set(self._held),
                                         sweep_stale=sweep)
        if sweep:  # a full batch: more are waiting, sweep again with the next claim
            self._next_stale_sweep = None if claims.stale_swept >= STALE_BATCH else now + STALE_SWEEP_EVERY
        for claim in claims:
            self._take(claim)
        return len(claims) == room and len(self._chains) < self.concurrency

    def _take(self, claim: Claim) -> None:
        self._held.add(claim.id)
        key = (claim.tenant_key, claim.chat_id)
        queue = self._chains.get(key)
        if queue is not None:
            queue.append(claim)  # behind the chat's send in flight
            return
        self._chains[key] = deque([claim])
        task = asyncio.create_task(self._run_chain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_chain(self, key: tuple[str, str]) -> None:
        queue = self._chains[key]
        try:
            while queue:
                claim = queue[0]
                send_priority.set(claim.priority)  # this task's sends, in the pacer's queue
                delivery = await self._deliver_safely(claim.id)
                queue.popleft()
                self._held.discard(claim.id)
                for results in self._listeners:
                    results.append(delivery)
                self._wake.set()
        finally:
            self._chains.pop(key, None)
            self._freed += 1
            self._wake.set()

    async def _deliver_safely(self, row_id: int) -> Delivery:
        try:
            return await self._deliver(row_id)
        except Exception as exc:
            log.exception("outbox row %s: delivery failed", row_id)
            return Delivery(row_id, "error", error=type(exc).__name__)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            if self._held:
                try:
                    await asyncio.to_thread(renew, self.factory, me=self.me, ids=list(self._held),
                                            now=self.clock.now())
                except Exception:
                    log.warning("outbox heartbeat failed", exc_info=True)

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # the results already queued are written before the rest is handed back (their chains
        # were cancelled, the sends went out): no write of ours races the release below
        finisher = self._finisher
        if finisher is not None and not finisher.done():
            await asyncio.gather(finisher, return_exceptions=True)
        held, self._held = list(self._held), set()
        if held:
            try:
                await asyncio.to_thread(release, self.factory, me=self.me, ids=held)
            except Exception:
                log.warning("could not release %d outbox rows", len(held), exc_info=True)

    def _render(self, row_id: int) -> tuple[Outbox | None, list[Op] | None]:
        """What a claimed row sends now (None, None: nothing, the row is settled). The row is read
        with one statement built once; a row that carries its ops (the reply to a command or a
        click, a hint: nearly every send) needs nothing more, other kinds go to their renderer
        with the row in the session (as read, not read again)."""
        with self.factory() as session, session.begin():
            found = session.connection().execute(_SQL.row, {"p_row_id": row_id}).mappings().first()
            if found is None or found["status"] != "sending" or found["claimed_by"] != self.me:
                return None, None
            now = self.clock.now()
            renderer = self.renderers.get(found["kind"])
            bundled = self.bundle is not None and found["kind"] in self.bundle.kinds
            if renderer is _stored_op and not bundled:
                if found["stale_after"] is not None and now > found["stale_after"]:
                    session.execute(_SQL.stale, {"p_row_id": row_id, "p_me": self.me})
                    log.info("outbox row %s (%s) skipped: stale", row_id, found["kind"])
                    return None, None
                return Outbox(**found), [load_op(found["payload"])]
            row = Outbox(**found)
            make_transient_to_detached(row)   # as read: no second SELECT
            session.add(row)
            if row.stale_after is not None and now > row.stale_after:
                row.status = "skipped_stale"
                log.info("outbox row %s (%s) skipped: stale", row.id, row.kind)
                return None, None
            if renderer is None:
                row.status, row.last_error = "failed", f"no renderer for {row.kind}"
                return None, None
            ops = renderer(session, row, now, self.context)
            if not ops:
                _nothing_now(row, now)
                return None, None
            if bundled:
                ops = self._bundle(session, row, now, ops)
                session.flush()   # the row's list of bundled rows is kept before it leaves the session
            session.expunge(row)
            return row, ops

    def _bundle(self, session: Session, row: Outbox, now: datetime, ops: list[Op]) -> list[Op]:
        """Take the group's other reminders due now into this row's message: they are marked
        "bundled" (and listed in this row, so a retry takes the same ones) and finish with it."""
        assert self.bundle is not None
        taken = [int(i) for i in (row.payload or {}).get("bundle", [])]
        others = list(session.scalars(select(Outbox).where(
            Outbox.tenant_key == row.tenant_key, Outbox.chat_id == row.chat_id, Outbox.id != row.id,
            Outbox.kind.in_(self.bundle.kinds),
            or_(and_(Outbox.status == "pending", Outbox.due_at <= now),
                and_(Outbox.status == "sending", Outbox.claimed_by == self.me),
                and_(Outbox.status == "bundled", Outbox.id.in_(taken or [-1]))))
            .order_by(Outbox.due_at, Outbox.id).with_for_update(skip_locked=True)))
        parts, ids = [ops], []
        for other in others:
            if other.stale_after is not None and now > other.stale_after:
                other.status = "skipped_stale"
                continue
            renderer = self.renderers.get(other.kind)
            more = renderer(session, other, now, self.context) if renderer is not None else None
            if not more:
                _nothing_now(other, now)
                continue
            other.status, other.claimed_by, other.claimed_at = "bundled", self.me, now
            parts.append(more)
            ids.append(other.id)
        if not ids:
            return ops
        row.payload = {**(row.payload or {}), "bundle": ids}
        return self.bundle.merge(parts)

    async def _deliver(self, row_id: int) -> Delivery:

        async with self._render_slots().place(send_priority.get()):
            row, ops = await asyncio.to_thread(self._render, row_id)
        if row is None or ops is None:
            return Delivery(row_id, "skipped")
        message_ids: list[str] = []
        try:
            for i, op in enumerate(ops):
                message_ids.append(await self._send(row, op, i))
        except Permanent as exc:
            await self._finish_soon(_Finish(row_id, "failed", None, f"{exc.code} {exc.msg}", row=row))
            return Delivery(row_id, "failed", message_ids, str(exc))
        except FeishuError as exc:
            status = "failed" if row.attempts >= MAX_ATTEMPTS else "pending"
            await self._finish_soon(_Finish(row_id, status, None, f"{exc.code} {exc.msg}",
                                            retry_in=timedelta(seconds=min(300, 2 ** row.attempts)), row=row))
            return Delivery(row_id, status, message_ids, str(exc))
        await self._finish_soon(_Finish(row_id, "sent", message_ids[0] if message_ids else None, None,
                                        ops=ops, message_ids=message_ids, row=row))
        return Delivery(row_id, "sent", message_ids)

    def _render_slots(self) -> PrioritySemaphore:
        """At most RENDER_THREADS renders at once, the most urgent row first (a reply to a person
        does not wait behind a fan-out's renders). Claimed rows of 16–64 chats used to start
        their renders together, each a thread holding the GIL for most of its 10–20 ms: the
        event loop then waited for the GIL between every two steps, the pacer's sleepers woke
        up to 0.1 s late and requests were written that much after their slots (1,000 standups:
        renders 16 ms → 5 ms each, grant-to-arrival p99 60–90 ms → 16 ms). Two at a time still
        render about 200 rows a second, four times what the quota sends."""
        loop = asyncio.get_running_loop()
        if self._renders is None or self._renders_loop is not loop:
            self._renders, self._renders_loop = PrioritySemaphore(RENDER_THREADS), loop
        return self._renders

    # ------------------------------------------------------------ finishing (group commit)
    async def _finish_soon(self, done: _Finish) -> None:
        """Record a finished send; return once it is committed. Sends that finish close together
        share one transaction: in a fan-out 50–200 finish a second, and one write transaction each
        kept the database's write lock busy a third of the time, so commands' inbox inserts
        waited behind them. The chain moves on only after this returns, so a chat's next row is
        claimed only after its previous row's result is durable (per-chat order); a crash before
        the commit leaves the row 'sending', and it is sent again with the same uuid."""
        loop = asyncio.get_running_loop()
        if self._finish_loop is not loop:
            self._finish_loop, self._finishing, self._finisher = loop, [], None
            self._last_finish = float("-inf")
        future: asyncio.Future[None] = loop.create_future()
        self._finishing.append((done, future))
        if self._finisher is None or self._finisher.done():
            self._finisher = loop.create_task(self._flush_finishes())
        await future

    async def _flush_finishes(self) -> None:
        """One writer at a time; what finishes while it writes forms the next batch. A lone
        result after a quiet spell is written at once; under load at most one transaction per
        `finish_window` seconds."""
        loop = asyncio.get_running_loop()
        while self._finishing:
            # from the last write of any finisher: one that found nothing more to write ends,
            # and the next result starting a new one at once made it 30 transactions a second
            # of one or two rows in a fan-out, not the 20 of a few rows this window allows
            wait = self._last_finish + self.finish_window - loop.time()
            await asyncio.sleep(max(0.0, wait))  # at least one turn: results of this turn join
            batch, self._finishing = self._finishing, []
            self._last_finish = loop.time()
            try:
                refused = await asyncio.to_thread(self._finish_many, [d for d, _f in batch])
            except BaseException as exc:
                # handed to each waiting chain, which logs it; if this task is cancelled, the
                # chains still waiting are told too (their rows are sent again after the lease)
                waiting = batch if isinstance(exc, Exception) else batch + self._finishing
                if not isinstance(exc, Exception):
                    self._finishing = []
                for _d, future in waiting:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for done, future in batch:
                error = refused.get(done.row_id)
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def _finish_many(self, batch: list[_Finish]) -> dict[int, Exception]:
        """Write the results in ONE transaction, in row order (two writers that lock the same
        rows take them in the same order). If the batch is refused (one row's data, a deadlock
        victim, a lock timeout), write them again one transaction per row, so one row never fails
        its neighbours. Returns what refused which row (by id); the others are committed."""
        batch = sorted(batch, key=lambda d: d.row_id)
        try:
            with self.factory() as session, session.begin():
                for done in batch:
                    self._finish_row(session, done)
            return {}
        except (StatementError, ValueError, TypeError) as exc:
            if len(batch) == 1:
                return {batch[0].row_id: exc}
            log.warning("outbox results: batch of %d refused (%s); writing row by row", len(batch),
                        type(exc).__name__)
        refused: dict[int, Exception] = {}
        for done in batch:
            try:
                with self.factory() as session, session.begin():
                    self._finish_row(session, done)
            except (StatementError, ValueError, TypeError) as exc:
                log.warning("outbox row %s: result refused (%s)", done.row_id, type(exc).__name__)
                refused[done.row_id] = exc
        return refused

    async def _send(self, row: Outbox, op: Op, index: int) -> str:
        uuid = feishu_uuid(row, index)
        if isinstance(op, SendCard):
            if op.reply_to:
                mid = await self.client.reply_card(op.reply_to, op.card, uuid=uuid)
            else:
                mid = await self.client.send_card(row.chat_id, op.card, uuid=uuid)
            if op.pin:
                await self.client.pin(mid)
            return mid
        if isinstance(op, SendText):
            return await self.client.send_text(row.chat_id, op.text, uuid=uuid)
        if isinstance(op, SyncFeishu):
            syncer = self.syncers.get(op.target)
            if syncer is not None:  # without one (tests, sandbox off) the op is a no-op
                await syncer(row, op)
            return ""
        if isinstance(op, SendPrivate):
            return await self._send_private(row, op, uuid)
        if isinstance(op, DeletePrivate):
            try:
                await self.client.delete_private(op.message_id)
            except Permanent as exc:  # e.g. a form that went to the 1:1 chat: not worth failing the row
                log.info("private card %s not removed: %s", op.message_id, exc)
            return op.message_id
        if isinstance(op, PinMessage):
            await self.client.pin(op.message_id)
            return op.message_id
        if isinstance(op, SyncMembers):
            members = await self.client.chat_members(row.chat_id)
            await asyncio.to_thread(self._remember, row.tenant_key, row.chat_id,
                                    [(m.open_id, m.name) for m in members])
            return ""
        await self.client.patch_card(op.message_id, op.card)
        return op.message_id

    async def _send_private(self, row: Outbox, op: SendPrivate, uuid: str) -> str:
        """A form for one person: in the group for them only; where that cannot serve (they are
        not in the group, a topic group, an error) in their 1:1 chat with the bot; and if that
        fails too, one @-line in the group tells them, so nobody is left with a toast and no form.
        Returns the form's message id ('' when only the line went out)."""
        try:
            return await self.client.send_private(row.chat_id, op.open_id, op.card)
        except Permanent as exc:
            log.info("private card for %s in %s refused (%s): trying the 1:1 chat", op.open_id, row.chat_id, exc)
        try:
            return await self.client.send_card_to_person(op.open_id, op.card, uuid=uuid)
        except Permanent as exc:
            log.info("1:1 card for %s refused (%s): telling them in the group", op.open_id, exc)
        await self.client.send_text(row.chat_id, texts.PRIVATE_FORM_UNDELIVERED.format(
            who=text_mention(op.open_id)), uuid=uuid + "-line")
        return ""

    def _remember(self, tenant_key: str, chat_id: str, people: list[tuple[str, str]]) -> None:

        with self.factory() as session, session.begin():
            remember_people(session, tenant_key=tenant_key, people=people, now=self.clock.now())
            remember_members(session, tenant_key=tenant_key, chat_id=chat_id,
                             open_ids=[oid for oid, _ in people], now=self.clock.now())

    def _finish_row(self, session: Session, done: _Finish) -> None:
        """One row's result and its bookkeeping, in the caller's transaction: statements built once
        (`_Statements`), guarded by the lease (claimed by us, still sending), instead of loading the
        row again — the row as rendered (`done.row`) has what the bookkeeping needs. Every command
        and click costs at least one of these, and building an ORM statement cost more than
        running it."""
        row = done.row if done.row is not None else session.get(Outbox, done.row_id)
        if row is None:
            return
        now, status, message_id, error = self.clock.now(), done.status, done.message_id, done.error
        conn = session.connection()
        key = {"p_row_id": done.row_id, "p_me": self.me, "p_status": status, "p_error": error}
        if status == "sent":
            mine = conn.execute(_SQL.sent, {**key, "p_now": now, "p_message_id": message_id,
                                            "p_late": now - row.due_at > timedelta(minutes=5)})
        elif status == "pending" and done.retry_in is not None:
            mine = conn.execute(_SQL.retry, {**key, "p_due_at": now + done.retry_in})
        else:
            mine = conn.execute(_SQL.ended, key)
        if not mine.rowcount:
            return   # the lease was lost meanwhile: whoever holds the row now records it
        bundled = [int(i) for i in (row.payload or {}).get("bundle", [])]
        if bundled and status in ("sent", "failed"):   # they went out (or failed) in this row's message
            conn.execute(_SQL.bundled, {"p_ids": bundled, "p_status": status, "p_error": error,
                                        "p_message_id": message_id, "p_now": now if status == "sent" else None})
        if status == "sent":
            for op, mid in zip(done.ops or [], done.message_ids or []):
                if isinstance(op, SendCard) and op.bind_case_card:
                    conn.execute(_SQL.bind_case_card, {"p_m": mid, "p_c": op.bind_case_card})
                _record_card(conn, row, op, mid, now)


@dataclass(frozen=True)
class _Finish:
    """A finished send waiting for its result to be written."""

    row_id: int
    status: str
    message_id: str | None
    error: str | None
    retry_in: timedelta | None = None
    ops: list[Op] | None = None
    message_ids: list[str] | None = None
    row: Outbox | None = None   # the row as rendered (detached); None: read it again


def _record_card(conn: Connection, row: Outbox, op: Op, message_id: str, now: datetime) -> None:
    """Remember a posted card and what it shows now (posted_cards), so it can be kept true."""
    if isinstance(op, (SendCard, SendPrivate)) and (op.view and (op.case_id or row.case_id)) and message_id:
        # ON CONFLICT DO NOTHING: Feishu answers a repeated uuid with the message it already has
        conn.execute(_SQL.posted(conn.dialect.name), {
            "p_tenant_key": row.tenant_key, "p_chat_id": row.chat_id, "p_case_id": op.case_id or row.case_id,
            "p_message_id": message_id, "p_view": op.view, "p_digest": card_digest(op.card), "p_sent_at": now,
            "p_private_for": op.open_id if isinstance(op, SendPrivate) else None})
    elif isinstance(op, PatchCard):
        conn.execute(_SQL.patched_superseded if op.supersede else _SQL.patched,
                     {"p_message_id": op.message_id, "p_digest": card_digest(op.card), "p_now": now})
    elif isinstance(op, DeletePrivate):
        conn.execute(_SQL.removed, {"p_message_id": op.message_id})


class _Statements:
    """The delivery's bookkeeping statements, built once: SQLAlchemy builds, and keys for its
    cache, a statement on every call otherwise (~0.4 ms for an ORM UPDATE, ~0.05 ms to run it).
    Parameters are named `p_…` (a parameter may not take a column's name in SET or VALUES)."""

    def __init__(self) -> None:
        ob, pc = cast(Table, Outbox.__table__), cast(Table, PostedCard.__table__)

        def p(name: str, column: Any = None) -> Any:
            return bindparam(f"p_{name}", type_=column.type if column is not None else None)

        self.row = select(ob).where(ob.c.id == p("row_id"))
        mine = update(ob).where(ob.c.id == p("row_id"), ob.c.claimed_by == p("me"), ob.c.status == "sending")
        self.stale = mine.values(status="skipped_stale")
        ended: dict[str, Any] = {"status": p("status"), "last_error": p("error")}
        self.sent = mine.values(**ended, sent_at=p("now", ob.c.sent_at), message_id=p("message_id"),
                                late=p("late", ob.c.late))
        self.retry = mine.values(**ended, due_at=p("due_at", ob.c.due_at))
        self.ended = mine.values(**ended)
        self.bundled = update(ob).where(ob.c.id.in_(bindparam("p_ids", expanding=True)),
                                        ob.c.status == "bundled").values(
            status=p("status"), sent_at=p("now", ob.c.sent_at), message_id=p("message_id"), last_error=p("error"))
        self.bind_case_card = text("UPDATE cases SET card_message_id=:p_m WHERE id=:p_c")
        patch = update(pc).where(pc.c.message_id == p("message_id"))
        patched = {"digest": p("digest"), "patched_at": p("now", pc.c.patched_at)}
        self.patched = patch.values(**patched)
        self.patched_superseded = patch.values(**patched, superseded=True)
        self.removed = patch.values(superseded=True)
        columns = ("tenant_key", "chat_id", "case_id", "message_id", "view", "digest", "sent_at", "private_for")
        values = {c: p(c, pc.c[c]) for c in columns}
        self._posted = {
            "postgresql": postgresql_insert(pc).values(**values, superseded=False)
            .on_conflict_do_nothing(index_elements=["message_id"]),
            "sqlite": sqlite_insert(pc).values(**values, superseded=False)
            .on_conflict_do_nothing(index_elements=["message_id"])}

    def posted(self, dialect: str) -> Insert:
        return self._posted["postgresql" if dialect == "postgresql" else "sqlite"]


_SQL = _Statements()
