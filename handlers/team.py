"""Step 2 — 组建协作小组，明确权责分工 → 《协作小组分工表》.

The table is editable while the case is in step 2 (also after `/回退 2`): departments get a type
(核心/支持) and a 接口人, members a 角色 and 职责, and initial 行动项 are added. Every edit bumps
ArtifactState('team').version and clears its confirmation; the lead confirms (every department
needs a 接口人), the table is posted and pinned, each member is mentioned once, and step 3 starts.
"""
from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus, DeptKind, parse
from bot.envelope import CardAction
from bot.models import ActionItem, Case, Department, Member, Template
from bot.routing import CallbackAnswer, Ctx, Router, UserError
from bot.workflow import Blocked, ConfirmTeam, Effect, Step
from cards import team as cards
from handlers import case_card, people
from handlers.common import (
    artifact_as_shown,
    audit,
    form_person,
    form_text,
    inert,
    load_active_case,
    local,
    mention,
    not_lead,
    not_member,
    open_form,
    output_buttons,
    parse_day,
    require_lead_or_head,
    require_step,
    too_long,
    touch,
    transition,
)

router = Router(Step.TEAM)

OPEN = "team.open"
VIEW = "team.view"
FORM_DEPTS = "team.form_depts"
FORM_MEMBER = "team.form_member"
FORM_ITEM = "team.form_item"
FORM_LEAD = "team.form_lead"
SAVE_DEPTS = "team.save_depts"
SAVE_MEMBER = "team.save_member"
SAVE_ITEM = "team.save_item"
SAVE_LEAD = "team.save_lead"
CONFIRM = "team.confirm"
REMOVE_MEMBER = "team.remove_member"
REMOVE_ITEM = "team.remove_item"


# ---------------------------------------------------------------- reading
def members(ctx: Ctx, case: Case) -> list[Member]:
    return list(ctx.session.scalars(select(Member).where(
        Member.case_id == case.id, Member.tenant_key == case.tenant_key, Member.chat_id == case.chat_id)
        .order_by(Member.id)))


def items(ctx: Ctx, case: Case) -> list[ActionItem]:
    return list(ctx.session.scalars(select(ActionItem).where(
        ActionItem.case_id == case.id, ActionItem.tenant_key == case.tenant_key,
        ActionItem.chat_id == case.chat_id).order_by(ActionItem.id)))


def _lines(depts: list[Department]) -> tuple[cards.DeptLine, ...]:
    return tuple(cards.DeptLine(id=d.id, name=d.name, kind=d.kind, head_open_id=d.head_open_id,
                                contact_open_id=d.contact_open_id) for d in depts)


def team_view(ctx: Ctx, case: Case) -> cards.TeamView:
    state = repository.artifact_state(ctx.session, case, "team")
    depts = repository.departments(ctx.session, case)
    names = {d.id: d.name for d in depts}
    live = case.step == Step.TEAM and case.status == CaseStatus.ACTIVE
    v = state.version
    buttons = cards.TeamButtons(depts=ActionValue(FORM_DEPTS, case.id, v), member=ActionValue(FORM_MEMBER, case.id, v),
                                item=ActionValue(FORM_ITEM, case.id, v), lead=ActionValue(FORM_LEAD, case.id, v),
                                confirm=ActionValue(CONFIRM, case.id, v),
                                remove_member=ActionValue(REMOVE_MEMBER, case.id, v),
                                remove_item=ActionValue(REMOVE_ITEM, case.id, v)) if live else None
    return cards.TeamView(
        title=case.title, lead_open_id=case.lead_open_id, depts=_lines(depts),
        members=tuple(cards.MemberLine(open_id=m.open_id, department=names.get(m.department_id or 0, ""),
                                       role=m.role, duty=m.duty, member_id=m.id) for m in members(ctx, case)),
        items=tuple(cards.ItemLine(content=i.content, owner_open_id=i.owner_open_id, due=i.due_date, item_id=i.id)
                    for i in items(ctx, case)),
        confirmed_at=local(ctx, state.archived_at), buttons=buttons,
        suggested_roles=_template_roles(ctx, case) if live else ())


