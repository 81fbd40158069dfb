"""成果固化: save a case as an SOP template, list the tenant's templates (/模板), and pre-fill
a new case from one.

A template keeps, for each task and key node, its working-day offset from the original plan's
first day and its time of day in the case's zone ("start_day": 2, "start_time": "14:00"), so a
reused template lands on the new case's own working days at the same hours: the new case starts
on the next working day (the tenant's calendar, bot.workdays) and a task that started at 14:00
on day 0 starts at 14:00 on the new day 0. Templates saved before kept raw hour offsets
("start_offset_h", "duration_h", "offset_h"); those are still read, from 09:00 of that first day.

The original owners are kept as suggestions: when a task's (or risk's) owner belongs to the new
case's team they keep it, else the 接口人 (else head) of the same-named department stands in;
either way the plan card says so, and it flags dates written inside the copied text
(「12月4日18点前提交测试」) until the lead changes them.

API for the step-1 engineer: template_prefill(session, tenant_key, name, start) -> dict | None.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.domain import CaseStatus
from bot.envelope import MessageEvent
from bot.models import Case, KeyNode, Member, Risk, Task, Template
from bot.repository import department_of, nodes_of, risks_of, tasks_of, team_open_ids
from bot.routing import Ctx, Router, UserError
from bot.workdays import WORK_START, WorkCalendar, calendar_for
from bot.workflow import Step
from cards.templates import ReviewItem, TemplateRow, templates_card, with_review
from handlers import people

router = Router()

H = 3600.0
_SEARCH_DAYS = 60  # as bot.workdays: never loop forever on a tenant that marked months off
DEFAULT_TZ = "Asia/Shanghai"

# Dates written into text: 2026-12-04, 2026年12月4日, 12月4日, 12-04, 周五/星期五, 明天…
DATE_IN_TEXT = re.compile(
    r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}(?:\s*[日号])?"
    r"|\d{1,2}\s*月\s*\d{1,2}(?:\s*[日号])?"
    r"|(?<![\d.:])(?:1[0-2]|0?[1-9])[-/](?:[0-2]\d|3[01])(?![\d%:])"
    r"|(?<!每)(?:周|星期|礼拜)[一二三四五六日天]"
    r"|[今明后]天|本周|下周|月底|月初")
TASK_TEXT = ("content", "delivery_standard", "resources")
RISK_TEXT = ("risk", "response")
NODE_TEXT = ("name",)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / H, 2)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TZ)


# ---------------------------------------------------------------- working-day arithmetic
def workday_offset(cal: WorkCalendar, origin: date, day: date) -> int:
    """Working days from `origin` (a working day) to `day`; a day off counts as the working day after it."""
    n = cal.workdays_between(origin, day) if day >= origin else -cal.workdays_between(day, origin)
    return n + (0 if cal.is_workday(day) else 1)


def add_workdays(cal: WorkCalendar, day: date, n: int) -> date:
    """The working day `n` working days after (n < 0: before) the working day `day`."""
    d = day
    for _ in range(abs(n)):
        if n > 0:
            d = cal.next_workday(d, inclusive=False)
            continue
        for _ in range(_SEARCH_DAYS):
            d -= timedelta(days=1)
            if cal.is_workday(d):
                break
    return d


def next_start(cal: WorkCalendar, now: datetime, tz: ZoneInfo) -> date:
    """A case from a template starts on the next working day (after today)."""
    return cal.next_workday(now.astimezone(tz).date(), inclusive=False)


# ---------------------------------------------------------------- saving
def template_body(session: Session, case: Case) -> dict[str, Any]:
    """What a template keeps: departments, roles, tasks (working-day offsets + times of day,
    original owners), risks, key nodes."""
    depts = repository.departments(session, case)
    names = {d.id: d.name for d in depts}
    tasks = tasks_of(session, case)
    first = min(t.start_at for t in tasks)
    tz = zone(case.timezone)
    cal = calendar_for(session, case.tenant_key)
    origin = cal.next_workday(first.astimezone(tz).date())
    seqs = {t.id: i for i, t in enumerate(tasks, start=1)}
    members = session.scalars(select(Member).where(Member.case_id == case.id, Member.tenant_key == case.tenant_key))

    def dept_name(open_id: str) -> str | None:
        d = department_of(session, case, open_id)
        return d.name if d else None

    def day(when: datetime) -> int:
        return workday_offset(cal, origin, when.astimezone(tz).date())

    def clock(when: datetime) -> str:
        return when.astimezone(tz).strftime("%H:%M")
    return {
        "v": 2, "tz": tz.key,
        # the people too, as suggestions for the next case (each form still shows them for a check)
        "departments": [{"name": d.name, "kind": d.kind, "head": d.head_open_id, "contact": d.contact_open_id}
                        for d in depts],
        "roles": [{"department": names.get(m.department_id), "role": m.role, "duty": m.duty, "open_id": m.open_id}
                  for m in members],
        "tasks": [{"seq": seqs[t.id], "content": t.content, "department": names.get(t.department_id)
                   or dept_name(t.owner_open_id), "owner": t.owner_open_id,
                   "start_day": day(t.start_at), "start_time": clock(t.start_at),
                   "due_day": day(t.due_at), "due_time": clock(t.due_at),
                   "start_offset_h": _hours(t.start_at - first), "duration_h": _hours(t.due_at - t.start_at),
                   "standard": t.delivery_standard, "resources": t.resources,
                   "depends_on_seq": seqs.get(t.depends_on_id)} for t in tasks],
        "risks": [{"risk": r.risk, "likelihood": r.likelihood, "impact": r.impact, "response": r.response,
                   "department": dept_name(r.owner_open_id), "owner": r.owner_open_id}
                  for r in risks_of(session, case)],
        "key_nodes": [{"name": n.name, "day": day(n.at), "time": clock(n.at), "offset_h": _hours(n.at - first)}
                      for n in nodes_of(session, case)],
    }


def find_template(session: Session, tenant_key: str, name: str) -> Template | None:
    name = name.strip().strip("《》")
    return session.scalar(select(Template).where(Template.tenant_key == tenant_key, Template.name == name))


def save_template(session: Session, case: Case, name: str, actor: str, now: datetime) -> Template:
    name = name.strip().strip("《》")[:100]
    if not name:
        raise UserError(texts.TEMPLATE_NAME_MISSING)
    if not tasks_of(session, case):
        raise UserError(texts.TEMPLATE_NO_TASKS)
    if find_template(session, case.tenant_key, name) is not None:
        raise UserError(texts.TEMPLATE_NAME_TAKEN.format(name=name))
    tpl = Template(tenant_key=case.tenant_key, name=name, source_case_id=case.id, body=template_body(session, case),
                   created_by=actor, created_at=now)
    session.add(tpl)
    session.flush()
    return tpl


# ---------------------------------------------------------------- reusing
def _time(raw: object) -> time:
    try:
        return time.fromisoformat(str(raw))
    except ValueError:
        return WORK_START


def shifted(body: dict[str, Any], start: date, tz: ZoneInfo, cal: WorkCalendar) -> dict[str, Any]:
    """The template's tasks and key nodes with absolute (UTC) times in a case whose first working
    day is `start`: the working day at each offset, at the original time of day. Old templates
    (raw hour offsets) count their hours from 09:00 of `start`."""
    base = datetime.combine(start, WORK_START, tz)

    def at(offset: object, clock: object) -> datetime:
        return datetime.combine(add_workdays(cal, start, int(offset)), _time(clock), tz).astimezone(ZoneInfo("UTC"))

    def legacy(hours: Any) -> datetime:
        return (base + timedelta(hours=float(hours))).astimezone(ZoneInfo("UTC"))

    tasks = []
    for t in body.get("tasks", []):
        if "start_day" in t:
            begin = at(t["start_day"], t.get("start_time"))
            due = at(t.get("due_day", t["start_day"]), t.get("due_time"))
            if due <= begin:  # two days off mapped onto one working day
                due = begin + timedelta(hours=max(float(t.get("duration_h") or 1), 1))
        else:
            begin = legacy(t["start_offset_h"])
            due = legacy(float(t["start_offset_h"]) + float(t["duration_h"]))
        tasks.append(dict(t, start=begin, due=due))
    return {
        "departments": list(body.get("departments", [])),
        "roles": list(body.get("roles", [])),
        "tasks": tasks,
        "risks": list(body.get("risks", [])),
        "key_nodes": [{"name": n["name"], "at": at(n["day"], n.get("time")) if "day" in n else legacy(n["offset_h"])}
                      for n in body.get("key_nodes", [])],
    }


def template_prefill(session: Session, tenant_key: str, name: str, start: datetime) -> dict | None:
    """For `/问题 模板:名称 标题`: {"template_id", "name", "departments": [{name, kind}], "roles",
    "tasks": [{content, department, start, due, standard, …}], "risks", "key_nodes": [{name, at}]}
    with times on the working days after `start`; None if the tenant has no such template. Set the
    new case's `template_id` to the returned id: step 4 then pre-fills the plan from it."""
    tpl = find_template(session, tenant_key, name)
    if tpl is None:
        return None
    tz, cal = zone(tpl.body.get("tz")), calendar_for(session, tenant_key)
    return {"template_id": tpl.id, "name": tpl.name, **shifted(tpl.body, next_start(cal, start, tz), tz, cal)}


