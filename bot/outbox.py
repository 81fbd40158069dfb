"""Transactional outbox: every message the bot sends is first a row, written in the same
transaction as the state change that caused it, then claimed with a lease and sent with a
Feishu `uuid` derived from its unique key. A crash anywhere neither loses nor doubles a send
(Feishu keeps one message per uuid for an hour; our lease is far shorter).

Rows are (tenant, chat, kind, fire_key)-unique, so planning the same reminder twice is
harmless. What a row sends is decided by a *renderer* registered for its kind, called at
delivery time with a database session — so a reminder always shows the current state.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.models import Outbox

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8


# ---------------------------------------------------------------- operations
@dataclass(frozen=True)
class SendCard:
    card: dict[str, Any]
    bind_case_card: int | None = None   # remember the message as this case's live card
    pin: bool = False
    reply_to: str | None = None


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class PatchCard:
    message_id: str
    card: dict[str, Any]


@dataclass(frozen=True)
class SyncMembers:
    """Not a message: read the group's member list so cards and toasts can use names."""


Op = SendCard | SendText | PatchCard | SyncMembers
# A renderer turns a claimed row into what to send now; returning None skips the row.
Renderer = Callable[[Session, Outbox, datetime], "list[Op] | None"]
_RENDERERS: dict[str, Renderer] = {}


def register_renderer(kind: str, fn: Renderer) -> None:
    _RENDERERS[kind] = fn


def feishu_uuid(row: Outbox, index: int = 0) -> str:
    """≤ 50 chars, stable for the row (and op index), so a retry is deduplicated by Feishu."""
    key = f"{row.tenant_key}|{row.chat_id}|{row.kind}|{row.fire_key}|{index}"
    return "ob-" + hashlib.sha256(key.encode()).hexdigest()[:40]


# ---------------------------------------------------------------- writing
def enqueue(session: Session, *, tenant_key: str, chat_id: str, kind: str, fire_key: str,
            due_at: datetime, case_id: int | None = None, payload: dict[str, Any] | None = None,
            stale_after: datetime | None = None) -> bool:
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
                               stale_after=stale_after))
    except IntegrityError:
        return False  # a concurrent planner won; same row
    return True


def enqueue_ops(session: Session, *, tenant_key: str, chat_id: str, key: str, now: datetime,
                ops: Iterable[Op], case_id: int | None = None) -> None:
    """Immediate sends caused by one event (key = event id): one row per op, in order."""
    for i, op in enumerate(ops):
        enqueue(session, tenant_key=tenant_key, chat_id=chat_id, kind="immediate", fire_key=f"{key}#{i}",
                due_at=now, case_id=case_id, payload=dump_op(op))


def dump_op(op: Op) -> dict[str, Any]:
    if isinstance(op, SendCard):
        return {"op": "send_card", "card": op.card, "bind_case_card": op.bind_case_card, "pin": op.pin,
                "reply_to": op.reply_to}
    if isinstance(op, SendText):
        return {"op": "send_text", "text": op.text}
    if isinstance(op, SyncMembers):
        return {"op": "sync_members"}
    return {"op": "patch_card", "message_id": op.message_id, "card": op.card}


def load_op(data: dict[str, Any]) -> Op:
    kind = data.get("op")
    if kind == "send_card":
        return SendCard(card=data["card"], bind_case_card=data.get("bind_case_card"),
                        pin=bool(data.get("pin")), reply_to=data.get("reply_to"))
    if kind == "send_text":
        return SendText(text=data["text"])
    if kind == "sync_members":
        return SyncMembers()
    if kind == "patch_card":
        return PatchCard(message_id=data["message_id"], card=data["card"])
    raise ValueError(f"unknown op {kind!r}")


register_renderer("immediate", lambda _s, row, _now: [load_op(row.payload)])


def cancel(session: Session, *, tenant_key: str, chat_id: str, kind: str, fire_key_prefix: str = "",
           case_id: int | None = None) -> int:
    """Cancel pending rows (a deadline moved, a standup paused)."""
    cond = [Outbox.tenant_key == tenant_key, Outbox.chat_id == chat_id, Outbox.kind == kind,
            Outbox.status == "pending"]
    if fire_key_prefix:
        cond.append(Outbox.fire_key.startswith(fire_key_prefix))
    if case_id is not None:
        cond.append(Outbox.case_id == case_id)
    return session.execute(update(Outbox).where(*cond).values(status="cancelled")).rowcount or 0


# ---------------------------------------------------------------- claiming
def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(object()) % 100000}"


def claim_due(factory: sessionmaker[Session], *, me: str, now: datetime, batch: int = 100,
              lease: timedelta = LEASE) -> list[int]:
    """Lease up to `batch` due rows (or rows whose lease expired) to this worker."""
    with factory() as session, session.begin():
        due = or_(and_(Outbox.status == "pending", Outbox.due_at <= now),
                  and_(Outbox.status == "sending", Outbox.claimed_at < now - lease))
        pick = select(Outbox.id).where(due).order_by(Outbox.due_at, Outbox.id).limit(batch)
        if session.bind.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (update(Outbox).where(Outbox.id.in_(pick.scalar_subquery()))
                .values(status="sending", claimed_by=me, claimed_at=now, attempts=Outbox.attempts + 1)
                .returning(Outbox.id))
        ids = list(session.scalars(stmt.execution_options(synchronize_session=False)))
    return sorted(ids)


