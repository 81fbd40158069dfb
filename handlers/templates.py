"""成果固化: save a case as an SOP template, list the tenant's templates (/模板), and pre-fill
a new case from one. Times are stored relative to the plan's start, so a reused template
lands on the new case's own dates.

API for the step-1 engineer: template_prefill(session, tenant_key, name, start) -> dict | None.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.envelope import MessageEvent
from bot.models import Case, KeyNode, Member, Risk, Task, Template
from bot.repository import department_of, nodes_of, risks_of, tasks_of
from bot.routing import Ctx, Router, UserError
from cards.templates import TemplateRow, templates_card

router = Router()

H = 3600.0


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / H, 2)


def template_body(session: Session, case: Case) -> dict[str, Any]:
    """What a template keeps: departments, roles, tasks (relative times), risks, key nodes."""
    depts = repository.departments(session, case)
    names = {d.id: d.name for d in depts}
    tasks = tasks_of(session, case)
    origin = min(t.start_at for t in tasks)
    seqs = {t.id: i for i, t in enumerate(tasks, start=1)}
    members = session.scalars(select(Member).where(Member.case_id == case.id, Member.tenant_key == case.tenant_key))

    def dept_name(open_id: str) -> str | None:
        d = department_of(session, case, open_id)
        return d.name if d else None
    return {
        "departments": [{"name": d.name, "kind": d.kind} for d in depts],
        "roles": [{"department": names.get(m.department_id), "role": m.role, "duty": m.duty} for m in members],
        "tasks": [{"seq": seqs[t.id], "content": t.content, "department": names.get(t.department_id)
                   or dept_name(t.owner_open_id), "start_offset_h": _hours(t.start_at - origin),
                   "duration_h": _hours(t.due_at - t.start_at), "standard": t.delivery_standard,
                   "resources": t.resources, "depends_on_seq": seqs.get(t.depends_on_id)} for t in tasks],
        "risks": [{"risk": r.risk, "likelihood": r.likelihood, "impact": r.impact, "response": r.response,
                   "department": dept_name(r.owner_open_id)} for r in risks_of(session, case)],
        "key_nodes": [{"name": n.name, "offset_h": _hours(n.at - origin)} for n in nodes_of(session, case)],
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


def shifted(body: dict[str, Any], start: datetime) -> dict[str, Any]:
    """The template's tasks and key nodes with absolute times from `start`."""
    def at(hours: float) -> datetime:
        return start + timedelta(hours=hours)
    return {
        "departments": list(body.get("departments", [])),
        "roles": list(body.get("roles", [])),
        "tasks": [dict(t, start=at(t["start_offset_h"]), due=at(t["start_offset_h"] + t["duration_h"]))
                  for t in body.get("tasks", [])],
        "risks": list(body.get("risks", [])),
        "key_nodes": [{"name": n["name"], "at": at(n["offset_h"])} for n in body.get("key_nodes", [])],
    }


def template_prefill(session: Session, tenant_key: str, name: str, start: datetime) -> dict | None:
    """For `/问题 模板:名称 标题`: {"template_id", "name", "departments": [{name, kind}], "roles",
    "tasks": [{content, department, start, due, standard, …}], "risks", "key_nodes": [{name, at}]}
    with times shifted to `start`; None if the tenant has no such template. Set the new case's
    `template_id` to the returned id: step 4 then pre-fills the plan from it."""
    tpl = find_template(session, tenant_key, name)
    if tpl is None:
        return None
    return {"template_id": tpl.id, "name": tpl.name, **shifted(tpl.body, start)}


def prefill_plan(ctx: Ctx, case: Case) -> bool:
    """In step 4 of a case opened from a template: create its tasks, risks and key nodes once,
    starting the next morning, owners = the 接口人 (else head) of the same-named department."""
    if not case.template_id or (case.draft or {}).get("plan_prefilled"):
        return False
    if tasks_of(ctx.session, case, include_dropped=True) or risks_of(ctx.session, case) or nodes_of(ctx.session, case):
        return False
    tpl = ctx.session.scalar(select(Template).where(Template.id == case.template_id,
                                                    Template.tenant_key == case.tenant_key))
    if tpl is None:
        return False
    local = ctx.now.astimezone(ctx.tz)
    start = (local + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0).astimezone(ZoneInfo("UTC"))
    body = shifted(tpl.body, start)
    depts = {d.name: d for d in repository.departments(ctx.session, case)}

    def owner(dept: str | None) -> tuple[str, int | None]:
        d = depts.get(dept or "")
        return ((d.contact_open_id or d.head_open_id), d.id) if d else (case.lead_open_id, None)
    ids: dict[int, Task] = {}
    for t in body["tasks"]:
        who, dept_id = owner(t.get("department"))
        task = Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, seq=t["seq"],
                    content=t["content"], owner_open_id=who, department_id=dept_id, start_at=t["start"],
                    due_at=t["due"], delivery_standard=t.get("standard", ""), resources=t.get("resources", ""),
                    updated_at=ctx.now)
        ctx.session.add(task)
        ids[t["seq"]] = task
    ctx.session.flush()
    for t in body["tasks"]:
        if t.get("depends_on_seq") in ids:
            ids[t["seq"]].depends_on_id = ids[t["depends_on_seq"]].id
    for r in body["risks"]:
        ctx.session.add(Risk(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, risk=r["risk"],
                             likelihood=r["likelihood"], impact=r["impact"], response=r["response"],
                             owner_open_id=owner(r.get("department"))[0]))
    for n in body["key_nodes"]:
        ctx.session.add(KeyNode(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, name=n["name"],
                                at=n["at"]))
    case.draft = {**(case.draft or {}), "plan_prefilled": True}
    ctx.send(outbox.SendText(texts.TEMPLATE_PREFILLED.format(name=tpl.name)))
    return True


@router.command(texts.CMD_TEMPLATES)
def list_templates(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    rows = []
    for tpl in ctx.session.scalars(select(Template).where(Template.tenant_key == ctx.tenant_key)
                                   .order_by(Template.created_at, Template.id)):
        tasks = tpl.body.get("tasks", [])
        span = max((t["start_offset_h"] + t["duration_h"] for t in tasks), default=0) / 24
        departments = "、".join(d["name"] for d in tpl.body.get("departments", []))
        rows.append(TemplateRow(name=tpl.name, departments=departments,
                                tasks=len(tasks), days=round(span, 1),
                                saved=tpl.created_at.astimezone(ctx.tz).strftime("%Y-%m-%d")))
    ctx.send(outbox.SendCard(templates_card(rows)))
