"""What the two Feishu syncs (飞书任务: bot.sync_tasks, 多维表格 board: bot.sync_board) share: the
case's on/off row, telling the lead of a missing scope or a failure once, and the minute tick that
queues the read-backs. Each sync describes itself once in a SyncFeature; its own module keeps only
what it writes to Feishu and what it reads back.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot import outbox
from bot.clock import Clock
from bot.feishu import MissingScope, Permanent
from bot.models import Case, FeishuBoard, FeishuTaskSync, Outbox
from bot.workflow import Step

POLL_EVERY_S = 60
POLL_ROWS_KEPT = timedelta(hours=1)   # finished read-back rows are deleted after this: one a minute adds up

SyncRow = FeishuTaskSync | FeishuBoard
RowT = TypeVar("RowT", FeishuTaskSync, FeishuBoard)


@dataclass(frozen=True)
class SyncFeature:
    """One sync's names: everything else about its row, notices and tick is the same for both."""

    setting: str                 # the deployment setting (off|offer|default) on the router: "feishu_tasks"
    model: type[FeishuTaskSync] | type[FeishuBoard]   # the case's row: enabled, problem, last_poll_at
    target: str                  # outbox.SyncFeishu's target
    notice_key: str              # the lead's notices' outbox keys start with it (one message per key, ever)
    default_scope: str           # named when Feishu's answer does not say which scope is missing
    scope_missing: str           # texts: {lead}, {scope}
    failed: str                  # texts: {lead}, {code}, {msg}
    log: logging.Logger
    what: str                    # in the log: "<what> of case 3 failed: …"
    poll_key: str                # read-back rows' fire_key prefix (finished ones are pruned by it)
    poll_word: str               # hashed with the case and the minute into the fire_key
    new_row: Callable[[], dict[str, Any]] = dict   # columns a new row needs beyond the case's

    @property
    def tick_name(self) -> str:
        return self.setting.replace("_", "-") + "-poll"


def ms(when: datetime | None) -> int:
    return int(when.timestamp() * 1000) if when else 0


def at_mention(open_id: str) -> str:
    return f'<at user_id="{open_id}"></at>' if open_id.startswith("ou_") else ""


def notice_in(session: Session, case: Case, now: datetime, key: str, text: str) -> None:
    """One message per key, ever (the outbox key is unique): a notice is never repeated in a loop."""
    outbox.enqueue_ops(session, tenant_key=case.tenant_key, chat_id=case.chat_id, key=key, now=now,
                       ops=[outbox.SendText(text)], case_id=case.id, priority=outbox.Priority.BULK)


# ---------------------------------------------------------------------------------- the case's row
def _row_where(session: Session, model: type[SyncRow], *where: Any) -> SyncRow | None:
    # select() over either model types its result as their common base; it is one of the two
    return cast("SyncRow | None", session.scalar(select(model).where(*where)))


def case_row(session: Session, feature: SyncFeature, case: Case) -> SyncRow | None:
    model = feature.model
    return _row_where(session, model, model.case_id == case.id, model.tenant_key == case.tenant_key,
                      model.chat_id == case.chat_id)


def is_on(mode: str, row: SyncRow | None) -> bool:
    """On for the case: the lead turned it on, or the deployment's default and nobody turned it off."""
    if mode == "off":
        return False
    if row is None:
        return mode == "default"
    return row.enabled and not row.problem


def set_on(session: Session, feature: SyncFeature, case: Case, on: bool, actor: str, now: datetime) -> SyncRow:
    row = case_row(session, feature, case)
    if row is None:
        row = feature.model(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, changed_at=now,
                            **feature.new_row())
        session.add(row)
    row.enabled, row.changed_by, row.changed_at = on, actor, now
    # turned on again after a missing scope was added: try again, and say so again if still missing
    row.problem, row.problem_notified_at = None, None
    session.flush()
    return row


def syncing_case(session: Session, model: type[RowT], case_id: int, tenant_key: str, chat_id: str
                 ) -> tuple[Case, RowT] | None:
    """The case an outbox row names and its sync row, when the sync is on for it and the case has
    reached step 5; None for a case of another group (the row's chain is not the case's)."""
    case = session.get(Case, case_id)
    if case is None or (case.tenant_key, case.chat_id) != (tenant_key, chat_id):
        return None
    row = session.scalar(select(model).where(model.case_id == case.id, model.tenant_key == case.tenant_key))
    if row is None or not row.enabled or row.problem or case.step < Step.EXECUTION:
        return None
    return case, row


