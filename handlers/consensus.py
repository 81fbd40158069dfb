"""Step 1 — 精准定位问题，明确共同目标 → 《问题共识表》.

`/问题 [标题]` opens the group's case (one active case per group) and posts the case card and
the step-1 form. Every content change is a new ConsensusVersion; signatures and objections are
Signoff rows bound to (version, department), so an edit never carries a signature over and old
signatures stay tied to the version they signed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus, DeptKind, SignoffStatus
from bot.envelope import CardAction, MessageEvent
from bot.ids import is_open_id
from bot.models import Case, ConsensusVersion, Department, Signoff
from bot.routing import CallbackAnswer, Ctx, Router, UserError, Versioned
from bot.workflow import Step
from cards import consensus as cards
from cards import kit
from handlers import case_card, templates
from handlers.common import (
    audit,
    form_person,
    form_text,
    heads_of,
    inert,
    load_active_case,
    local,
    mention,
    not_member,
    open_case,
    open_form,
    output_buttons,
    parse_day,
    require_lead_or_head,
    require_step,
    signed_as,
    too_long,
    touch,
    try_advance,
)

router = Router(Step.CONSENSUS)

OPEN = "consensus.open"
SUBMIT = "consensus.submit"
EDIT = "consensus.edit"
VIEW = "consensus.view"
SIGN = "consensus.sign"
OBJECT = "consensus.object"

_AMOUNT = re.compile(r"[0-9０-９一二两三四五六七八九十百千万]")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
LIMITS = {"title": 60, "background": 500, "current_state": 500, "impact": 500, "goal": 300,
          "expected_outcome": 500}
REQUIRED = ("background", "current_state", "impact", "goal", "expected_outcome")


# ---------------------------------------------------------------- the form
@dataclass(frozen=True)
class Parsed:
    title: str
    background: str
    current_state: str
    impact: str
    goal: str
    goal_date: date
    expected_outcome: str
    departments: tuple[tuple[str, str], ...]


def parse_form(ctx: Ctx, form: dict, keep_date: date | None) -> tuple[dict[str, str], Parsed | None, list[str]]:
    """Server-side validation. Returns (what the user typed, the parsed content or None, errors)."""
    values = {k: form_text(form, k) for k in cards.TEXT_FIELDS}
    values["goal_date"] = form_text(form, "goal_date")
    errors: list[str] = []
    for key in REQUIRED:
        if not values[key]:
            errors.append(texts.S_FIELD_REQUIRED.format(field=texts.S1_FIELD_NAMES[key]))
    for key, limit in LIMITS.items():
        if problem := too_long(values[key], texts.S1_FIELD_NAMES[key], limit):
            errors.append(problem)
    if values["impact"] and not _AMOUNT.search(values["impact"]):
        errors.append(texts.S1_IMPACT_NEEDS_AMOUNT)
    day, err = parse_day(values["goal_date"], texts.S1_FIELD_NAMES["goal_date"],
                         today=ctx.now.astimezone(ctx.tz).date(), keep=keep_date)
    if err:
        errors.append(err)
    depts: list[tuple[str, str]] = []
    row_errors = len(errors)
    for n in range(1, cards.MAX_DEPTS + 1):
        name_f, head_f = cards.dept_fields(n)
        name, head = form_text(form, name_f), form_person(form, head_f)
        values[name_f], values[head_f] = name, head
        if not name and not head:
            continue
        if head and not is_open_id(head):
            errors.append(texts.S_BAD_PERSON.format(field=texts.S1_F_DEPT_NAME.format(n=n)))
        elif not name:
            errors.append(texts.S1_DEPT_ROW_NO_NAME.format(n=n))
        elif not head:
            errors.append(texts.S1_DEPT_ROW_NO_HEAD.format(n=n, name=name))
        elif len(name) > 20:
            errors.append(texts.S1_DEPT_NAME_TOO_LONG.format(n=n))
        elif problem := not_member(ctx, head, texts.S1_F_DEPT_NAME.format(n=n)):
            errors.append(problem)
        elif any(name == other for other, _ in depts):
            errors.append(texts.S1_DEPT_DUPLICATE.format(name=name))
        else:
            depts.append((name, head))
    if len(depts) < 2 and len(errors) == row_errors:
        errors.append(texts.S1_DEPT_TOO_FEW.format(count=len(depts)))
    if errors or day is None:
        return values, None, errors
    return values, Parsed(title=values["title"], background=values["background"],
                          current_state=values["current_state"], impact=values["impact"], goal=values["goal"],
                          goal_date=day, expected_outcome=values["expected_outcome"],
                          departments=tuple(depts)), []


def version_values(cv: ConsensusVersion, title: str) -> dict[str, str]:
    values = {"title": title, "background": cv.background, "current_state": cv.current_state,
              "impact": cv.impact, "goal": cv.goal, "expected_outcome": cv.expected_outcome,
              "goal_date": cv.goal_date.isoformat() if cv.goal_date else ""}
    for n, dept in enumerate(cv.departments, start=1):
        name_f, head_f = cards.dept_fields(n)
        values[name_f], values[head_f] = dept["name"], dept["head"]
    return values


def form_for(case: Case, values: dict[str, str], base_version: int, error: str = "",
             rows: int = cards.MIN_ROWS) -> dict:
    editing = base_version > 0
    return cards.form_card(cards.FormView(
        title=texts.S1_FORM_EDIT_TITLE if editing else texts.S1_FORM_TITLE,
        submit=ActionValue(SUBMIT, case_id=case.id, version=base_version),
        cancel=ActionValue(VIEW, case_id=case.id) if editing else None, values=values, error=error, rows=rows))


# ---------------------------------------------------------------- the table
def table_for(ctx: Ctx, case: Case) -> dict:
    cv = repository.current_consensus(ctx.session, case)
    if cv is None:
        return form_for(case, {"title": case.title}, 0)
    depts = repository.departments(ctx.session, case)
    signs = repository.signoffs(ctx.session, case, artifact="consensus", version=cv.version)
    rows = []
    for d in depts:
        s = signs.get(d.id)
        rows.append(cards.SignRow(department=d.name, head_open_id=d.head_open_id,
                                  status=s.status if s else "pending", at=local(ctx, s.at) if s else None,
                                  reason=(s.reason or "") if s else ""))
    agreed = bool(rows) and all(r.status == SignoffStatus.SIGNED for r in rows)
    live = case.step == Step.CONSENSUS and case.status == CaseStatus.ACTIVE
    return cards.table_card(cards.TableView(
        title=case.title, version=cv.version, background=cv.background, current_state=cv.current_state,
        impact=cv.impact, goal=cv.goal, goal_date=cv.goal_date, expected_outcome=cv.expected_outcome,
        rows=tuple(rows), change_summary=cv.change_summary, agreed=agreed,
        sign=ActionValue(SIGN, case_id=case.id, version=cv.version) if live else None,
        edit=ActionValue(EDIT, case_id=case.id, version=cv.version) if live else None,
        object_submit=ActionValue(OBJECT, case_id=case.id, version=cv.version) if live else None))


def _changes(cv: ConsensusVersion | None, p: Parsed, title: str) -> str:
    if cv is None:
        return ""
    old = version_values(cv, title)
    changed = [texts.S1_FIELD_NAMES["title"]] if p.title and p.title != title else []
    changed += [texts.S1_FIELD_NAMES[k] for k in REQUIRED if old[k] != getattr(p, k)]
    if cv.goal_date != p.goal_date:
        changed.append(texts.S1_FIELD_NAMES["goal_date"])
    if [(d["name"], d["head"]) for d in cv.departments] != list(p.departments):
        changed.append(texts.S1_FIELD_NAMES["departments"])
    return "、".join(changed)


def _sync_departments(ctx: Ctx, case: Case, wanted: tuple[tuple[str, str], ...]) -> None:
    existing = {d.name: d for d in repository.departments(ctx.session, case, active_only=False)}
    for position, (name, head) in enumerate(wanted):
        dept = existing.pop(name, None)
        if dept is None:
            ctx.session.add(Department(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                       name=name, head_open_id=head, position=position,
                                       kind=DeptKind.UNSET))  # 核心/支持 is asked in step 2
        else:
            dept.head_open_id, dept.position, dept.active = head, position, True
    for dept in existing.values():
        dept.active = False  # kept: its old signatures still point at it


# ---------------------------------------------------------------- commands and actions
@router.command(texts.CMD_NEW)
def new_case(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    repository.ensure_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, now=ctx.now)
    active = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if active is not None:
        raise UserError(texts.ALREADY_ACTIVE_CASE.format(title=active.title, seq=active.seq))
    prefill, args = _template_prefix(ctx, args)  # `/问题 模板:名称 标题` (handlers.templates)
    title = args.strip()
    if len(title) > LIMITS["title"]:  # refused with the limit named, never cut silently
        raise UserError(texts.S1_TITLE_TOO_LONG.format(limit=LIMITS["title"], n=len(title)))
    case = open_case(ctx, title or texts.S1_UNTITLED)
    # the case card comes with the submitted 《问题共识表》 (it asks the heads to sign): until then
    # the opener's form is all the group needs to see
    values = {"title": title}
    if prefill:
        case.template_id = prefill["template_id"]
        for n, dept in enumerate(prefill["departments"][:cards.MAX_DEPTS], start=1):
            name_f, head_f = cards.dept_fields(n)
            values[name_f] = dept["name"]
            if is_open_id(str(dept.get("head") or "")) and not_member(ctx, dept["head"], name_f) is None:
                values[head_f] = dept["head"]  # the head last time, pre-selected: a suggestion to check
    # the opener's own form, in the group: submitting it turns it into the 《问题共识表》 everyone signs
    ctx.send(outbox.SendCard(form_for(case, values, 0), view="consensus", case_id=case.id))
    ctx.send(outbox.SyncMembers())  # names for toasts and exports


def _template_prefix(ctx: Ctx, args: str) -> tuple[dict | None, str]:
    text = args.strip()
    if not text.startswith(texts.TEMPLATE_PREFIXES):
        return None, args
    name, _, rest = text[3:].strip().partition(" ")
    prefill = templates.template_prefill(ctx.session, ctx.tenant_key, name, ctx.now)
    if prefill is None:
        raise UserError(texts.TEMPLATE_NOT_FOUND.format(name=name.strip("《》")))
    return prefill, rest


output_buttons(router, OPEN, VIEW, table_for, "consensus")


@router.card_view("consensus")
def _table_view(ctx: Ctx, case: Case) -> dict | None:
    """None while the step-1 form is still being filled: it is not redrawn under its author."""
    return table_for(ctx, case) if repository.current_consensus(ctx.session, case) else None


# Signing, objecting and editing act on the version of the table the card showed.
TABLE = Versioned(step=Step.CONSENSUS,
                  current=lambda s, case, _v: getattr(repository.current_consensus(s, case), "version", 0),
                  card=lambda ctx, case, _v: table_for(ctx, case))


@router.action(EDIT, versioned=TABLE)
def edit(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    require_step(case, Step.CONSENSUS)
    cv = repository.current_consensus(ctx.session, case)
    require_lead_or_head(ctx, case, repository.departments(ctx.session, case))
    if cv is None:
        return open_form(ctx, event, form_for(case, {"title": case.title}, 0), case)
    return open_form(ctx, event, form_for(case, version_values(cv, case.title), cv.version), case)


@router.action(SUBMIT)
def submit(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    require_step(case, Step.CONSENSUS)
    cv = repository.current_consensus(ctx.session, case)
    depts = repository.departments(ctx.session, case) if cv else []
    require_lead_or_head(ctx, case, depts)
    values, parsed, errors = parse_form(ctx, event.form_value, cv.goal_date if cv else None)
    current = cv.version if cv else 0
    if event.form_value.get(cards.MORE_FIELD) in (True, "true"):  # more rows first: nothing saved, nothing lost
        rows = min(cards.MAX_DEPTS, (value.row_id or cards.MIN_ROWS) + 2)
        return CallbackAnswer(toast=texts.S1_ROWS_ADDED, toast_type="info",
                              card=form_for(case, values, value.version or 0, rows=rows))
    if errors or parsed is None:
        message = errors[0] if len(errors) == 1 else texts.S1_ERRORS.format(count=len(errors), first=errors[0])
        raise UserError(message, card=form_for(case, values, value.version or 0, "\n".join(errors)))
    if (value.version or 0) != current:
        msg = texts.S_STALE_FORM.format(version=current)
        raise UserError(msg, card=form_for(case, values, current, msg), kind="warning")
    changes = _changes(cv, parsed, case.title)
    if cv is not None and not changes:
        return CallbackAnswer(toast=texts.S1_NO_CHANGE, toast_type="info", card=table_for(ctx, case))
    return _save(ctx, case, cv, parsed, changes)


def _save(ctx: Ctx, case: Case, cv: ConsensusVersion | None, p: Parsed, changes: str) -> CallbackAnswer:
    version = (cv.version if cv else 0) + 1
    had_signs = bool(cv and repository.signoffs(ctx.session, case, artifact="consensus", version=cv.version))
    ctx.session.add(ConsensusVersion(
        tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, version=version,
        background=p.background, current_state=p.current_state, impact=p.impact, goal=p.goal,
        goal_date=p.goal_date, expected_outcome=p.expected_outcome,
        departments=[{"name": n, "head": h} for n, h in p.departments], change_summary=changes,
        created_by=ctx.actor, created_at=ctx.now))
    if p.title:
        case.title = p.title
    _sync_departments(ctx, case, p.departments)
    touch(ctx, case)
    audit(ctx, case, "consensus.edit" if cv else "consensus.submit",
          texts.AUDIT_VERSION.format(version=version) + (f"：{changes}" if changes else ""))
    heads = " ".join(dict.fromkeys(mention(h) for _, h in p.departments))
    if cv is None and not case.card_message_id:
        pass   # the case card, sent now for the first time, @-mentions the heads who are to sign
    elif cv is None:
        ctx.send(outbox.SendText(texts.S1_SUBMITTED_NOTICE.format(version=version, heads=heads)))
    else:
        ctx.send(outbox.SendText(texts.S1_EDITED_NOTICE.format(version=version, changes=changes, heads=heads)))
    case_card.refresh(ctx, case)
    toast = texts.S1_EDITED.format(version=version) if had_signs else texts.S1_SUBMITTED.format(version=version)
    return CallbackAnswer(toast=toast, card=table_for(ctx, case))


def _my_departments(ctx: Ctx, case: Case, value: ActionValue) -> tuple[ConsensusVersion, list[Department],
                                                                         dict[int, Signoff]] | CallbackAnswer:
    """Common checks of sign/object: current version, the actor heads a department."""
    cv = repository.current_consensus(ctx.session, case)
    if cv is None:
        raise UserError(texts.S1_NOT_SUBMITTED)
    if case.step != Step.CONSENSUS:
        return CallbackAnswer(toast=texts.S1_ALREADY_AGREED, toast_type="info", card=table_for(ctx, case))
    depts = repository.departments(ctx.session, case)
    mine = [d for d in depts if d.head_open_id == ctx.actor]
    if not mine:
        raise UserError(texts.S1_ONLY_HEAD.format(who=heads_of(ctx, depts)))
    return cv, mine, repository.signoffs(ctx.session, case, artifact="consensus", version=cv.version)


def _record(ctx: Ctx, case: Case, cv: ConsensusVersion, dept: Department, existing: Signoff | None,
            status: SignoffStatus, reason: str | None) -> None:
    if existing is None:
        ctx.session.add(Signoff(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                artifact="consensus", artifact_version=cv.version, department_id=dept.id,
                                status=status, reason=reason, actor_open_id=ctx.actor, at=ctx.now))
    else:
        existing.status, existing.reason, existing.actor_open_id, existing.at = status, reason, ctx.actor, ctx.now


@router.action(SIGN, versioned=TABLE)
def sign(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    checked = _my_departments(ctx, case, value)
    if isinstance(checked, CallbackAnswer):
        return checked
    cv, mine, signs = checked
    todo = [d for d in mine if d.id not in signs or signs[d.id].status != SignoffStatus.SIGNED]
    names = "、".join(d.name for d in (todo or mine))
    signer = signed_as(ctx, todo or mine)
    if not todo:  # a double click, or a case sent back to step 1 with everything signed
        if try_advance(ctx, case):
            return CallbackAnswer(toast=texts.S1_SIGNED_AGREED.format(depts=signer), card=table_for(ctx, case))
        return CallbackAnswer(toast=texts.S1_ALREADY_SIGNED.format(depts=names, version=cv.version),
                              toast_type="info", card=table_for(ctx, case))
    for dept in todo:
        _record(ctx, case, cv, dept, signs.get(dept.id), SignoffStatus.SIGNED, None)
    touch(ctx, case)
    audit(ctx, case, "consensus.sign", f"{names} · " + texts.AUDIT_VERSION.format(version=cv.version))
    if try_advance(ctx, case):
        return CallbackAnswer(toast=texts.S1_SIGNED_AGREED.format(depts=signer), card=table_for(ctx, case))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S1_SIGNED.format(depts=signer), card=table_for(ctx, case))


@router.action(OBJECT, versioned=TABLE)
def object_(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_active_case(ctx, value.case_id)
    checked = _my_departments(ctx, case, value)
    if isinstance(checked, CallbackAnswer):
        return checked
    cv, mine, signs = checked
    reason = form_text(event.form_value, "reason")
    if not reason:
        raise UserError(texts.S_FIELD_REQUIRED.format(field=texts.S1_FIELD_NAMES["reason"]))
    if problem := too_long(reason, texts.S1_FIELD_NAMES["reason"], 300):
        raise UserError(problem)
    for dept in mine:
        _record(ctx, case, cv, dept, signs.get(dept.id), SignoffStatus.OBJECTED, reason)
    touch(ctx, case)
    names = "、".join(d.name for d in mine)
    audit(ctx, case, "consensus.object", f"{names} · " + texts.AUDIT_VERSION.format(version=cv.version) + f"：{reason}")
    ctx.send(outbox.SendText(texts.S1_OBJECTION_NOTICE.format(
        who=mention(ctx.actor), depts=names, version=cv.version, reason=inert(reason),
        lead=mention(case.lead_open_id))))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.S1_OBJECTED.format(depts=signed_as(ctx, mine)), toast_type="warning",
                          card=table_for(ctx, case))


def _summary(ctx: Ctx, case: Case) -> str:
    cv = repository.current_consensus(ctx.session, case)
    if cv is None:
        return ""
    depts = repository.departments(ctx.session, case)
    signs = repository.signoffs(ctx.session, case, artifact="consensus", version=cv.version)
    signed = sum(1 for d in depts if d.id in signs and signs[d.id].status == SignoffStatus.SIGNED)
    summary = texts.S1_SUMMARY.format(version=cv.version, signed=signed, total=len(depts))
    waiting = list(dict.fromkeys(d.head_open_id for d in depts if d.head_open_id
                                 and not (d.id in signs and signs[d.id].status == SignoffStatus.SIGNED)))
    if waiting:   # who must act, by name (a new case card notifies them)
        summary += "\n" + texts.S1_PLEASE_SIGN.format(heads=" ".join(kit.at(h) for h in waiting))
    return summary


router.buttons(Step.CONSENSUS, (texts.S1_BTN_OPEN, OPEN, True))
router.summary(Step.CONSENSUS)(_summary)
router.output_card(Step.CONSENSUS)(lambda ctx, case, _when: table_for(ctx, case))