def _template_roles(ctx: Ctx, case: Case) -> tuple[tuple[str, str, str], ...]:
    """The roles of the SOP template this case was opened from that nobody holds yet: roles
    need people, so they are shown as a checklist rather than created."""
    if not case.template_id:
        return ()
    tpl = ctx.session.scalar(select(Template).where(Template.id == case.template_id,
                                                    Template.tenant_key == case.tenant_key))
    if tpl is None:
        return ()
    depts = {d.id: d.name for d in repository.departments(ctx.session, case)}
    held = {(depts.get(m.department_id or 0, ""), m.role) for m in members(ctx, case)}
    out = []
    for r in tpl.body.get("roles", []):
        key = (str(r.get("department") or ""), str(r.get("role") or ""))
        if key[1] and key not in held and key[1] != texts.S2_CONTACT_ROLE:
            out.append((key[0], key[1], str(r.get("duty") or "")))
    return tuple(dict.fromkeys(out))


def _template_contacts(ctx: Ctx, case: Case, depts: list[Department]) -> dict[str, str]:
    """The SOP template's 接口人 of a same-named department still in the group, pre-selected for a
    department that has none yet (a suggestion: the form shows it before anything is saved)."""
    tpl = (ctx.session.scalar(select(Template).where(Template.id == case.template_id,
                                                     Template.tenant_key == case.tenant_key))
           if case.template_id else None)
    if tpl is None:
        return {}
    known = {str(d.get("name")): str(d.get("contact") or "") for d in tpl.body.get("departments", [])}
    return {f"contact_{d.id}": known[d.name] for d in depts
            if not d.contact_open_id and mention(known.get(d.name, "")) and not not_member(ctx, known[d.name], d.name)}


@router.card_view("team")
def table_for(ctx: Ctx, case: Case) -> dict:
    ctx.session.flush()
    return cards.team_card(team_view(ctx, case))


def _editable(ctx: Ctx, value: ActionValue) -> tuple[Case, list[Department]]:
    case = load_active_case(ctx, value.case_id)
    require_step(case, Step.TEAM)
    depts = repository.departments(ctx.session, case)
    require_lead_or_head(ctx, case, depts)
    return case, depts


def _changed(ctx: Ctx, case: Case) -> None:
    """An edit: the table needs confirming again (a new version)."""
    state = repository.artifact_state(ctx.session, case, "team")
    state.version += 1
    state.archived_at = None
    touch(ctx, case)


def _fv(case: Case, title: str, submit: str, values: dict | None = None, error: str = "",
        version: int | None = None) -> cards.FormView:
    return cards.FormView(title=title, submit=ActionValue(submit, case_id=case.id, version=version),
                          cancel=ActionValue(VIEW, case_id=case.id), error=error, values=values or {})


@router.effect(Effect.PREFILL_TEAM)
def _prefill_on_enter(ctx: Ctx, case: Case, before: Step) -> None:
    if before == Step.CONSENSUS:
        prefill_from_template(ctx, case)


def prefill_from_template(ctx: Ctx, case: Case) -> None:
    """Entering step 2 of a case opened from an SOP template: same-named departments take the
    template's 核心/支持. (Roles need people, so they are not pre-created.)"""
    tpl = (ctx.session.scalar(select(Template).where(Template.id == case.template_id,
                                                     Template.tenant_key == case.tenant_key))
           if case.template_id else None)
    if tpl is None:
        return
    kinds = {d.get("name"): parse(DeptKind, d.get("kind")) for d in tpl.body.get("departments", [])}
    for d in repository.departments(ctx.session, case):
        if kind := kinds.get(d.name):  # neither unknown (None) nor left open (UNSET, "")
            d.kind = kind


# ---------------------------------------------------------------- showing
output_buttons(router, OPEN, VIEW, table_for, "team")


