"""飞书任务 sync, the bot side: the lead's on/off button on the case card, the hook step modules call
after a change (`touch`), and the minute tick that asks for a read-back of step-5 cases.

The network work happens in bot.sync_tasks, run by the outbox sender as a SyncFeishu op in the
case's chat chain (one writer per case). Offered only when the deployment says so
(FEISHU_TASKS=offer|default): the app needs the Task scopes first (README, app set-up).
"""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from bot import outbox, texts
from bot.actions import FTASKS_OFF, FTASKS_ON, ActionValue
from bot.envelope import CardAction
from bot.models import Case, FeishuTaskLink, FeishuTaskSync, Outbox, Task
from bot.routing import CallbackAnswer, CaseButtonSpec, Ctx, Router, UserError
from bot.sync_tasks import TARGET
from bot.workflow import Step
from handlers import case_card
from handlers.common import audit, load_active_case, not_lead

router = Router()

POLL_EVERY_S = 60
POLL_ROWS_KEPT = timedelta(hours=1)   # finished read-back rows are deleted after this: one a minute adds up
OFFERED_IN = (Step.PLAN, Step.EXECUTION)


def sync_of(session: Session, case: Case) -> FeishuTaskSync | None:
    return session.scalar(select(FeishuTaskSync).where(FeishuTaskSync.case_id == case.id,
                                                       FeishuTaskSync.tenant_key == case.tenant_key,
                                                       FeishuTaskSync.chat_id == case.chat_id))


def _mode(ctx: Ctx) -> str:
    return ctx.registry.feishu_tasks if ctx.registry is not None else "off"


def is_on(ctx: Ctx, case: Case) -> bool:
    """On for this case: the lead turned it on, or the deployment's default and nobody turned it off."""
    mode = _mode(ctx)
    if mode == "off":
        return False
    sync = sync_of(ctx.session, case)
    if sync is None:
        return mode == "default"
    return sync.enabled and not sync.problem


def touch(ctx: Ctx, case: Case) -> None:
    """After a change to the plan's tasks: bring the Feishu tasks in line (queued with the change)."""
    if case.step < Step.EXECUTION or _mode(ctx) == "off":
        return
    sync = sync_of(ctx.session, case)
    if sync is None and _mode(ctx) == "default":
        sync = _set(ctx, case, True)
    if sync is not None and sync.enabled and not sync.problem:
        ctx.send(outbox.SyncFeishu(TARGET, case.id))


def _set(ctx: Ctx, case: Case, on: bool) -> FeishuTaskSync:
    sync = sync_of(ctx.session, case)
    if sync is None:
        sync = FeishuTaskSync(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                              changed_at=ctx.now)
        ctx.session.add(sync)
    sync.enabled, sync.changed_by, sync.changed_at = on, ctx.actor, ctx.now
    # turning it on again after a missing scope was added: try again, and say so again if still missing
    sync.problem, sync.problem_notified_at = None, None
    ctx.session.flush()
    return sync


def _buttons(ctx: Ctx, case: Case) -> tuple[CaseButtonSpec, ...]:
    if _mode(ctx) == "off" or case.step not in OFFERED_IN or case.status != "active":
        return ()
    if is_on(ctx, case):
        return ((texts.BTN_FTASKS_OFF, FTASKS_OFF, False),)
    return ((texts.BTN_FTASKS_ON, FTASKS_ON, False),)


router.case_extras.append(_buttons)


def _toggle(ctx: Ctx, value: ActionValue, on: bool) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    if _mode(ctx) == "off" or case.step not in OFFERED_IN:
        raise UserError(texts.FTASKS_STEP, kind="info")
    if is_on(ctx, case) == on:
        return CallbackAnswer(toast=texts.FTASKS_ALREADY_ON if on else texts.FTASKS_ALREADY_OFF, toast_type="info",
                              card=case_card.build(ctx, case))
    _set(ctx, case, on)
    audit(ctx, case, "ftasks.on" if on else "ftasks.off", texts.AUDIT_FTASKS_ON if on else texts.AUDIT_FTASKS_OFF)
    toast = texts.FTASKS_OFF_TOAST
    if on:
        toast = texts.FTASKS_ON_NOW_TOAST if case.step >= Step.EXECUTION else texts.FTASKS_ON_TOAST
        touch(ctx, case)
    return CallbackAnswer(toast=toast, card=case_card.build(ctx, case))


@router.action(FTASKS_ON)
def turn_on(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _toggle(ctx, value, True)


@router.action(FTASKS_OFF)
def turn_off(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _toggle(ctx, value, False)


# ---------------------------------------------------------------- the read-back tick
def poll_tick(factory: Any, now: datetime) -> int:
    """Every minute: one read-back per step-5 case that syncs and has a linked task still open
    there (a row per case and minute, so two replicas ticking together queue it once). Returns how
    many were queued."""
    with factory() as session, session.begin():
        session.execute(delete(Outbox).where(
            Outbox.kind == "immediate", Outbox.fire_key.startswith("ftpoll-"), Outbox.status != "pending",
            Outbox.status != "sending", Outbox.due_at < now - POLL_ROWS_KEPT))
        open_link = exists().where(FeishuTaskLink.case_id == Case.id, FeishuTaskLink.task_guid.is_not(None),
                                   FeishuTaskLink.deleted_at.is_(None), FeishuTaskLink.remote_completed.is_(False),
                                   Task.id == FeishuTaskLink.task_id, Task.dropped.is_(False))
        rows = session.execute(select(Case, FeishuTaskSync).join(FeishuTaskSync, FeishuTaskSync.case_id == Case.id)
                               .where(Case.status == "active", Case.step == Step.EXECUTION,
                                      FeishuTaskSync.enabled.is_(True), FeishuTaskSync.problem.is_(None),
                                      open_link))
        queued = 0
        minute = int(now.timestamp() // POLL_EVERY_S)
        for case, sync in rows:
            if (case.tenant_key, case.chat_id) != (sync.tenant_key, sync.chat_id):
                continue
            key = hashlib.sha256(f"poll|{case.id}|{minute}".encode()).hexdigest()[:32]
            if outbox.enqueue(session, tenant_key=case.tenant_key, chat_id=case.chat_id, kind="immediate",
                              fire_key=f"ftpoll-{key}", due_at=now, case_id=case.id,
                              payload=outbox.dump_op(outbox.SyncFeishu(TARGET, case.id, poll=True)),
                              priority=outbox.Priority.BULK):
                sync.last_poll_at = now
                queued += 1
        return queued


def register_ticks(state: Any) -> None:
    if getattr(state.dispatcher.router, "feishu_tasks", "off") == "off":
        return

    async def tick() -> None:
        if await asyncio.to_thread(poll_tick, state.factory, state.clock.now()):
            state.sender.kick()

    state.ticker.every(POLL_EVERY_S, "feishu-tasks-poll", tick)