def dates_in(text: str | None) -> list[str]:
    """The dates written in `text` (「12月4日」「12-04」「2026-12-04」「周五」…), each once."""
    return list(dict.fromkeys(m.group(0) for m in DATE_IN_TEXT.finditer(text or "")))


def _date_notes(on: str, row_id: int, row: object, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for f in fields:
        found = dates_in(getattr(row, f, ""))
        if found:
            out.append({"on": on, "id": row_id, "kind": "date", "field": f, "found": found})
    return out


def prefill_plan(ctx: Ctx, case: Case) -> bool:
    """In step 4 of a case opened from a template: create its tasks, risks and key nodes once, on
    the working days from the next one, at their original times of day. Owners: the template's
    owner when they are in this case's team, else the 接口人 (else head) of the same-named
    department (else the lead); what the lead should check is kept in the case's draft and shown
    on the plan card (review_items)."""
    if not case.template_id or (case.draft or {}).get("plan_prefilled"):
        return False
    if tasks_of(ctx.session, case, include_dropped=True) or risks_of(ctx.session, case) or nodes_of(ctx.session, case):
        return False
    tpl = ctx.session.scalar(select(Template).where(Template.id == case.template_id,
                                                    Template.tenant_key == case.tenant_key))
    if tpl is None:
        return False
    tz = zone(case.timezone) if case.timezone else ctx.tz
    cal = calendar_for(ctx.session, case.tenant_key)
    body = shifted(tpl.body, next_start(cal, ctx.now, tz), tz, cal)
    depts = {d.name: d for d in repository.departments(ctx.session, case)}
    team = team_open_ids(ctx.session, case)

    def owner(dept: str | None, was: object) -> tuple[str, int | None, dict[str, Any]]:
        """(owner, department id, the note for the card)."""
        d = depts.get(dept or "")
        if isinstance(was, str) and was in team:
            own = d or department_of(ctx.session, case, was)
            return was, own.id if own else None, {"kind": "owner", "filled": was, "was": was}
        if d is not None:
            who, role = (d.contact_open_id, texts.S2_CONTACT_ROLE) if d.contact_open_id else \
                (d.head_open_id, texts.HEAD_WORD)
            return who, d.id, {"kind": "owner", "filled": who, "was": was or "", "dept": d.name, "role": role}
        return case.lead_open_id, None, {"kind": "owner", "filled": case.lead_open_id, "was": was or "",
                                         "dept": "", "role": texts.S1_LEAD_WORD}
    review: list[dict[str, Any]] = []
    made: list[tuple[str, Task | Risk | KeyNode, dict[str, Any] | None, tuple[str, ...]]] = []
    ids: dict[int, Task] = {}
    for t in body["tasks"]:
        who, dept_id, note = owner(t.get("department"), t.get("owner"))
        task = Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, seq=t["seq"],
                    content=t["content"], owner_open_id=who, department_id=dept_id, start_at=t["start"],
                    due_at=t["due"], delivery_standard=t.get("standard", ""), resources=t.get("resources", ""),
                    updated_at=ctx.now)
        ctx.session.add(task)
        ids[t["seq"]] = task
        made.append(("task", task, note, TASK_TEXT))
    for r in body["risks"]:
        who, _dept, note = owner(r.get("department"), r.get("owner"))
        risk = Risk(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, risk=r["risk"],
                    likelihood=r["likelihood"], impact=r["impact"], response=r["response"], owner_open_id=who)
        ctx.session.add(risk)
        made.append(("risk", risk, note, RISK_TEXT))
    for n in body["key_nodes"]:
        node = KeyNode(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, name=n["name"], at=n["at"])
        ctx.session.add(node)
        made.append(("node", node, None, NODE_TEXT))
    ctx.session.flush()
    for t in body["tasks"]:
        if t.get("depends_on_seq") in ids:
            ids[t["seq"]].depends_on_id = ids[t["depends_on_seq"]].id
    for on, row, note, fields in made:
        review += _date_notes(on, row.id, row, fields)
        if note is not None:
            review.append({"on": on, "id": row.id, **note})
    case.draft = {**(case.draft or {}), "plan_prefilled": True, "template_review": review}
    ctx.send(outbox.SendText(texts.TEMPLATE_PREFILLED.format(name=tpl.name)))
    return True


