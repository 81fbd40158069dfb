"""飞书任务 sync, the bot side: the lead's on/off button on the case card, the hook step modules call
after a change (`touch`), and the minute tick that asks for a read-back of step-5 cases.

The network work happens in bot.sync_tasks, run by the outbox sender as a SyncFeishu op in the
case's chat chain (one writer per case). Offered only when the deployment says so
(FEISHU_TASKS=offer|default): the app needs the Task scopes first (README, app set-up).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select

from bot import texts
from bot.actions import FTASKS_OFF, FTASKS_ON
from bot.domain import CaseStatus
from bot.models import Case, FeishuTaskLink, FeishuTaskSync, Task
from bot.routing import Router
from bot.sync_common import queue_read_backs, register_read_back_tick
from bot.sync_tasks import FEATURE
from bot.workflow import Step
from handlers.sync_toggle import CaseSyncToggle, ToggleTexts

router = Router()

TOGGLE = CaseSyncToggle(router, FEATURE, on_action=FTASKS_ON, off_action=FTASKS_OFF, audit_code="ftasks",
                        says=ToggleTexts(
                            button_on=texts.BTN_FTASKS_ON, button_off=texts.BTN_FTASKS_OFF,
                            not_offered=texts.FTASKS_STEP, already_on=texts.FTASKS_ALREADY_ON,
                            already_off=texts.FTASKS_ALREADY_OFF, on=texts.FTASKS_ON_TOAST,
                            on_now=texts.FTASKS_ON_NOW_TOAST, off=texts.FTASKS_OFF_TOAST,
                            audit_on=texts.AUDIT_FTASKS_ON, audit_off=texts.AUDIT_FTASKS_OFF))
touch = TOGGLE.touch   # after a change to the plan's tasks: bring the Feishu tasks in line


# ---------------------------------------------------------------- the read-back tick
def poll_tick(factory: Any, now: datetime) -> int:
    """Every minute: one read-back per step-5 case that syncs and has a linked task still open
    there. Returns how many were queued."""
    open_link = exists().where(FeishuTaskLink.case_id == Case.id, FeishuTaskLink.task_guid.is_not(None),
                               FeishuTaskLink.deleted_at.is_(None), FeishuTaskLink.remote_completed.is_(False),
                               Task.id == FeishuTaskLink.task_id, Task.dropped.is_(False))
    due = (select(Case, FeishuTaskSync).join(FeishuTaskSync, FeishuTaskSync.case_id == Case.id)
           .where(Case.status == CaseStatus.ACTIVE, Case.step == Step.EXECUTION,
                  FeishuTaskSync.enabled.is_(True), FeishuTaskSync.problem.is_(None), open_link))
    return queue_read_backs(factory, now, FEATURE, due)


def register_ticks(state: Any) -> None:
    register_read_back_tick(state, FEATURE, poll_tick)
