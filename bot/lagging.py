"""When is a task lagging (滞后)? One pure rule, shared by the progress table, the standup and
the reminders.

A task that is not done and not dropped lags when
  * its status is 受阻 (blocked), or
  * its deadline has passed, or
  * its completion is clearly below the share of its time already elapsed:
    ``progress + LAG_MARGIN < elapsed%`` where elapsed% = working time (start → now) / working
    time (start → due) × 100.

Time counts in working hours (09:00–18:00 on working days, the standups' calendar:
bot/workdays.py), so nobody falls behind overnight, over a weekend or a holiday. Callers that
know the tenant's calendar and the case's time zone pass them; the default is China's public
calendar in Asia/Shanghai.

LAG_MARGIN is 20 percentage points: a task half-way through its time (50 %) lags below 30 %
done; a task that has not started yet (now < start) never lags on this count. Nor does one
that started less than a working day ago (LAG_GRACE, or half its working time when it is
shorter): its owner has not yet had a standup to report at, so 0 % there means "not asked
yet", not "behind" — a task started at 14:00 is not 滞后 at the next morning's standup.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.domain import TaskStatus
from bot.workdays import WORK_END, WORK_START, WorkCalendar

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
_PUBLIC = WorkCalendar()

LAG_MARGIN = 20  # percentage points of slack before a task counts as behind
LAG_GRACE = 9 * 3600  # seconds of working time (one working day) before the share of time counts


class TaskLike(Protocol):
    status: TaskStatus
    progress: int
    start_at: datetime
    due_at: datetime
    dropped: bool


def working_seconds(start: datetime, end: datetime, cal: WorkCalendar | None = None,
                    tz: ZoneInfo | None = None) -> float:
    """Seconds of working time (09:00–18:00 on working days) between `start` and `end` (0 when
    end <= start)."""
    if end <= start:
        return 0.0
    cal, tz = cal or _PUBLIC, tz or DEFAULT_TZ
    a, b = start.astimezone(tz), end.astimezone(tz)
    total, day = 0.0, a.date()
    while day <= b.date():
        if cal.is_workday(day):
            lo = max(a, datetime.combine(day, WORK_START, tz))
            hi = min(b, datetime.combine(day, WORK_END, tz))
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def elapsed_percent(start: datetime, due: datetime, now: datetime, cal: WorkCalendar | None = None,
                    tz: ZoneInfo | None = None) -> float:
    """Share of the task's working time already used, clamped to 0..100."""
    if now >= due:
        return 100.0
    total = working_seconds(start, due, cal, tz)
    used = working_seconds(start, now, cal, tz) if total > 0 else 0.0
    return _share(used, total)


def _share(used: float, total: float) -> float:
    if total <= 0:
        return 0.0  # the whole task lies outside working hours: only its deadline counts
    return max(0.0, min(100.0, used / total * 100))


def _lagging(status: TaskStatus, progress: int, start: datetime, due: datetime, now: datetime,
             cal: WorkCalendar | None, tz: ZoneInfo | None) -> bool:
    if status == TaskStatus.DONE:
        return False
    if status == TaskStatus.BLOCKED or now > due:
        return True
    if now == due:
        return progress + LAG_MARGIN < 100
    # each sum walks the days from the start: computed once (a click checks every task of the case)
    total, used = working_seconds(start, due, cal, tz), working_seconds(start, now, cal, tz)
    if used < min(LAG_GRACE, total / 2):
        return False
    return progress + LAG_MARGIN < _share(used, total)


def is_lagging(task: TaskLike, now: datetime, cal: WorkCalendar | None = None, tz: ZoneInfo | None = None) -> bool:
    """True when the task is behind (see the module docstring). Dropped tasks never lag."""
    if getattr(task, "dropped", False):
        return False
    return _lagging(task.status, int(task.progress or 0), task.start_at, task.due_at, now, cal, tz)


def lag_reason_required(task: TaskLike, now: datetime, *, status: TaskStatus | None = None,
                        progress: int | None = None, cal: WorkCalendar | None = None,
                        tz: ZoneInfo | None = None) -> bool:
    """Would the task lag with the reported status/progress? Then 滞后原因 and 调整措施 are
    required in the update. Without a report it asks about the task as stored."""
    if getattr(task, "dropped", False):
        return False
    st = task.status if status is None else status
    pr = int(task.progress or 0) if progress is None else progress
    return _lagging(st, pr, task.start_at, task.due_at, now, cal, tz)