def review_items(session: Session, case: Case) -> tuple[ReviewItem, ...]:
    """While the plan of a case from a template is drafted: the copied dates still in its text and
    the owners the template suggested (or stood in for) that are still assigned."""
    notes = (case.draft or {}).get("template_review") or []
    if case.step != Step.PLAN or case.status != CaseStatus.ACTIVE or not notes:
        return ()
    rows: dict[tuple[str, int], Any] = {("task", t.id): t for t in tasks_of(session, case)}
    rows.update({("risk", r.id): r for r in risks_of(session, case)})
    rows.update({("node", n.id): n for n in nodes_of(session, case)})
    wanted = {n.get("filled") for n in notes} | {n.get("was") for n in notes}
    known = repository.names(session, tenant_key=case.tenant_key, open_ids=[i for i in wanted if i])

    def name(open_id: str) -> str:
        return known.get(open_id) or people.name(session, case.tenant_key, open_id) or texts.TEMPLATE_REVIEW_SOMEONE

    def about(on: str, row: Any) -> dict[str, Any]:
        if on == "task":
            return {"on": on, "seq": row.seq, "label": row.content}
        return {"on": on, "label": row.risk if on == "risk" else row.name}
    out = []
    for n in notes:
        row = rows.get((str(n.get("on")), int(n.get("id") or 0)))
        if row is None:
            continue
        if n.get("kind") == "date":
            still = [f for f in n.get("found", []) if f in (getattr(row, str(n.get("field")), "") or "")]
            if still:
                out.append(ReviewItem(kind="date", **about(n["on"], row), found=tuple(still)))
        elif n.get("kind") == "owner" and row.owner_open_id == n.get("filled"):
            filled, was = str(n["filled"]), str(n.get("was") or "")
            role = texts.TEMPLATE_REVIEW_ROLE.format(dept=n.get("dept", ""), role=n.get("role", ""))
            kind = "kept" if filled == was else ("filled" if was else "unknown")
            out.append(ReviewItem(kind=kind, **about(n["on"], row), name=name(filled),
                                  was=name(was) if was else "", role=role))
    return tuple(out)


def with_template_review(session: Session, case: Case, card: dict) -> dict:
    """The plan card with the template review note (unchanged for a case not from a template)."""
    return with_review(card, review_items(session, case))


@router.command(texts.CMD_TEMPLATES)
def list_templates(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    rows = []
    for tpl in ctx.session.scalars(select(Template).where(Template.tenant_key == ctx.tenant_key)
                                   .order_by(Template.created_at, Template.id)):
        tasks = tpl.body.get("tasks", [])
        hours = max((t["start_offset_h"] + t["duration_h"] for t in tasks), default=0)
        departments = "、".join(d["name"] for d in tpl.body.get("departments", []))
        rows.append(TemplateRow(name=tpl.name, departments=departments,
                                tasks=len(tasks), length_seconds=hours * 3600,
                                saved=tpl.created_at.astimezone(ctx.tz).strftime("%Y-%m-%d")))
    ctx.send(outbox.SendCard(templates_card(rows)))
