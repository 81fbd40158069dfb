"""多维表格 board, the bot side: the lead's create/stop button on the case card, the hook step
modules call after a change (`touch`), and the minute tick that asks for a read-back of step-5
cases' boards.

The network work happens in bot.sync_board, run by the outbox sender as a SyncFeishu op in the
case's chat chain (one writer per case and base). Offered only when the deployment says so
(FEISHU_BOARD=offer|default): the app needs the `bitable:app` scope first (README, app set-up).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from bot import texts
from bot.actions import BOARD_OFF, BOARD_ON
from bot.domain import CaseStatus
from bot.models import Case, FeishuBoard
from bot.routing import Router
from bot.sync_board import FEATURE
from bot.sync_common import queue_read_backs, register_read_back_tick
from bot.workflow import Step
from handlers.sync_toggle import CaseSyncToggle, ToggleTexts

router = Router()

TOGGLE = CaseSyncToggle(router, FEATURE, on_action=BOARD_ON, off_action=BOARD_OFF, audit_code="board",
                        says=ToggleTexts(
                            button_on=texts.BTN_BOARD_ON, button_off=texts.BTN_BOARD_OFF,
                            not_offered=texts.BOARD_STEP, already_on=texts.BOARD_ALREADY_ON,
                            already_off=texts.BOARD_ALREADY_OFF, on=texts.BOARD_ON_TOAST,
                            on_now=texts.BOARD_ON_NOW_TOAST, off=texts.BOARD_OFF_TOAST,
                            audit_on=texts.AUDIT_BOARD_ON, audit_off=texts.AUDIT_BOARD_OFF))
touch = TOGGLE.touch   # after a change to the case's tasks, risks or key nodes: bring the board in line


# ---------------------------------------------------------------- the read-back tick
def poll_tick(factory: Any, now: datetime) -> int:
    """Every minute: one read-back per step-5 case whose board is on. The read-back also writes
    what changed in the bot (the lag flag turns with the clock, too). A case that moved on to the
    retrospective or was closed since its last sync gets one more, so its row in 《协作问题总览》
    says so. Returns how many were queued."""
    due = (select(Case, FeishuBoard).join(FeishuBoard, FeishuBoard.case_id == Case.id)
           .where(or_(and_(Case.status == CaseStatus.ACTIVE, Case.step == Step.EXECUTION),
                      and_(Case.step > Step.EXECUTION,
                           or_(FeishuBoard.last_poll_at.is_(None), FeishuBoard.last_poll_at < Case.step_entered_at))),
                  FeishuBoard.enabled.is_(True), FeishuBoard.problem.is_(None), FeishuBoard.app_token.is_not(None)))
    return queue_read_backs(factory, now, FEATURE, due)


def register_ticks(state: Any) -> None:
    register_read_back_tick(state, FEATURE, poll_tick)