@router.action(FORM_DEPTS, FORM_MEMBER, FORM_ITEM, FORM_LEAD)
def show_form(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    return open_form(ctx, event, _form(ctx, case, depts, value), case)


def _form(ctx: Ctx, case: Case, depts: list[Department], value: ActionValue) -> dict:
    lines = _lines(depts)
    if value.action == FORM_DEPTS:
        version = repository.artifact_state(ctx.session, case, "team").version
        return cards.depts_form(_fv(case, texts.S2_FORM_DEPTS, SAVE_DEPTS, _template_contacts(ctx, case, depts),
                                    version=version), lines)
    if value.action == FORM_MEMBER:   # opens on the clicker's own department (head or 接口人)
        own = [d for d in depts if ctx.actor in (d.head_open_id, d.contact_open_id)]
        mine = {"dept": str(own[0].id)} if own else None
        return cards.member_form(_fv(case, texts.S2_FORM_MEMBER, SAVE_MEMBER, mine), lines)
    if value.action == FORM_ITEM:
        return cards.item_form(_fv(case, texts.S2_FORM_ITEM, SAVE_ITEM))
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    return cards.lead_form(_fv(case, texts.S2_FORM_LEAD, SAVE_LEAD))


# ---------------------------------------------------------------- saving
@router.action(SAVE_DEPTS)
def save_depts(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    form = event.form_value
    values = {k: form_person(form, k) for k in form if isinstance(k, str)}
    version = repository.artifact_state(ctx.session, case, "team").version
    errors = []
    kinds: dict[int, DeptKind] = {}
    for d in depts:
        raw, contact = values.get(f"kind_{d.id}"), values.get(f"contact_{d.id}", "")
        kind = parse(DeptKind, raw) if raw else d.kind
        if kind is None:
            errors.append(texts.S2_BAD_KIND.format(dept=d.name))
        elif kind == DeptKind.UNSET:  # asked once, here: a department is not 核心 until someone says so
            errors.append(texts.S2_NEED_KIND.format(dept=d.name))
        else:
            kinds[d.id] = kind
        if contact and not mention(contact):
            errors.append(texts.S_BAD_PERSON.format(field=texts.S2_F_CONTACT.format(dept=d.name)))
        elif problem := not_member(ctx, contact, texts.S2_F_CONTACT.format(dept=d.name)):
            errors.append(problem)
    if not errors and value.version != version:
        errors.append(texts.S_STALE_FORM.format(version=version))
    if errors:
        raise UserError(errors[0], card=cards.depts_form(
            _fv(case, texts.S2_FORM_DEPTS, SAVE_DEPTS, values, "\n".join(errors), version), _lines(depts)))
    for d in depts:
        d.kind = kinds[d.id]
        new_contact = values.get(f"contact_{d.id}") or d.contact_open_id
        if new_contact != d.contact_open_id:
            _swap_contact(ctx, case, d, new_contact)
    _changed(ctx, case)
    audit(ctx, case, "team.save", "；".join(f"{d.name}·{texts.S2_KINDS[d.kind][0]}" for d in depts))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S2_DEPTS_SAVED, card=table_for(ctx, case))


def _swap_contact(ctx: Ctx, case: Case, dept: Department, new: str | None) -> None:
    """The 接口人 is a member too (role 接口人); an untouched auto-added old one is removed."""
    for m in members(ctx, case):
        if m.open_id == dept.contact_open_id and m.department_id == dept.id and \
                (m.role, m.duty) == (texts.S2_CONTACT_ROLE, texts.S2_CONTACT_DUTY):
            ctx.session.delete(m)
    ctx.session.flush()
    dept.contact_open_id = new
    if new and not any(m.open_id == new for m in members(ctx, case)):
        ctx.session.add(Member(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                               department_id=dept.id, open_id=new, role=texts.S2_CONTACT_ROLE,
                               duty=texts.S2_CONTACT_DUTY))


@router.action(SAVE_MEMBER)
def save_member(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    form = event.form_value
    values = {"member": form_person(form, "member"), "dept": form_text(form, "dept"),
              "role": form_text(form, "role"), "duty": form_text(form, "duty")}
    by_id = {str(d.id): d for d in depts}
    errors = []
    if not mention(values["member"]):
        errors.append(texts.S_BAD_PERSON.format(field=texts.S2_COL_MEMBER))
    elif problem := not_member(ctx, values["member"], texts.S2_COL_MEMBER):
        errors.append(problem)
    if not values["dept"] and mention(values["member"]):  # a head or 接口人 is not asked for the department again
        known = next((d for d in depts if values["member"] in (d.contact_open_id, d.head_open_id)), None)
        values["dept"] = str(known.id) if known else ""
        if known is None:
            errors.append(texts.S2_MEMBER_DEPT_UNKNOWN.format(
                who=people.person_desc(ctx.session, case, values["member"])))
    elif values["dept"] not in by_id:
        errors.append(texts.S2_BAD_DEPT)
    for key, label, limit in (("role", texts.S2_COL_ROLE, 30), ("duty", texts.S2_COL_DUTY, 300)):
        if not values[key]:
            errors.append(texts.S_FIELD_REQUIRED.format(field=label))
        elif problem := too_long(values[key], label, limit):
            errors.append(problem)
    if errors:
        raise UserError(errors[0], card=cards.member_form(
            _fv(case, texts.S2_FORM_MEMBER, SAVE_MEMBER, values, "\n".join(errors)), _lines(depts)))
    existing = next((m for m in members(ctx, case) if m.open_id == values["member"]), None)
    if existing is None:
        ctx.session.add(Member(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                               open_id=values["member"], department_id=by_id[values["dept"]].id,
                               role=values["role"], duty=values["duty"]))
    else:
        existing.department_id, existing.role, existing.duty = by_id[values["dept"]].id, values["role"], values["duty"]
    _changed(ctx, case)
    audit(ctx, case, "team.save", f"{by_id[values['dept']].name} · {values['role']}：{values['duty']}")
    role = people.who(ctx.session, ctx.tenant_key, values["member"], values["role"])
    toast = (texts.S2_MEMBER_UPDATED if existing else texts.S2_MEMBER_SAVED).format(role=role)
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=toast, card=table_for(ctx, case))


@router.action(SAVE_ITEM)
def save_item(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, _depts = _editable(ctx, value)
    form = event.form_value
    values = {"content": form_text(form, "content"), "owner": form_person(form, "owner"),
              "due": form_text(form, "due")}
    errors = []
    if not values["content"]:
        errors.append(texts.S_FIELD_REQUIRED.format(field=texts.S2_COL_ITEM))
    elif problem := too_long(values["content"], texts.S2_COL_ITEM, 200):
        errors.append(problem)
    if not mention(values["owner"]):
        errors.append(texts.S_BAD_PERSON.format(field=texts.S2_COL_OWNER))
    elif problem := not_member(ctx, values["owner"], texts.S2_COL_OWNER):
        errors.append(problem)
    due, err = parse_day(values["due"], texts.S2_COL_DUE, today=ctx.now.astimezone(ctx.tz).date())
    if err:
        errors.append(err)
    if errors:
        raise UserError(errors[0], card=cards.item_form(
            _fv(case, texts.S2_FORM_ITEM, SAVE_ITEM, values, "\n".join(errors))))
    ctx.session.add(ActionItem(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                               content=values["content"], owner_open_id=values["owner"], due_date=due))
    _changed(ctx, case)
    audit(ctx, case, "team.save", f"{values['content']} · {due}")
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S2_ITEM_SAVED, card=table_for(ctx, case))


@router.action(SAVE_LEAD)
def save_lead(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    require_step(case, Step.TEAM)
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    new = form_person(event.form_value, "lead")
    if not mention(new):
        raise UserError(texts.S_BAD_PERSON.format(field=texts.S2_F_NEW_LEAD),
                        card=cards.lead_form(_fv(case, texts.S2_FORM_LEAD, SAVE_LEAD)))
    if problem := not_member(ctx, new, texts.S2_F_NEW_LEAD):
        raise UserError(problem, card=cards.lead_form(_fv(case, texts.S2_FORM_LEAD, SAVE_LEAD)))
    if new == case.lead_open_id:
        known = people.name(ctx.session, ctx.tenant_key, new)
        toast = texts.S2_LEAD_SAME_NAMED.format(name=known) if known else texts.S2_LEAD_SAME
        return CallbackAnswer(toast=toast, toast_type="info", card=table_for(ctx, case))
    old, case.lead_open_id = case.lead_open_id, new
    _changed(ctx, case)
    audit(ctx, case, "team.lead", f"{old} → {new}")
    ctx.send(outbox.SendText(texts.S2_LEAD_NOTICE.format(old=mention(old), new=mention(new))))
    case_card.refresh(ctx, case)
    known = people.name(ctx.session, ctx.tenant_key, new)
    toast = texts.S2_LEAD_HANDED_TO.format(name=known) if known else texts.S2_LEAD_HANDED
    return CallbackAnswer(toast=toast, card=table_for(ctx, case))


@router.action(REMOVE_MEMBER, REMOVE_ITEM)
def remove_row(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    """Take a member or an action item off the table (the button asked first)."""
    case, depts = _editable(ctx, value)
    rows = members(ctx, case) if value.action == REMOVE_MEMBER else items(ctx, case)
    row = next((r for r in rows if r.id == value.row_id), None)
    if row is None:  # a second click, or someone else removed it
        return CallbackAnswer(toast=texts.S2_ROW_GONE, toast_type="info", card=table_for(ctx, case))
    if isinstance(row, Member):
        dept = next((d for d in depts if d.contact_open_id == row.open_id and d.id == row.department_id), None)
        if dept is not None:
            raise UserError(texts.S2_CONTACT_NOT_REMOVABLE.format(
                who=people.person_desc(ctx.session, case, row.open_id), dept=dept.name))
        said, toast = f"-{row.open_id} {row.role}", texts.S2_MEMBER_REMOVED
    else:
        said, toast = f"-{row.content}", texts.S2_ITEM_REMOVED
    ctx.session.delete(row)
    _changed(ctx, case)
    audit(ctx, case, "team.save", said)
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=toast, card=table_for(ctx, case))


# ---------------------------------------------------------------- confirming
@router.action(CONFIRM, versioned=artifact_as_shown(Step.TEAM, "team", table_for))
def confirm(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    if case.step != Step.TEAM:
        return CallbackAnswer(toast=texts.S2_ALREADY_CONFIRMED, toast_type="info", card=table_for(ctx, case))
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    state = repository.artifact_state(ctx.session, case, "team")
    state.archived_at = ctx.now
    touch(ctx, case)
    audit(ctx, case, "team.confirm", texts.AUDIT_VERSION.format(version=state.version))
    ctx.session.flush()
    if event.message_id:   # the table clicked becomes the final one: pinned there, not posted again
        ctx.send(outbox.PinMessage(event.message_id))
    else:
        ctx.send(outbox.SendCard(cards.team_card(replace(team_view(ctx, case), buttons=None)), pin=True))
    ctx.send(outbox.SendText(_announcement(ctx, case)))
    try:
        transition(ctx, case, ConfirmTeam())
    except Blocked as exc:  # rolls back the confirmation and everything sent above
        raise UserError(texts.S2_NOT_READY.format(
            missing="、".join(f"{g.subject}{texts.S2_COL_CONTACT}" for g in exc.missing))) from exc
    return CallbackAnswer(toast=texts.S2_CONFIRMED, card=table_for(ctx, case))


def _announcement(ctx: Ctx, case: Case) -> str:

    names = {d.id: d.name for d in repository.departments(ctx.session, case)}
    lines, seen = [texts.S2_ANNOUNCE_HEAD], set()
    for m in members(ctx, case):
        if m.open_id in seen:
            continue
        seen.add(m.open_id)
        role = inert(m.role) + (f" / {texts.COL_LEAD}" if m.open_id == case.lead_open_id else "")
        dept = inert(names.get(m.department_id or 0, ""))
        lines.append(texts.S2_ANNOUNCE_LINE.format(who=mention(m.open_id), dept=dept,
                                                   role=role, duty=inert(m.duty)))
    if case.lead_open_id not in seen:
        lines.append(f"{mention(case.lead_open_id)} {texts.COL_LEAD}")
    return "\n".join(lines)


def _summary(ctx: Ctx, case: Case) -> str:
    depts = repository.departments(ctx.session, case)
    return texts.S2_SUMMARY.format(done=sum(1 for d in depts if d.contact_open_id), total=len(depts),
                                   members=len(members(ctx, case)), items=len(items(ctx, case)))


router.buttons(Step.TEAM, (texts.S2_BTN_OPEN, OPEN, True))
router.summary(Step.TEAM)(_summary)
router.output_card(Step.TEAM)(lambda ctx, case, _when: table_for(ctx, case))
