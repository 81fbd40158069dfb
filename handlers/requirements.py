"""Step 3 — 信息同步与需求确认 → 《需求确认清单》.

Each department's 接口人 submits 资源 / 限制 / 诉求; requirements are added (a 冲突点 names the
departments it conflicts with) and each conflict is decided by the lead (the decision fills
调整说明). Every change bumps ArtifactState('requirements').version, so confirmations (Signoff
rows, artifact 'requirements') always belong to the version they confirmed. When every
department has confirmed, the list is archived read-only and the case moves to step 4.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus, Level, SignoffStatus, parse
from bot.envelope import CardAction
from bot.models import Case, Department, DepartmentInput, Outbox, Requirement, Signoff
from bot.repository import department_inputs, requirements_of
from bot.routing import CallbackAnswer, Ctx, Router, UserError
from bot.workflow import Effect, Step
from cards import requirements as cards
from handlers import case_card, people
from handlers.common import (
    artifact_as_shown,
    audit,
    form_text,
    inert,
    load_active_case,
    local,
    mention,
    not_lead,
    open_form,
    output_buttons,
    require_step,
    signed_as,
    too_long,
    touch,
    try_advance,
)

router = Router(Step.REQUIREMENTS)

OPEN = "req.open"
VIEW = "req.view"
FORM_INPUT = "req.form_input"
FORM_ADD = "req.form_add"
FORM_RESOLVE = "req.form_resolve"
SAVE_INPUT = "req.save_input"
SAVE_ADD = "req.save_add"
SAVE_RESOLVE = "req.save_resolve"
CONFIRM = "req.confirm"
LIMIT = 500


NUDGE_KIND = "req_input_nudge"
NUDGE_AFTER = timedelta(hours=24)


@router.effect(Effect.PLAN_INPUT_NUDGE)
def _plan_input_nudge(ctx: Ctx, case: Case, _before: Step) -> None:
    outbox.enqueue(ctx.session, tenant_key=case.tenant_key, chat_id=case.chat_id, kind=NUDGE_KIND,
                   fire_key=f"{case.id}", due_at=ctx.now + NUDGE_AFTER, case_id=case.id)


# ---------------------------------------------------------------- reading
def _conflict_label(r: Requirement, names: dict[int, str]) -> str:
    return f"{names.get(r.department_id, '')}：{r.demand[:30]}"


def list_view(ctx: Ctx, case: Case) -> cards.ReqView:
    state = repository.artifact_state(ctx.session, case, "requirements")
    depts = repository.departments(ctx.session, case)
    names = {d.id: d.name for d in depts}
    given = department_inputs(ctx.session, case)
    reqs = requirements_of(ctx.session, case)
    confirmed = repository.signoffs(ctx.session, case, artifact="requirements", version=state.version)
    live = case.step == Step.REQUIREMENTS and case.status == CaseStatus.ACTIVE
    v = state.version
    buttons = cards.ReqButtons(
        input=ActionValue(FORM_INPUT, case.id, v), add=ActionValue(FORM_ADD, case.id, v),
        confirm=ActionValue(CONFIRM, case.id, v),
        resolve=ActionValue(FORM_RESOLVE, case.id, v) if any(r.is_conflict and not r.resolved_at for r in reqs)
        else None) if live else None
    return cards.ReqView(
        title=case.title, version=v,
        inputs=tuple(cards.InputLine(department=d.name, contact_open_id=d.contact_open_id,
                                     resources=given[d.id].resources if d.id in given else "",
                                     constraints=given[d.id].constraints if d.id in given else "",
                                     demands=given[d.id].demands if d.id in given else "",
                                     submitted=d.id in given) for d in depts),
        requirements=tuple(cards.ReqLine(
            department=names.get(r.department_id, ""), demand=r.demand, solution=r.solution, priority=r.priority,
            adjustment=r.adjustment, resolved=r.resolved_at is not None,
            conflict_with=tuple(names.get(int(i), "") for i in r.conflict_department_ids) if r.is_conflict else ())
            for r in reqs),
        confirms=tuple(cards.ConfirmLine(department=d.name, confirmed=d.id in confirmed,
                                         at=local(ctx, confirmed[d.id].at) if d.id in confirmed else None)
                       for d in depts),
        archived_at=None if live else local(ctx, state.archived_at), buttons=buttons)


@router.card_view("req")
def table_for(ctx: Ctx, case: Case) -> dict:
    ctx.session.flush()
    return cards.requirements_card(list_view(ctx, case))


def _changed(ctx: Ctx, case: Case) -> None:
    """The list changed: a new version to confirm (older confirmations stay with their version)."""
    state = repository.artifact_state(ctx.session, case, "requirements")
    state.version += 1
    state.archived_at = None
    touch(ctx, case)


def _fv(case: Case, title: str, submit: str, values: dict | None = None, error: str = "") -> cards.FormView:
    return cards.FormView(title=title, submit=ActionValue(submit, case_id=case.id),
                          cancel=ActionValue(VIEW, case_id=case.id), error=error, values=values or {})


def _editable(ctx: Ctx, value: ActionValue) -> tuple[Case, list[Department]]:
    case = load_active_case(ctx, value.case_id)
    require_step(case, Step.REQUIREMENTS)
    return case, repository.departments(ctx.session, case)


def _contact_of(ctx: Ctx, depts: list[Department]) -> list[Department]:
    return [d for d in depts if d.contact_open_id == ctx.actor]


def _represents(ctx: Ctx, case: Case, dept: Department) -> bool:
    return ctx.actor in (case.lead_open_id, dept.contact_open_id, dept.head_open_id)


def _contacts_desc(ctx: Ctx, depts: list[Department]) -> str:
    return "、".join(people.who(ctx.session, ctx.tenant_key, d.contact_open_id, f"{d.name}{texts.S2_COL_CONTACT}")
                    for d in depts)


def _not_dept_member(ctx: Ctx, case: Case, dept: Department) -> str:
    """Who may add a requirement for `dept`, by name when known (else today's wording)."""
    if not any(people.name(ctx.session, ctx.tenant_key, o)
               for o in (case.lead_open_id, dept.contact_open_id, dept.head_open_id)):
        return texts.S3_NOT_DEPT_MEMBER.format(dept=dept.name)
    reps = [people.who(ctx.session, ctx.tenant_key, o, f"{dept.name}{role}")
            for o, role in ((dept.contact_open_id, texts.S2_COL_CONTACT), (dept.head_open_id, texts.S2_COL_HEAD)) if o]
    who = people.who(ctx.session, ctx.tenant_key, case.lead_open_id, texts.S1_LEAD_WORD) + "、" + texts.S3_OR.join(reps)
    return texts.S3_NOT_DEPT_MEMBER_NAMED.format(who=who, dept=dept.name)


# ---------------------------------------------------------------- showing
output_buttons(router, OPEN, VIEW, table_for, "req")


@router.action(FORM_INPUT, FORM_ADD, FORM_RESOLVE)
def show_form(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    return open_form(ctx, event, _form(ctx, case, depts, value), case)


def _form(ctx: Ctx, case: Case, depts: list[Department], value: ActionValue) -> dict:
    if value.action == FORM_INPUT:
        mine = _contact_of(ctx, depts)
        if not mine:
            raise UserError(texts.S3_NOT_CONTACT.format(who=_contacts_desc(ctx, depts)))
        given = department_inputs(ctx.session, case)
        first = given.get(mine[0].id)
        values = {"dept": str(mine[0].id), "resources": first.resources, "constraints": first.constraints,
                  "demands": first.demands} if first else {}
        return cards.input_form(_fv(case, texts.S3_FORM_INPUT, SAVE_INPUT, values),
                                tuple((d.name, str(d.id)) for d in mine))
    if value.action == FORM_ADD:   # opens on the clicker's own department (接口人 first, then 负责人)
        own = _contact_of(ctx, depts) or [d for d in depts if d.head_open_id == ctx.actor]
        return cards.add_form(_fv(case, texts.S3_FORM_ADD, SAVE_ADD, {"dept": str(own[0].id)} if own else None),
                              tuple((d.name, str(d.id)) for d in depts))
    return _resolve_form(ctx, case, depts)


def _resolve_form(ctx: Ctx, case: Case, depts: list[Department], values: dict | None = None,
                  error: str = "") -> dict:
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    names = {d.id: d.name for d in depts}
    open_ = [(_conflict_label(r, names), str(r.id)) for r in requirements_of(ctx.session, case)
             if r.is_conflict and not r.resolved_at]
    if not open_:
        raise UserError(texts.S3_NO_CONFLICTS, kind="info")
    return cards.resolve_form(_fv(case, texts.S3_FORM_RESOLVE, SAVE_RESOLVE, values, error), tuple(open_))


# ---------------------------------------------------------------- saving
def _texts(form: dict, fields: tuple[tuple[str, str, bool], ...]) -> tuple[dict[str, object], list[str]]:
    values: dict[str, object] = {}
    errors = []
    for key, label, required in fields:
        values[key] = form_text(form, key)
        if required and not values[key]:
            errors.append(texts.S_FIELD_REQUIRED.format(field=label))
        elif problem := too_long(str(values[key]), label, LIMIT):
            errors.append(problem)
    return values, errors


@router.action(SAVE_INPUT)
def save_input(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    mine = {str(d.id): d for d in _contact_of(ctx, depts)}
    if not mine:
        raise UserError(texts.S3_NOT_CONTACT.format(who=_contacts_desc(ctx, depts)))
    values, errors = _texts(event.form_value, (("resources", texts.S3_COL_RESOURCES, True),
                                               ("constraints", texts.S3_COL_CONSTRAINTS, True),
                                               ("demands", texts.S3_COL_DEMANDS, True)))
    values["dept"] = form_text(event.form_value, "dept") or (next(iter(mine)) if len(mine) == 1 else "")
    if values["dept"] not in mine:
        errors.insert(0, texts.S3_NOT_CONTACT.format(who=_contacts_desc(ctx, depts)))
    if errors:
        raise UserError(errors[0], card=cards.input_form(
            _fv(case, texts.S3_FORM_INPUT, SAVE_INPUT, values, "\n".join(errors)),
            tuple((d.name, k) for k, d in mine.items())))
    dept = mine[str(values["dept"])]
    row = department_inputs(ctx.session, case).get(dept.id)
    if row is None:
        row = DepartmentInput(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                              department_id=dept.id, submitted_by=ctx.actor, submitted_at=ctx.now)
        ctx.session.add(row)
    row.resources, row.constraints, row.demands = values["resources"], values["constraints"], values["demands"]
    row.submitted_by, row.submitted_at = ctx.actor, ctx.now
    _changed(ctx, case)
    audit(ctx, case, "req.input", texts.AUDIT_REQ_INPUT.format(dept=dept.name, resources=row.resources,
                                                               constraints=row.constraints, demands=row.demands))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S3_INPUT_SAVED.format(dept=dept.name), card=table_for(ctx, case))


@router.action(SAVE_ADD)
def save_add(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    form = event.form_value
    by_id = {str(d.id): d for d in depts}
    values, errors = _texts(form, (("demand", texts.S3_COL_DEMAND, True), ("solution", texts.S3_COL_SOLUTION, False),
                                   ("adjustment", texts.S3_COL_ADJUST, False)))
    values["dept"], values["priority"] = form_text(form, "dept"), form_text(form, "priority") or Level.MID
    raw = form.get("conflict") or []
    values["conflict"] = [c for c in (raw if isinstance(raw, list) else [raw]) if isinstance(c, str)]
    dept = by_id.get(str(values["dept"]))
    if dept is None:
        errors.insert(0, texts.S2_BAD_DEPT)
    elif not _represents(ctx, case, dept):
        raise UserError(_not_dept_member(ctx, case, dept))
    if parse(Level, values["priority"]) is None:
        errors.append(texts.S3_BAD_PRIORITY)
    others = values["conflict"]
    if any(c not in by_id or c == values["dept"] for c in others):
        errors.append(texts.S3_BAD_CONFLICT_DEPT)
    if errors or dept is None:
        view = _fv(case, texts.S3_FORM_ADD, SAVE_ADD, values, "\n".join(errors))
        raise UserError(errors[0], card=cards.add_form(view,
                                                       tuple((d.name, str(d.id)) for d in depts)))
    ctx.session.add(Requirement(
        tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, department_id=dept.id,
        demand=values["demand"], solution=values["solution"], priority=Level(values["priority"]),
        adjustment=values["adjustment"], is_conflict=bool(others), conflict_department_ids=[int(c) for c in others],
        created_by=ctx.actor, created_at=ctx.now))
    _changed(ctx, case)
    conflict = "、".join(by_id[c].name for c in others)
    audit(ctx, case, "req.add",
          f"{dept.name}：{values['demand']}" + (texts.AUDIT_REQ_CONFLICT.format(with_=conflict) if conflict else ""))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S3_REQ_SAVED, card=table_for(ctx, case))


@router.action(SAVE_RESOLVE)
def save_resolve(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case, depts = _editable(ctx, value)
    if ctx.actor != case.lead_open_id:
        raise not_lead(ctx, case)
    values, errors = _texts(event.form_value, (("decision", texts.S3_F_DECISION.rstrip(" *"), True),))
    values["req"] = form_text(event.form_value, "req")
    target = next((r for r in requirements_of(ctx.session, case)
                   if str(r.id) == values["req"] and r.is_conflict and not r.resolved_at), None)
    if target is None:
        errors.insert(0, texts.S3_BAD_CONFLICT)
    if errors or target is None:
        raise UserError(errors[0], card=_resolve_form(ctx, case, depts, values, "\n".join(errors)))
    target.adjustment = str(values["decision"])
    target.resolved_by, target.resolved_at = ctx.actor, ctx.now
    _changed(ctx, case)
    audit(ctx, case, "req.resolve", f"{target.demand[:40]} → {target.adjustment}")
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S3_RESOLVED, card=table_for(ctx, case))


# ---------------------------------------------------------------- confirming
@router.action(CONFIRM, versioned=artifact_as_shown(Step.REQUIREMENTS, "requirements", table_for))
def confirm(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    if case.step != Step.REQUIREMENTS:
        return CallbackAnswer(toast=texts.S3_ARCHIVED, toast_type="info", card=table_for(ctx, case))
    state = repository.artifact_state(ctx.session, case, "requirements")
    depts = repository.departments(ctx.session, case)
    mine = [d for d in depts if ctx.actor in (d.contact_open_id, d.head_open_id)]
    if not mine:
        raise UserError(texts.S3_ONLY_CONTACT_OR_HEAD.format(who="、".join(
            people.who(ctx.session, ctx.tenant_key, d.contact_open_id, f"{d.name}{texts.S2_COL_CONTACT}") + "/"
            + people.who(ctx.session, ctx.tenant_key, d.head_open_id, texts.S2_COL_HEAD) for d in depts)))
    f = repository.facts(ctx.session, case)
    what = f"{texts.S3_COL_RESOURCES}/{texts.S3_COL_CONSTRAINTS}/{texts.S3_COL_DEMANDS}"
    gaps = tuple(f"{n}{what}" for n in f.inputs_missing)
    gaps += (texts.S3_NO_REQS,) if not f.requirements_count else ()
    gaps += tuple(f"{texts.S3_COL_CONFLICT}「{c}」" for c in f.unresolved_conflicts)
    if gaps:
        raise UserError(texts.S3_NOT_READY.format(missing="、".join(gaps)))
    done = repository.signoffs(ctx.session, case, artifact="requirements", version=state.version)
    todo = [d for d in mine if d.id not in done]
    names = "、".join(d.name for d in (todo or mine))
    confirmer = signed_as(ctx, todo or mine)
    if not todo:  # a double click, or a case sent back to step 3 with everything confirmed
        if try_advance(ctx, case):
            state.archived_at = ctx.now
            return CallbackAnswer(toast=texts.S3_CONFIRMED.format(depts=confirmer), card=table_for(ctx, case))
        return CallbackAnswer(toast=texts.S3_ALREADY_CONFIRMED.format(depts=names, version=state.version),
                              toast_type="info", card=table_for(ctx, case))
    for d in todo:
        ctx.session.add(Signoff(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                artifact="requirements", artifact_version=state.version, department_id=d.id,
                                status=SignoffStatus.SIGNED, actor_open_id=ctx.actor, at=ctx.now))
    touch(ctx, case)
    audit(ctx, case, "req.confirm", f"{names} · " + texts.AUDIT_VERSION.format(version=state.version))
    if try_advance(ctx, case):
        state.archived_at = ctx.now
        outbox.cancel(ctx.session, tenant_key=case.tenant_key, chat_id=case.chat_id, kind=NUDGE_KIND,
                      case_id=case.id)
    else:
        case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S3_CONFIRMED.format(depts=confirmer), card=table_for(ctx, case))


# ---------------------------------------------------------------- the one reminder
def render_nudge(session: Session, row: Outbox, _now: datetime, _policy: object) -> list[outbox.Op] | None:
    """At delivery time: who still has not submitted 资源/限制/诉求 (None if nobody)."""
    case = session.scalar(select(Case).where(Case.id == row.case_id, Case.tenant_key == row.tenant_key,
                                             Case.chat_id == row.chat_id))
    if case is None or case.status != CaseStatus.ACTIVE or case.step != Step.REQUIREMENTS:
        return None
    given = department_inputs(session, case)
    missing = [d for d in repository.departments(session, case) if d.id not in given]
    if not missing:
        return None
    lines = [texts.S3_NUDGE] + [texts.S3_NUDGE_LINE.format(who=mention(d.contact_open_id or d.head_open_id),
                                                           dept=inert(d.name)) for d in missing]
    return [outbox.SendText("\n".join(lines))]


router.renderer(NUDGE_KIND)(render_nudge)


def _summary(ctx: Ctx, case: Case) -> str:
    state = repository.artifact_state(ctx.session, case, "requirements")
    depts = repository.departments(ctx.session, case)
    reqs = requirements_of(ctx.session, case)
    return texts.S3_SUMMARY.format(
        inputs=len(department_inputs(ctx.session, case)), total=len(depts), reqs=len(reqs),
        conflicts=sum(1 for r in reqs if r.is_conflict and not r.resolved_at),
        confirmed=len(repository.signoffs(ctx.session, case, artifact="requirements", version=state.version)))


router.buttons(Step.REQUIREMENTS, (texts.S3_BTN_OPEN, OPEN, True))
router.summary(Step.REQUIREMENTS)(_summary)
router.output_card(Step.REQUIREMENTS)(lambda ctx, case, _when: table_for(ctx, case))
