"""多维表格 board, the bot side: the lead's create/stop button on the case card, the hook step
modules call after a change (`touch`), and the minute tick that asks for a read-back of step-5
cases' boards.

The network work happens in bot.sync_board, run by the outbox sender as a SyncFeishu op in the
case's chat chain (one writer per case and base). Offered only when the deployment says so
(FEISHU_BOARD=offer|default): the app needs the `bitable:app` scope first (README, app set-up).
"""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from bot import outbox, texts
from bot.actions import BOARD_OFF, BOARD_ON, ActionValue
from bot.envelope import CardAction
from bot.models import Case, FeishuBoard, Outbox
from bot.routing import CallbackAnswer, CaseButtonSpec, Ctx, Router, UserError
from bot.sync_board import TARGET
from bot.workflow import Step
from handlers import case_card
from handlers.common import audit, load_active_case, not_lead

router = Router()

POLL_EVERY_S = 60
POLL_ROWS_KEPT = timedelta(hours=1)   # finished read-back rows are deleted after this
OFFERED_IN = (Step.PLAN, Step.EXECUTION)


def board_of(session: Session, case: Case) -> FeishuBoard | None:
    return session.scalar(select(FeishuBoard).where(FeishuBoard.case_id == case.id,
                                                    FeishuBoard.tenant_key == case.tenant_key,
                                                    FeishuBoard.chat_id == case.chat_id))


def _mode(ctx: Ctx) -> str:
    return ctx.registry.feishu_board if ctx.registry is not None else "off"


def is_on(ctx: Ctx, case: Case) -> bool:
    mode = _mode(ctx)
    if mode == "off":
        return False
    board = board_of(ctx.session, case)
    if board is None:
        return mode == "default"
    return board.enabled and not board.problem


def touch(ctx: Ctx, case: Case) -> None:
    """After a change to the case's tasks, risks or key nodes: bring the board in line (queued with the change)."""
    if case.step < Step.EXECUTION or _mode(ctx) == "off":
        return
    board = board_of(ctx.session, case)
    if board is None and _mode(ctx) == "default":
        board = _set(ctx, case, True)
    if board is not None and board.enabled and not board.problem:
        ctx.send(outbox.SyncFeishu(TARGET, case.id))


def _set(ctx: Ctx, case: Case, on: bool) -> FeishuBoard:
    board = board_of(ctx.session, case)
    if board is None:
        board = FeishuBoard(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                            changed_at=ctx.now, tables={}, url="")
        ctx.session.add(board)
    board.enabled, board.changed_by, board.changed_at = on, ctx.actor, ctx.now
    # pressed again after a missing scope was added: try again, and say so again if still missing
    board.problem, board.problem_notified_at = None, None
    ctx.session.flush()
    return board


def _buttons(ctx: Ctx, case: Case) -> tuple[CaseButtonSpec, ...]:
    if _mode(ctx) == "off" or case.step not in OFFERED_IN or case.status != "active":
        return ()
    if is_on(ctx, case):
        return ((texts.BTN_BOARD_OFF, BOARD_OFF, False),)
    return ((texts.BTN_BOARD_ON, BOARD_ON, False),)


router.case_extras.append(_buttons)


def _toggle(ctx: Ctx, value: ActionValue, on: bool) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    if _mode(ctx) == "off" or case.step not in OFFERED_IN:
        raise UserError(texts.BOARD_STEP, kind="info")
    if is_on(ctx, case) == on:
        return CallbackAnswer(toast=texts.BOARD_ALREADY_ON if on else texts.BOARD_ALREADY_OFF, toast_type="info",
                              card=case_card.build(ctx, case))
    _set(ctx, case, on)
    audit(ctx, case, "board.on" if on else "board.off", texts.AUDIT_BOARD_ON if on else texts.AUDIT_BOARD_OFF)
    toast = texts.BOARD_OFF_TOAST
    if on:
        toast = texts.BOARD_ON_NOW_TOAST if case.step >= Step.EXECUTION else texts.BOARD_ON_TOAST
        touch(ctx, case)
    return CallbackAnswer(toast=toast, card=case_card.build(ctx, case))


@router.action(BOARD_ON)
def turn_on(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _toggle(ctx, value, True)


@router.action(BOARD_OFF)
def turn_off(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _toggle(ctx, value, False)


# ---------------------------------------------------------------- the read-back tick
def poll_tick(factory: Any, now: datetime) -> int:
    """Every minute: one read-back per step-5 case whose board is on (a row per case and minute, so
    two replicas ticking together queue it once). The read-back also writes what changed in the
    bot (the lag flag turns with the clock, too). A case that moved on to the retrospective or was
    closed since its last sync gets one more, so its row in 《协作问题总览》 says so. Returns how
    many were queued."""
    with factory() as session, session.begin():
        session.execute(delete(Outbox).where(
            Outbox.kind == "immediate", Outbox.fire_key.startswith("bdpoll-"), Outbox.status != "pending",
            Outbox.status != "sending", Outbox.due_at < now - POLL_ROWS_KEPT))
        rows = session.execute(select(Case, FeishuBoard).join(FeishuBoard, FeishuBoard.case_id == Case.id)
                               .where(or_(and_(Case.status == "active", Case.step == Step.EXECUTION),
                                          and_(Case.step > Step.EXECUTION,
                                               or_(FeishuBoard.last_poll_at.is_(None),
                                                   FeishuBoard.last_poll_at < Case.step_entered_at))),
                                      FeishuBoard.enabled.is_(True), FeishuBoard.problem.is_(None),
                                      FeishuBoard.app_token.is_not(None)))
        queued = 0
        minute = int(now.timestamp() // POLL_EVERY_S)
        for case, board in rows:
            if (case.tenant_key, case.chat_id) != (board.tenant_key, board.chat_id):
                continue
            key = hashlib.sha256(f"board|{case.id}|{minute}".encode()).hexdigest()[:32]
            if outbox.enqueue(session, tenant_key=case.tenant_key, chat_id=case.chat_id, kind="immediate",
                              fire_key=f"bdpoll-{key}", due_at=now, case_id=case.id,
                              payload=outbox.dump_op(outbox.SyncFeishu(TARGET, case.id, poll=True)),
                              priority=outbox.Priority.BULK):
                board.last_poll_at = now
                queued += 1
        return queued


def register_ticks(state: Any) -> None:
    if getattr(state.dispatcher.router, "feishu_board", "off") == "off":
        return

    async def tick() -> None:
        if await asyncio.to_thread(poll_tick, state.factory, state.clock.now()):
            state.sender.kick()

    state.ticker.every(POLL_EVERY_S, "feishu-board-poll", tick)