@dataclass
class Delivery:
    """Outcome of one row, for the caller's metrics and tests."""

    row_id: int
    status: str
    message_ids: list[str] = field(default_factory=list)
    error: str | None = None


class OutboxSender:
    """Claims due rows and sends them through the Feishu client, one chat's rows in order."""

    def __init__(self, factory: sessionmaker[Session], client: Any, clock: Clock, *,
                 me: str | None = None, lease: timedelta = LEASE, concurrency: int = 64) -> None:
        self.factory, self.client, self.clock = factory, client, clock
        self.me = me or worker_id()
        self.lease = lease
        self._sem = asyncio.Semaphore(concurrency)
        self._kick = asyncio.Event()

    def kick(self) -> None:
        self._kick.set()

    async def run_forever(self, idle_seconds: float = 1.0) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - keep the loop alive; the DB may be down (F4)
                log.exception("outbox pass failed")
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=idle_seconds)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()

    async def run_once(self, batch: int = 200) -> list[Delivery]:
        results: list[Delivery] = []
        while True:
            ids = await asyncio.to_thread(claim_due, self.factory, me=self.me, now=self.clock.now(),
                                          batch=batch, lease=self.lease)
            if not ids:
                return results
            by_chat: dict[str, list[int]] = {}
            rows = await asyncio.to_thread(self._load, ids)
            for row in rows:
                by_chat.setdefault(row.chat_id, []).append(row.id)
            chunks = await asyncio.gather(*(self._send_chat(chat_ids) for chat_ids in by_chat.values()))
            for chunk in chunks:
                results.extend(chunk)
            if len(ids) < batch:
                return results

    def _load(self, ids: list[int]) -> list[Outbox]:
        with self.factory() as session:
            return list(session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.due_at, Outbox.id)))

    async def _send_chat(self, ids: list[int]) -> list[Delivery]:
        out = []
        for row_id in ids:  # in order within a chat: a patch never overtakes the send it patches
            async with self._sem:
                out.append(await self._deliver(row_id))
        return out

    def _render(self, row_id: int) -> tuple[Outbox | None, list[Op] | None]:
        with self.factory() as session, session.begin():
            row = session.get(Outbox, row_id)
            if row is None or row.status != "sending" or row.claimed_by != self.me:
                return None, None
            now = self.clock.now()
            if row.stale_after is not None and now > row.stale_after:
                row.status = "skipped_stale"
                log.info("outbox row %s (%s) skipped: stale", row.id, row.kind)
                return None, None
            renderer = _RENDERERS.get(row.kind)
            if renderer is None:
                row.status, row.last_error = "failed", f"no renderer for {row.kind}"
                return None, None
            ops = renderer(session, row, now)
            if not ops:
                row.status = "cancelled"
                return None, None
            session.expunge(row)
            return row, ops

    async def _deliver(self, row_id: int) -> Delivery:
        from bot.feishu import FeishuError, Permanent  # the only Open API boundary

        row, ops = await asyncio.to_thread(self._render, row_id)
        if row is None or ops is None:
            return Delivery(row_id, "skipped")
        message_ids: list[str] = []
        try:
            for i, op in enumerate(ops):
                message_ids.append(await self._send(row, op, i))
        except Permanent as exc:
            await asyncio.to_thread(self._finish, row_id, "failed", None, f"{exc.code} {exc.msg}")
            return Delivery(row_id, "failed", message_ids, str(exc))
        except FeishuError as exc:
            status = "failed" if row.attempts >= MAX_ATTEMPTS else "pending"
            await asyncio.to_thread(self._finish, row_id, status, None, f"{exc.code} {exc.msg}",
                                    retry_in=timedelta(seconds=min(300, 2 ** row.attempts)))
            return Delivery(row_id, status, message_ids, str(exc))
        await asyncio.to_thread(self._finish, row_id, "sent", message_ids[0] if message_ids else None, None,
                                ops=ops, message_ids=message_ids)
        return Delivery(row_id, "sent", message_ids)

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
        if isinstance(op, SyncMembers):
            members = await self.client.chat_members(row.chat_id)
            await asyncio.to_thread(self._remember, row.tenant_key, [(m.open_id, m.name) for m in members])
            return ""
        await self.client.patch_card(op.message_id, op.card)
        return op.message_id

    def _remember(self, tenant_key: str, people: list[tuple[str, str]]) -> None:
        from bot.repository import remember_people

        with self.factory() as session, session.begin():
            remember_people(session, tenant_key=tenant_key, people=people, now=self.clock.now())

    def _finish(self, row_id: int, status: str, message_id: str | None, error: str | None, *,
                retry_in: timedelta | None = None, ops: list[Op] | None = None,
                message_ids: list[str] | None = None) -> None:
        with self.factory() as session, session.begin():
            row = session.get(Outbox, row_id)
            if row is None or row.claimed_by != self.me:
                return
            now = self.clock.now()
            row.status, row.last_error = status, error
            if status == "sent":
                row.sent_at, row.message_id = now, message_id
                row.late = now - row.due_at > timedelta(minutes=5)
                for op, mid in zip(ops or [], message_ids or []):
                    if isinstance(op, SendCard) and op.bind_case_card:
                        session.execute(text("UPDATE cases SET card_message_id=:m WHERE id=:c"),
                                        {"m": mid, "c": op.bind_case_card})
            elif status == "pending" and retry_in is not None:
                row.due_at = now + retry_in

