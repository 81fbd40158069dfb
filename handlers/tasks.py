"""The plan's tasks as steps 4 and 5 both handle them: reading and checking a task form (times,
owner, delivery standard, dependencies without cycles), the next task number, and plan snapshots
(the baseline is version 1)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import texts
from bot.ids import is_open_id, number
from bot.models import Case, PlanVersion, Task
from bot.repository import nodes_of, risks_of, tasks_of
from bot.routing import Ctx
from handlers.common import first_too_long, fmt, not_member, parse_when


def when_field(form: dict, key: str, label: str, tz: ZoneInfo) -> datetime:
    raw = form.get(key)
    try:
        when = parse_when(raw, tz)
    except ValueError as exc:
        raise ValueError(texts.BAD_DATETIME.format(field=label, value=str(raw)[:30])) from exc
    if when is None:
        raise ValueError(texts.ERR_TIME_MISSING.format(field=label))
    return when


def today_start(now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def find_cycle(depends: dict[int, int | None], start: int) -> list[int] | None:
    """Follow depends_on links from `start`; the ids on the loop if it comes back, else None."""
    path, node = [start], depends.get(start)
    while node is not None:
        if node in path:
            return path[path.index(node):] + [node]
        path.append(node)
        node = depends.get(node)
    return None


TASK_LIMITS = {"content": (texts.FIELD_CONTENT, 500), "standard": (texts.FIELD_STANDARD, 500),
               "resources": (texts.FIELD_RESOURCES, 500)}


def check_task(ctx: Ctx, case: Case, form: dict, editing: Task | None) -> dict:
    content = str(form.get("content") or "").strip()
    if not content:
        raise ValueError(texts.ERR_CONTENT)
    standard = str(form.get("standard") or "").strip()
    resources = str(form.get("resources") or "").strip()
    if problem := first_too_long({"content": content, "standard": standard, "resources": resources},
                                 TASK_LIMITS):
        raise ValueError(problem)
    owner = str(form.get("owner") or "").strip()
    if not is_open_id(owner):
        raise ValueError(texts.ERR_OWNER)
    if problem := not_member(ctx, owner, texts.FIELD_OWNER):
        raise ValueError(problem)
    start = when_field(form, "start", texts.FIELD_START, ctx.tz)
    due = when_field(form, "due", texts.FIELD_DUE, ctx.tz)
    if due <= start:
        raise ValueError(texts.ERR_END_BEFORE_START)
    if start < today_start(ctx.now, ctx.tz):
        raise ValueError(texts.ERR_START_PAST)
    if due <= ctx.now:
        raise ValueError(texts.ERR_PAST.format(field=texts.FIELD_DUE, value=fmt(due, ctx.tz)))
    if not standard:
        raise ValueError(texts.ERR_STANDARD)
    dep_id = depends_id(form, editing)
    tasks = tasks_of(ctx.session, case)
    check_depends(tasks, editing.id if editing else -1, dep_id)
    return dict(content=content, owner_open_id=owner, start_at=start, due_at=due,
                delivery_standard=standard, resources=resources,
                depends_on_id=dep_id)


def depends_id(form: dict, editing: Task | None) -> int | None:
    """The dependency a form asks for; a form without the field keeps what the task had."""
    if "depends" not in form:
        return editing.depends_on_id if editing is not None else None
    raw = str(form.get("depends") or "0")
    if raw == "0" or not (raw.isascii() and raw.isdigit()):
        return None
    return number(raw) or 0  # digits no task can have: check_depends refuses them by name


def check_depends(tasks: list[Task], me: int, dep_id: int | None) -> None:
    """`me` (a task id, -1 for a new task) may wait for `dep_id`: it exists and makes no loop."""
    if dep_id is not None:
        if dep_id not in {t.id for t in tasks} or dep_id == me:
            raise ValueError(texts.ERR_DEPENDS_UNKNOWN)
        links = {t.id: t.depends_on_id for t in tasks}
        links[me] = dep_id
        loop = find_cycle(links, me)
        if loop:
            seqs = {t.id: t.seq for t in tasks}
            raise ValueError(texts.ERR_CYCLE.format(path=" → ".join(f"#{seqs.get(i, '?')}" for i in loop)))


def next_task_seq(session: Session, case: Case) -> int:
    top = session.scalar(select(Task.seq).where(Task.case_id == case.id, Task.tenant_key == case.tenant_key)
                         .order_by(Task.seq.desc()).limit(1))
    return (top or 0) + 1


def plan_snapshot(session: Session, case: Case) -> dict:
    """The plan as stored in plan_versions (UTC ISO times); the baseline is version 1."""
    tasks = tasks_of(session, case, include_dropped=True)
    seqs = {t.id: t.seq for t in tasks}
    return {
        "tasks": [{"id": t.id, "seq": t.seq, "content": t.content, "owner": t.owner_open_id,
                   "department_id": t.department_id, "start": t.start_at.isoformat(), "due": t.due_at.isoformat(),
                   "standard": t.delivery_standard, "resources": t.resources,
                   "depends_on_seq": seqs.get(t.depends_on_id), "dropped": t.dropped} for t in tasks],
        "risks": [{"risk": r.risk, "likelihood": r.likelihood, "impact": r.impact, "response": r.response,
                   "owner": r.owner_open_id} for r in risks_of(session, case)],
        "nodes": [{"name": n.name, "at": n.at.isoformat()} for n in nodes_of(session, case)],
    }


def baseline(session: Session, case: Case) -> dict:
    pv = session.scalar(select(PlanVersion).where(PlanVersion.case_id == case.id,
                                                  PlanVersion.tenant_key == case.tenant_key,
                                                  PlanVersion.version == 1))
    return pv.snapshot if pv else {"tasks": []}
