"""Step 4 — 制定行动方案 → 《跨部门协作行动方案》.

Tasks, risks and key nodes are drafted one form submit at a time on the plan card; the lead
publishes: the plan goes out as 会议纪要, each owner is @mentioned with their tasks, version 1 is
stored as the baseline and the case moves to step 5. Shared helpers of steps 4–6 live here too."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import repository, texts
from bot.models import Case, Department, KeyNode, Member, Risk, Task
from bot.routing import Ctx, UserError

# ---------------------------------------------------------------- shared helpers (steps 4–6)
_WHEN = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?\s*(?:([+-])(\d{2}):?(\d{2}))?\s*$")


def parse_when(raw: object, tz: ZoneInfo) -> datetime | None:
    """'2026-12-11 12:00 +0800' (picker_datetime) or '2026-12-10 +0800' (date_picker, → 18:00)
    → aware UTC datetime; None when empty. Raises ValueError for anything else or impossible dates."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise ValueError(raw)
    m = _WHEN.match(raw)
    if not m:
        raise ValueError(raw)
    y, mo, d, hh, mm, sign, oh, om = m.groups()
    hour, minute = (int(hh), int(mm)) if hh is not None else (18, 0)
    if sign:
        from datetime import timezone
        offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
        zone = timezone(offset)
    else:
        zone = tz
    when = datetime(int(y), int(mo), int(d), hour, minute, tzinfo=zone)  # ValueError on 2月30日
    return when.astimezone(ZoneInfo("UTC"))


def fmt(when: datetime | None, tz: ZoneInfo, pattern: str = texts.DATETIME_FMT) -> str:
    return when.astimezone(tz).strftime(pattern) if when else "—"


def picker_value(when: datetime | None, tz: ZoneInfo) -> str | None:
    """A stored time as a picker's initial value ('yyyy-MM-dd HH:mm' in the group's zone)."""
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else None


def tasks_of(session: Session, case: Case, *, include_dropped: bool = False) -> list[Task]:
    q = select(Task).where(Task.case_id == case.id, Task.tenant_key == case.tenant_key, Task.chat_id == case.chat_id)
    if not include_dropped:
        q = q.where(Task.dropped.is_(False))
    return list(session.scalars(q.order_by(Task.seq, Task.id)))


def get_task(session: Session, case: Case, task_id: int | None) -> Task | None:
    if task_id is None:
        return None
    return session.scalar(select(Task).where(Task.id == task_id, Task.case_id == case.id,
                                             Task.tenant_key == case.tenant_key, Task.chat_id == case.chat_id))


def risks_of(session: Session, case: Case) -> list[Risk]:
    return list(session.scalars(select(Risk).where(Risk.case_id == case.id, Risk.tenant_key == case.tenant_key,
                                                   Risk.chat_id == case.chat_id).order_by(Risk.id)))


def nodes_of(session: Session, case: Case) -> list[KeyNode]:
    return list(session.scalars(select(KeyNode).where(KeyNode.case_id == case.id, KeyNode.tenant_key == case.tenant_key,
                                                      KeyNode.chat_id == case.chat_id).order_by(KeyNode.at, KeyNode.id)))


def team_open_ids(session: Session, case: Case) -> set[str]:
    """Everyone who belongs to the case: lead, heads, 接口人, members and task owners."""
    ids = {case.lead_open_id}
    for d in repository.departments(session, case):
        ids.add(d.head_open_id)
        if d.contact_open_id:
            ids.add(d.contact_open_id)
    ids.update(session.scalars(select(Member.open_id).where(Member.case_id == case.id,
                                                            Member.tenant_key == case.tenant_key,
                                                            Member.chat_id == case.chat_id)))
    ids.update(t.owner_open_id for t in tasks_of(session, case))
    return ids


def department_of(session: Session, case: Case, open_id: str) -> Department | None:
    """The department a person works for in this case (member row, else head/接口人)."""
    dept_id = session.scalar(select(Member.department_id).where(Member.case_id == case.id, Member.open_id == open_id,
                                                                Member.tenant_key == case.tenant_key))
    depts = repository.departments(session, case)
    for d in depts:
        if d.id == dept_id:
            return d
    for d in depts:
        if open_id in (d.head_open_id, d.contact_open_id):
            return d
    return None


def load_case(ctx: Ctx, case_id: int | None) -> Case:
    case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, case_id=case_id or 0)
    if case is None:
        raise UserError(texts.CASE_NOT_FOUND)
    return case


def require_step(case: Case, step: int) -> None:
    if case.status == "closed" or case.step >= 7:
        raise UserError(texts.CASE_CLOSED)
    if case.step != step:
        raise UserError(texts.WRONG_STEP.format(current=texts.STEP_NAMES[case.step], expected=texts.STEP_NAMES[step]))


def audit(ctx: Ctx, case: Case, action: str, detail: str) -> None:
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action=action, detail=detail, now=ctx.now)
