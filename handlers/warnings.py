"""Warnings a planner confirms rather than refusals: a key node past the goal date, a deadline
outside working hours, a move that breaks a dependency. A form that warns is shown again with
the warning; submitting the same values again (the button carries their fingerprint) saves them."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot import repository, texts
from bot.actions import CONFIRM_EXTRA, ActionValue
from bot.models import Case, Task
from bot.workdays import calendar_for
from handlers.common import fmt

CONFIRM_KEY = CONFIRM_EXTRA


def fingerprint(values: Any) -> str:
    """Short, stable digest of what the form said: a confirmation holds for exactly those values."""
    raw = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def confirmed(value: ActionValue, token: str) -> bool:
    return value.extra.get(CONFIRM_KEY) == token


def node_after_goal(session: Session, case: Case, name: str, at: datetime, tz: ZoneInfo) -> str | None:
    cv = repository.current_consensus(session, case)
    goal = cv.goal_date if cv else None
    if goal is None or at.astimezone(tz).date() <= goal:
        return None
    return texts.WARN_NODE_AFTER_GOAL.format(name=name, at=fmt(at, tz), goal=goal.strftime(texts.S_DAY_FMT))


def due_off_hours(session: Session, case: Case, what: str, due: datetime, tz: ZoneInfo) -> str | None:
    if calendar_for(session, case.tenant_key).in_hours(due, tz):
        return None
    return texts.WARN_DUE_OFF_HOURS.format(what=what, at=fmt(due, tz))


def broken_dependents(tasks: list[Task], task: Task, due: datetime) -> list[Task]:
    """Tasks waiting for `task` that would start before it ends at `due`."""
    return [t for t in tasks if t.depends_on_id == task.id and not t.dropped and t.start_at < due]


def dependency_warnings(tasks: list[Task], task: Task, due: datetime, tz: ZoneInfo) -> list[str]:
    return [texts.WARN_BREAKS_DEPENDENCY.format(seq=task.seq, due=fmt(due, tz), other=t.seq, content=t.content,
                                                start=fmt(t.start_at, tz))
            for t in broken_dependents(tasks, task, due)]
