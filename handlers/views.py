"""Presenters: read-only views of a case's outputs that handlers and scheduled jobs both show.
Database rows in, a card (or its view) out; nothing is written and nothing is sent."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot import texts
from bot.actions import CHANGE_OPEN, EXEC_CLOSE_OPEN, RISK_CLOSE, TRACK_OPEN, ActionValue
from bot.domain import TaskStatus
from bot.lagging import is_lagging
from bot.models import Case, Task
from bot.repository import risks_of, tasks_of
from bot.workflow import Step
from cards.tracking import RiskRow, TaskRow, TrackingView, tracking_card
from handlers.common import fmt


# ---------------------------------------------------------------- 《进度跟踪表》
def task_row(task: Task, now: datetime, tz: ZoneInfo) -> TaskRow:
    return TaskRow(task_id=task.id, seq=task.seq, content=task.content, owner=task.owner_open_id, status=task.status,
                   progress=task.progress, due=fmt(task.due_at, tz), lag_reason=task.lag_reason,
                   adjustment=task.adjustment, lagging=is_lagging(task, now))


def ordered_tasks(tasks: list[Task], now: datetime) -> list[Task]:
    """Lagging first, then open, then done; by seq within each group."""
    return sorted(tasks, key=lambda t: (not is_lagging(t, now), t.status == TaskStatus.DONE, t.seq))


def tracking_view(session: Session, case: Case, now: datetime, tz: ZoneInfo,
                  typed: dict[str, str] | None = None) -> TrackingView:
    tasks = ordered_tasks(tasks_of(session, case), now)
    risks = sorted(risks_of(session, case), key=lambda r: r.status != "open")
    archived = case.step != Step.EXECUTION
    return TrackingView(
        case_id=case.id, case_version=case.version, title=case.title, when=fmt(now, tz),
        tasks=tuple(task_row(t, now, tz) for t in tasks),
        risks=tuple(RiskRow(risk=r.risk, likelihood=r.likelihood, impact=r.impact, response=r.response,
                            owner=r.owner_open_id, open=r.status == "open", risk_id=r.id) for r in risks),
        buttons=() if archived else track_buttons(case), archived=archived,
        close_risk=None if archived else ActionValue(RISK_CLOSE, case_id=case.id), typed=typed or {})


def tracking_card_for(session: Session, case: Case, now: datetime, tz: ZoneInfo,
                      typed: dict[str, str] | None = None) -> dict:
    """《进度跟踪表》 for a case: lagging tasks, then open risks (with the 关闭风险 form), then the
    other tasks, a completion chart and the closed risks."""
    return tracking_card(tracking_view(session, case, now, tz, typed))


def track_buttons(case: Case) -> tuple[tuple[str, ActionValue, bool], ...]:
    return ((texts.BTN_UPDATE_MINE, ActionValue(TRACK_OPEN, case_id=case.id), True),
            (texts.BTN_REQUEST_CHANGE, ActionValue(CHANGE_OPEN, case_id=case.id), False),
            (texts.BTN_CLOSE_EXECUTION, ActionValue(EXEC_CLOSE_OPEN, case_id=case.id), False))