# ---------------------------------------------------------------------------------- the syncer
@dataclass(frozen=True)
class CaseSnapshot:
    """The case as a sync run read it; each sync's Snapshot adds what it keeps of Feishu's side."""

    case_id: int
    tenant_key: str
    chat_id: str
    title: str
    lead: str
    step: Step


class CaseSyncer:
    """The part of a syncer (run by the outbox sender for a SyncFeishu op) that is the same for
    both syncs: a missing scope pauses the case's sync and tells the lead once which scope to add;
    any other permanent failure is told once per error code and tried again on the next change."""

    feature: SyncFeature

    def __init__(self, factory: sessionmaker[Session], client: Any, clock: Clock) -> None:
        self.factory, self.client, self.clock = factory, client, clock

    @asynccontextmanager
    async def _failures_told_to_lead(self, snap: CaseSnapshot) -> AsyncIterator[None]:
        """The body's MissingScope or Permanent ends the run here, told to the lead (once)."""
        try:
            yield
        except MissingScope as exc:
            await self._paused(snap.case_id, exc)
        except Permanent as exc:   # not worth retrying now; said once per code, tried again on the next change or tick
            feature = self.feature
            feature.log.warning("%s of case %s failed: %s", feature.what, snap.case_id, exc)
            await asyncio.to_thread(self._notice, snap.case_id, f"{feature.notice_key}-fail:{snap.case_id}:{exc.code}",
                                    feature.failed.format(lead=at_mention(snap.lead), code=exc.code, msg=exc.msg[:80]))

    async def _paused(self, case_id: int, exc: MissingScope) -> None:
        await asyncio.to_thread(self._pause, case_id, exc.scopes[0] if exc.scopes else self.feature.default_scope)

    def _pause(self, case_id: int, scope: str) -> None:
        now = self.clock.now()
        model = self.feature.model
        with self.factory() as session, session.begin():
            case = session.get(Case, case_id)
            row = _row_where(session, model, model.case_id == case_id)
            if case is None or row is None:
                return
            row.problem = f"scope:{scope}"[:200]
            if row.problem_notified_at is None:   # once, until the lead turns it on again
                row.problem_notified_at = now
                notice_in(session, case, now, f"{self.feature.notice_key}-scope:{row.id}:{ms(row.changed_at)}",
                          self.feature.scope_missing.format(lead=at_mention(case.lead_open_id), scope=scope))

    def _notice(self, case_id: int, key: str, text: str) -> None:
        with self.factory() as session, session.begin():
            case = session.get(Case, case_id)
            if case is not None:
                notice_in(session, case, self.clock.now(), key, text)


# ---------------------------------------------------------------------------------- the read-back tick
def queue_read_backs(factory: Any, now: datetime, feature: SyncFeature, due: Select[Any]) -> int:
    """One read-back per case that `due` selects (rows of Case and its sync row), a row per case
    and minute, so two replicas ticking together queue it once. Returns how many were queued."""
    with factory() as session, session.begin():
        session.execute(delete(Outbox).where(
            Outbox.kind == "immediate", Outbox.fire_key.startswith(f"{feature.poll_key}-"),
            Outbox.status != "pending", Outbox.status != "sending", Outbox.due_at < now - POLL_ROWS_KEPT))
        rows = session.execute(due)
        queued = 0
        minute = int(now.timestamp() // POLL_EVERY_S)
        for case, row in rows:
            if (case.tenant_key, case.chat_id) != (row.tenant_key, row.chat_id):
                continue
            key = hashlib.sha256(f"{feature.poll_word}|{case.id}|{minute}".encode()).hexdigest()[:32]
            if outbox.enqueue(session, tenant_key=case.tenant_key, chat_id=case.chat_id, kind="immediate",
                              fire_key=f"{feature.poll_key}-{key}", due_at=now, case_id=case.id,
                              payload=outbox.dump_op(outbox.SyncFeishu(feature.target, case.id, poll=True)),
                              priority=outbox.Priority.BULK):
                row.last_poll_at = now
                queued += 1
        return queued


def register_read_back_tick(state: Any, feature: SyncFeature, poll_tick: Callable[[Any, datetime], int]) -> None:
    """Every minute, unless the deployment has the sync off; the sender is woken when it queued some."""
    if getattr(state.dispatcher.router, feature.setting, "off") == "off":
        return

    async def tick() -> None:
        if await asyncio.to_thread(poll_tick, state.factory, state.clock.now()):
            state.sender.kick()

    state.ticker.every(POLL_EVERY_S, feature.tick_name, tick)
