"""When is a task lagging (滞后)? One pure rule, shared by the progress table, the standup and
the reminders.

A task that is not done and not dropped lags when
  * its status is 受阻 (blocked), or
  * its deadline has passed, or
  * its completion is clearly below the share of its time already elapsed:
    ``progress + LAG_MARGIN < elapsed%`` where elapsed% = (now − start) / (due − start) × 100.

LAG_MARGIN is 20 percentage points: a task half-way through its time (50 %) lags below 30 %
done; a task that has not started yet (now < start) never lags on this count.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.domain import TaskStatus

LAG_MARGIN = 20  # percentage points of slack before a task counts as behind


class TaskLike(Protocol):
    status: TaskStatus
    progress: int
    start_at: datetime
    due_at: datetime
    dropped: bool


def elapsed_percent(start: datetime, due: datetime, now: datetime) -> float:
    """Share of the task's time already used, clamped to 0..100."""
    total = (due - start).total_seconds()
    if total <= 0:
        return 100.0 if now >= due else 0.0
    used = (now - start).total_seconds()
    return max(0.0, min(100.0, used / total * 100))


def _lagging(status: TaskStatus, progress: int, start: datetime, due: datetime, now: datetime) -> bool:
    if status == TaskStatus.DONE:
        return False
    if status == TaskStatus.BLOCKED or now > due:
        return True
    return progress + LAG_MARGIN < elapsed_percent(start, due, now)


def is_lagging(task: TaskLike, now: datetime) -> bool:
    """True when the task is behind (see the module docstring). Dropped tasks never lag."""
    if getattr(task, "dropped", False):
        return False
    return _lagging(task.status, int(task.progress or 0), task.start_at, task.due_at, now)


def lag_reason_required(task: TaskLike, now: datetime, *, status: TaskStatus | None = None,
                        progress: int | None = None) -> bool:
    """Would the task lag with the reported status/progress? Then 滞后原因 and 调整措施 are
    required in the update. Without a report it asks about the task as stored."""
    if getattr(task, "dropped", False):
        return False
    st = task.status if status is None else status
    pr = int(task.progress or 0) if progress is None else progress
    return _lagging(st, pr, task.start_at, task.due_at, now)
