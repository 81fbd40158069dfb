"""The lead's @mention when a task newly lags — the same rule for a progress update (handlers)
and for time passing (the minute tick in handlers.reminders)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot import outbox, texts
from bot.domain import CaseStatus
from bot.lagging import is_lagging
from bot.models import Case, Task
from bot.repository import tasks_of
from bot.workdays import WorkCalendar, calendar_for
from bot.workflow import Step
from handlers.common import fmt, inert, mention


def _lag_alert(case: Case, task: Task, tz: ZoneInfo) -> outbox.SendText:
    return outbox.SendText(texts.LAG_ALERT.format(
        lead=mention(case.lead_open_id), seq=task.seq, content=inert(task.content),
        owner=mention(task.owner_open_id), status=texts.TASK_STATUS_LABELS[task.status],
        progress=task.progress,
        due=fmt(task.due_at, tz)))


def lag_alert_ops(session: Session, case: Case, now: datetime, tz: ZoneInfo,
                  tasks: list[Task] | None = None) -> list[outbox.Op]:
    """The lead's @mention, once for every task of `case` that NEWLY lags at `now`.

    For the minute tick (handlers.jobs.lag_alert_tick, every case in step 5) as much as for
    handlers: call it in the caller's transaction and enqueue what it returns. Exactly once per
    lagging episode, whoever calls first and however many call at the same moment:
    Task.lag_notified_at is set by a compare-and-set
    UPDATE (… WHERE lag_notified_at IS NULL), and only the caller whose UPDATE changed the row
    gets the op. A task that recovers is cleared, so it may alert again if it lags again.
    Returns [] outside step 5, and outside working hours (09:00–18:00 on the tenant's working
    days): lag alerts wait for the next working morning — the flag stays unset, so the first tick
    in working hours sends them."""
    ops: list[outbox.Op] = []
    if case.step != Step.EXECUTION or case.status != CaseStatus.ACTIVE:
        return ops
    cal = calendar_for(session, case.tenant_key)
    tasks = tasks if tasks is not None else tasks_of(session, case)
    if not flags_to_change(case, tasks, now, tz, cal):
        return ops
    for task in tasks:
        lagging = is_lagging(task, now, cal, tz)
        if lagging and task.lag_notified_at is None:
            if _cas_lag_flag(session, task, None, now):
                ops.append(_lag_alert(case, task, tz))
        elif not lagging and task.lag_notified_at is not None:
            _cas_lag_flag(session, task, task.lag_notified_at, None)
    return ops


def flags_to_change(case: Case, tasks: list[Task], now: datetime, tz: ZoneInfo, cal: WorkCalendar) -> bool:
    """Whether `lag_alert_ops` would change anything for `case` now (no statement run): the minute
    tick looks before it writes, so that its transaction takes SQLite's writers' lock only for
    the cases that have an alert to send or a flag to clear, not from the first of them to the end
    of all 10,000."""
    if case.step != Step.EXECUTION or case.status != CaseStatus.ACTIVE or not cal.in_hours(now, tz):
        return False
    return any(is_lagging(t, now, cal, tz) != (t.lag_notified_at is not None) for t in tasks)


def _cas_lag_flag(session: Session, task: Task, expected: datetime | None, new: datetime | None) -> bool:
    cond = Task.lag_notified_at.is_(None) if expected is None else Task.lag_notified_at.is_not(None)
    won = session.execute(update(Task).where(Task.id == task.id, cond).values(lag_notified_at=new)
                          .execution_options(synchronize_session=False)).rowcount
    session.refresh(task, ["lag_notified_at"])
    return bool(won)
