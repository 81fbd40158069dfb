"""Presenters: read-only views of a case's outputs that handlers and scheduled jobs both show.
Database rows in, a card (or its view) out; nothing is written and nothing is sent."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot import texts
from bot.actions import CHANGE_OPEN, EXEC_CLOSE_OPEN, RISK_CLOSE, TRACK_OPEN, ActionValue
from bot.domain import CaseStatus, RiskStatus, TaskStatus
from bot.lagging import is_lagging
from bot.models import Case, KeyNode, Task
from bot.repository import nodes_of, risks_of, tasks_of
from bot.workflow import Step
from cards.kit import Span, Timeline, short, unique_labels
from cards.tracking import RiskRow, TaskRow, TrackingView, tracking_card
from handlers.common import fmt
from handlers.tasks import baseline


# ---------------------------------------------------------------- 《进度跟踪表》
def task_row(task: Task, now: datetime, tz: ZoneInfo) -> TaskRow:
    return TaskRow(task_id=task.id, seq=task.seq, content=task.content, owner=task.owner_open_id, status=task.status,
                   progress=task.progress, due=fmt(task.due_at, tz), lag_reason=task.lag_reason,
                   adjustment=task.adjustment, lagging=is_lagging(task, now))


def ordered_tasks(tasks: list[Task], now: datetime) -> list[Task]:
    """Lagging first, then open, then done; by seq within each group."""
    return sorted(tasks, key=lambda t: (not is_lagging(t, now), t.status == TaskStatus.DONE, t.seq))


def tracking_view(session: Session, case: Case, now: datetime, tz: ZoneInfo,
                  typed: dict[str, str] | None = None, *, late: bool = False) -> TrackingView:
    tasks = ordered_tasks(tasks_of(session, case), now)
    risks = sorted(risks_of(session, case), key=lambda r: r.status != RiskStatus.OPEN)
    archived = case.step != Step.EXECUTION
    # open risks can still be closed after execution ends, until the retrospective is final
    risk_form = case.status == CaseStatus.ACTIVE and case.step in (Step.EXECUTION, Step.RETRO)
    return TrackingView(
        case_id=case.id, case_version=case.version, title=case.title, when=fmt(now, tz),
        tasks=tuple(task_row(t, now, tz) for t in tasks),
        risks=tuple(RiskRow(risk=r.risk, likelihood=r.likelihood, impact=r.impact, response=r.response,
                            owner=r.owner_open_id, open=r.status == RiskStatus.OPEN, risk_id=r.id) for r in risks),
        buttons=() if archived else track_buttons(case), archived=archived,
        close_risk=ActionValue(RISK_CLOSE, case_id=case.id) if risk_form else None, typed=typed or {},
        baseline_late=baseline_late(session, case, tasks, now), late=late)


def baseline_late(session: Session, case: Case, tasks: list[Task], now: datetime) -> tuple[int, ...]:
    """Seqs of the tasks later than their deadline in the baseline (plan version 1): done after it,
    or not done and past it or planned to end after it. Tasks added after the baseline are not counted."""
    base = {t["id"]: datetime.fromisoformat(t["due"]) for t in baseline(session, case).get("tasks", [])
            if not t.get("dropped") and t.get("due")}
    late = []
    for t in tasks:
        due = base.get(t.id)
        if due is None or t.dropped:
            continue
        end = (t.done_at or t.updated_at) if t.status == TaskStatus.DONE else max(now, t.due_at)
        if end is not None and end > due:
            late.append(t.seq)
    return tuple(sorted(late))


def tracking_card_for(session: Session, case: Case, now: datetime, tz: ZoneInfo,
                      typed: dict[str, str] | None = None, *, late: bool = False) -> dict:
    """《进度跟踪表》 for a case: lagging tasks, then open risks (with the 关闭风险 form), then the
    other tasks, a completion chart and the closed risks. `late`: the standup's close, sent after
    downtime, says so in its title."""
    return tracking_card(tracking_view(session, case, now, tz, typed, late=late))


def track_buttons(case: Case) -> tuple[tuple[str, ActionValue, bool], ...]:
    return ((texts.BTN_UPDATE_MINE, ActionValue(TRACK_OPEN, case_id=case.id), True),
            (texts.BTN_REQUEST_CHANGE, ActionValue(CHANGE_OPEN, case_id=case.id), False),
            (texts.BTN_CLOSE_EXECUTION, ActionValue(EXEC_CLOSE_OPEN, case_id=case.id), False))


# ---------------------------------------------------------------- timelines (charts)
@dataclass(frozen=True)
class Bar:
    task: Task
    start: datetime
    end: datetime
    series: str = ""


def timeline(title: str, bars: list[Bar], nodes: list[KeyNode], tz: ZoneInfo) -> Timeline | None:
    """The tasks as bars on a day axis from the earliest of them, the key nodes as lines; None
    without tasks. A task's row is its shortened name (with #N only where two names collide)."""
    if not bars:
        return None
    origin = min([b.start for b in bars] + [n.at for n in nodes])

    def day(at: datetime) -> float:
        return (at - origin).total_seconds() / 86400

    tasks = list({b.task.id: b.task for b in bars}.values())
    names = dict(zip((t.id for t in tasks), unique_labels([short(t.content) for t in tasks],
                                                          [f"#{t.seq}" for t in tasks])))
    return Timeline(title=title, axis=texts.TIMELINE_AXIS.format(origin=fmt(origin, tz)),
                    spans=tuple(Span(names[b.task.id], day(b.start), day(max(b.end, b.start)), b.series)
                                for b in bars),
                    marks=tuple((n.name, day(n.at)) for n in nodes))


def plan_timeline(session: Session, case: Case, tz: ZoneInfo) -> Timeline | None:
    """The plan's tasks from start to deadline and its key nodes."""
    return timeline(texts.PLAN_TIMELINE_TITLE, [Bar(t, t.start_at, t.due_at) for t in tasks_of(session, case)],
                    nodes_of(session, case), tz)
