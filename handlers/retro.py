"""Step 6 — 复盘优化与成果固化 → 《复盘总结报告》.

Members add 成果 / 成功经验 / 不足之处 / 改进方向 (several each); the lead finalises: the report
is built from the case's own history too (baseline vs actual per task, on-time rate, plan
changes and reasons, days per step from StepLog, how long sign-offs took), posted as a card,
exportable as Markdown (/导出 6), and the case is closed read-only. The lead can then save the
case as an SOP template (handlers.templates)."""
from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus, ChangeStatus, RetroKind, SignoffStatus, parse
from bot.durations import span
from bot.envelope import CardAction
from bot.models import Case, ChangeRequest, ConsensusVersion, RetroEntry, Signoff, StepLog
from bot.repository import nodes_of, tasks_of, team_open_ids
from bot.routing import CallbackAnswer, Ctx, Router, UserError, Versioned
from bot.workflow import Blocked, Finalise, Step
from cards.retro import (
    ChangeRow,
    Entry,
    PlanActualRow,
    ReportView,
    RetroActions,
    RetroView,
    add_field,
    rate,
    report_card,
    retro_card,
    retro_form,
)
from handlers import people, templates
from handlers.common import (
    audit,
    first_too_long,
    fmt,
    load_case,
    md_table,
    open_form,
    require_step,
    send_private_form,
    transition,
)
from handlers.tasks import baseline
from handlers.views import Bar, timeline

router = Router(Step.RETRO)

RETRO_OPEN = "retro.open"
RETRO_FILL = "retro.fill"      # the shared card's 「填写复盘」: the form, for the clicker only
RETRO_ADD = "retro.add"
RETRO_FINALISE = "retro.finalise"
RETRO_EDIT = "retro.edit"        # row_id = entry: edit it in the form; no row: back to adding
RETRO_DELETE = "retro.delete"    # row_id = entry
TEMPLATE_SAVE = "template.save"


# ---------------------------------------------------------------- collection
def _entries(session: Session, case: Case) -> tuple[Entry, ...]:
    return tuple(Entry(kind=e.kind, content=e.content, author=e.author_open_id, entry_id=e.id)
                 for e in repository.retro_entries(session, case))


def _view_of(session: Session, case: Case, typed: dict[str, str] | None = None,
                editing: RetroEntry | None = None) -> RetroView:
    """While the case is in step 6 members fill in privately and authors edit or delete their entries."""
    entries = _entries(session, case)
    wrote = {e.author for e in entries}
    missing = tuple(sorted(o for o in team_open_ids(session, case) if o not in wrote))
    open_ = case.step == Step.RETRO and case.status == CaseStatus.ACTIVE
    ed = next((e for e in entries if editing is not None and e.entry_id == editing.id), None)
    return RetroView(title=case.title, entries=entries, missing=missing,
                     submit=ActionValue(RETRO_ADD, case_id=case.id),
                     finalise=ActionValue(RETRO_FINALISE, case_id=case.id, version=len(entries)),
                     typed=typed or {},
                     actions=RetroActions(edit=RETRO_EDIT, delete=RETRO_DELETE) if open_ else None,
                     editing=ed if open_ else None,
                     fill=ActionValue(RETRO_FILL, case_id=case.id) if open_ else None)


def retro_card_for(session: Session, case: Case) -> dict:
    """The collection card the group shares (no form in it)."""
    return retro_card(_view_of(session, case))


def retro_form_for(session: Session, case: Case, typed: dict[str, str] | None = None,
                   editing: RetroEntry | None = None) -> dict:
    """One member's private form (what they typed is kept when it is refused)."""
    return retro_form(_view_of(session, case, typed, editing))


def _member_case(ctx: Ctx, value: ActionValue) -> Case:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.RETRO)
    if ctx.actor not in team_open_ids(ctx.session, case):
        raise UserError(texts.NOT_TEAM_MEMBER)
    return case


@router.action(RETRO_OPEN)
def open_retro(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.RETRO)
    ctx.send(outbox.SendCard(retro_card_for(ctx.session, case), view="retro", case_id=case.id))
    if case.status == CaseStatus.ACTIVE and ctx.actor in team_open_ids(ctx.session, case):  # a member came to write
        send_private_form(ctx, retro_form_for(ctx.session, case), case)
        return CallbackAnswer(toast=texts.FORM_OPENED_PRIVATELY, toast_type="info")
    return CallbackAnswer(toast=texts.BTN_OPEN_RETRO)


@router.action(RETRO_FILL)
def fill_retro(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _member_case(ctx, value)
    return open_form(ctx, event, retro_form_for(ctx.session, case), case)


@router.card_view("retro")
def _retro_view(ctx: Ctx, case: Case) -> dict:
    return retro_card_for(ctx.session, case)


RETRO_LIMIT = 1000


def _read_entry(ctx: Ctx, case: Case, form: dict, editing: RetroEntry | None) -> dict[str, str]:
    """{"kind": a RetroKind, "content"}; refuses (re-showing what was typed) an unknown kind or no text."""
    typed = {"kind": str(form.get("kind") or "").strip(), "content": str(form.get("content") or "").strip()}
    kind = parse(RetroKind, typed["kind"])
    problem = (texts.RETRO_BAD_KIND if kind is None else
               texts.RETRO_NEED_CONTENT if not typed["content"] else
               first_too_long(typed, {"content": (texts.FIELD_RETRO_CONTENT, RETRO_LIMIT)}))
    if problem:
        shown = typed if editing is not None else {add_field(kind or RetroKind.OUTCOME): typed["content"]}
        raise UserError(problem, card=retro_form_for(ctx.session, case, shown, editing))  # the form keeps it
    return {"kind": kind, "content": typed["content"]}


def _said(kind: RetroKind, content: str) -> str:
    """An entry as the audit log shows it: 成功经验：每日站会……"""
    return f"{texts.RETRO_KIND_LABELS[kind]}：{content[:100]}"


def _own_entry(ctx: Ctx, case: Case, entry_id: int | None) -> RetroEntry | None:
    """The entry if it exists; refuses anyone but its author (toast naming who may)."""
    entry = ctx.session.scalar(select(RetroEntry).where(
        RetroEntry.id == (entry_id or 0), RetroEntry.case_id == case.id, RetroEntry.tenant_key == case.tenant_key,
        RetroEntry.chat_id == case.chat_id))
    if entry is not None and entry.author_open_id != ctx.actor:
        raise UserError(texts.RETRO_NOT_AUTHOR.format(who=people.person_desc(ctx.session, case, entry.author_open_id)))
    return entry


@router.action(RETRO_ADD)
def add_entry(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    """Add an entry, or (row_id) save the author's edit of one."""
    case = _member_case(ctx, value)
    form = event.form_value or {}
    if value.row_id:
        return _save_edit(ctx, case, value.row_id, form)
    if any(isinstance(k, str) and k.startswith("add_") for k in form):
        return _add_many(ctx, case, form)
    typed = _read_entry(ctx, case, form, None)
    exists = ctx.session.scalar(select(RetroEntry.id).where(
        RetroEntry.case_id == case.id, RetroEntry.tenant_key == case.tenant_key, RetroEntry.chat_id == case.chat_id,
        RetroEntry.author_open_id == ctx.actor, RetroEntry.kind == typed["kind"],
        RetroEntry.content == typed["content"]))
    if exists:
        return CallbackAnswer(toast=texts.RETRO_DUPLICATE, toast_type="info", card=retro_card_for(ctx.session, case))
    ctx.session.add(RetroEntry(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                               author_open_id=ctx.actor, kind=typed["kind"], content=typed["content"],
                               created_at=ctx.now))
    audit(ctx, case, "retro.entry", _said(typed["kind"], typed["content"]))
    ctx.session.flush()
    return CallbackAnswer(toast=texts.RETRO_ADDED.format(kind=texts.RETRO_KIND_LABELS[typed["kind"]]),
                          card=retro_card_for(ctx.session, case))


MAX_ENTRIES_PER_SUBMIT = 30


def _read_lines(ctx: Ctx, case: Case, form: dict) -> list[tuple[RetroKind, str]]:
    """Every non-empty line of every kind's box, in the form's order; refuses (re-showing what
    was typed) a form with nothing in it, an over-long line or too many lines at once."""
    typed = {add_field(k): str(form.get(add_field(k)) or "") for k in RetroKind}
    lines: list[tuple[RetroKind, str]] = []
    problem = ""
    for kind in RetroKind:
        for n, raw in enumerate(typed[add_field(kind)].splitlines(), start=1):
            line = raw.strip()
            if len(line) > RETRO_LIMIT and not problem:
                problem = texts.RETRO_LINE_TOO_LONG.format(kind=texts.RETRO_KIND_LABELS[kind], n=n,
                                                          length=len(line), limit=RETRO_LIMIT)
            if line:
                lines.append((kind, line))
    if not problem and not lines:
        problem = texts.RETRO_NEED_CONTENT
    if not problem and len(lines) > MAX_ENTRIES_PER_SUBMIT:
        problem = texts.RETRO_MULTI_TOO_MANY.format(n=MAX_ENTRIES_PER_SUBMIT)
    if problem:
        raise UserError(problem, card=retro_form_for(ctx.session, case, typed))
    return list(dict.fromkeys(lines))  # the same line twice in one submit is one entry


def _add_many(ctx: Ctx, case: Case, form: dict) -> CallbackAnswer:
    lines = _read_lines(ctx, case, form)
    have = {(k, c) for k, c in ctx.session.execute(select(RetroEntry.kind, RetroEntry.content).where(
        RetroEntry.case_id == case.id, RetroEntry.tenant_key == case.tenant_key, RetroEntry.chat_id == case.chat_id,
        RetroEntry.author_open_id == ctx.actor))}
    new = [(k, c) for k, c in lines if (k, c) not in have]
    if not new:  # a double submit adds nothing twice
        return CallbackAnswer(toast=texts.RETRO_DUPLICATE, toast_type="info", card=retro_card_for(ctx.session, case))
    for kind, content in new:
        ctx.session.add(RetroEntry(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                   author_open_id=ctx.actor, kind=kind, content=content, created_at=ctx.now))
        audit(ctx, case, "retro.entry", _said(kind, content))
    ctx.session.flush()
    counts = {k: sum(1 for kk, _ in new if kk == k) for k in RetroKind}
    kinds = " · ".join(texts.RETRO_MULTI_KIND_COUNT.format(kind=texts.RETRO_KIND_LABELS[k], n=n)
                       for k, n in counts.items() if n)
    return CallbackAnswer(toast=texts.RETRO_MULTI_ADDED.format(n=len(new), kinds=kinds),
                          card=retro_card_for(ctx.session, case))


def _save_edit(ctx: Ctx, case: Case, entry_id: int, form: dict) -> CallbackAnswer:
    entry = _own_entry(ctx, case, entry_id)
    if entry is None:
        raise UserError(texts.RETRO_ENTRY_GONE, card=retro_form_for(ctx.session, case), kind="info")
    typed = _read_entry(ctx, case, form, entry)
    if (entry.kind, entry.content) == (typed["kind"], typed["content"]):  # a double submit saves once
        return CallbackAnswer(toast=texts.RETRO_UNCHANGED, toast_type="info", card=retro_card_for(ctx.session, case))
    before = _said(entry.kind, entry.content)
    entry.kind, entry.content = typed["kind"], typed["content"]
    audit(ctx, case, "retro.edit", f"{before} → {_said(entry.kind, entry.content)}")
    ctx.session.flush()
    return CallbackAnswer(toast=texts.RETRO_SAVED.format(kind=texts.RETRO_KIND_LABELS[entry.kind]),
                          card=retro_card_for(ctx.session, case))


@router.action(RETRO_EDIT)
def edit_entry(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _member_case(ctx, value)
    if not value.row_id:  # 取消修改: back to adding, in the same private form
        return open_form(ctx, event, retro_form_for(ctx.session, case), case)
    entry = _own_entry(ctx, case, value.row_id)
    if entry is None:
        raise UserError(texts.RETRO_ENTRY_GONE, card=retro_card_for(ctx.session, case), kind="info")
    return open_form(ctx, event, retro_form_for(ctx.session, case, editing=entry), case)


@router.action(RETRO_DELETE)
def delete_entry(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _member_case(ctx, value)
    entry = _own_entry(ctx, case, value.row_id)
    gone = entry is None or not ctx.session.execute(  # compare-and-delete: a double click deletes once
        delete(RetroEntry).where(RetroEntry.id == entry.id).execution_options(synchronize_session=False)).rowcount
    if gone:
        return CallbackAnswer(toast=texts.RETRO_ENTRY_GONE, toast_type="info", card=retro_card_for(ctx.session, case))
    ctx.session.expunge(entry)
    audit(ctx, case, "retro.delete", _said(entry.kind, entry.content))
    return CallbackAnswer(toast=texts.RETRO_DELETED.format(kind=texts.RETRO_KIND_LABELS[entry.kind]),
                          card=retro_card_for(ctx.session, case))


# ---------------------------------------------------------------- the report
def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def step_times(session: Session, case: Case, now: datetime) -> list[tuple[int, float]]:
    """Seconds spent in each step (a step entered twice after a send-back counts both stays)."""
    totals: dict[int, float] = {}
    for log in session.scalars(select(StepLog).where(StepLog.case_id == case.id, StepLog.tenant_key == case.tenant_key)
                               .order_by(StepLog.id)):
        end = log.left_at or case.closed_at or now
        totals[log.step] = totals.get(log.step, 0.0) + _seconds(log.entered_at, end)
    return [(step, secs) for step, secs in sorted(totals.items()) if step <= Step.RETRO]


def sign_times(session: Session, case: Case) -> dict[str, list[tuple[str, float]]]:
    """Seconds from 'ready to sign' to each signature: consensus from the version's creation,
    requirements from entering step 3."""
    names = {d.id: d.name for d in repository.departments(session, case, active_only=False)}
    made = {v.version: v.created_at for v in session.scalars(select(ConsensusVersion).where(
        ConsensusVersion.case_id == case.id, ConsensusVersion.tenant_key == case.tenant_key))}
    step3 = [log.entered_at for log in session.scalars(select(StepLog).where(
        StepLog.case_id == case.id, StepLog.tenant_key == case.tenant_key, StepLog.step == Step.REQUIREMENTS)
        .order_by(StepLog.id))]
    out: dict[str, list[tuple[str, float]]] = {"consensus": [], "requirements": []}
    for s in session.scalars(select(Signoff).where(Signoff.case_id == case.id, Signoff.tenant_key == case.tenant_key,
                                                   Signoff.status == SignoffStatus.SIGNED).order_by(Signoff.id)):
        if s.artifact == "consensus" and s.artifact_version in made:
            start = made[s.artifact_version]
        elif s.artifact == "requirements" and step3:
            start = max((t for t in step3 if t <= s.at), default=step3[0])
        else:
            continue
        out.setdefault(s.artifact, []).append((names.get(s.department_id, ""), _seconds(start, s.at)))
    return out


def _sign_lines(session: Session, case: Case) -> tuple[str, ...]:
    lines = []
    for artifact, rows in sign_times(session, case).items():
        label = texts.SIGN_ARTIFACTS.get(artifact, artifact)
        if not rows:
            lines.append(texts.REPORT_SIGN_NONE.format(artifact=label))
            continue
        slowest = max(rows, key=lambda r: r[1])
        lines.append(texts.REPORT_SIGN_LINE.format(artifact=label, avg=span(sum(h for _, h in rows) / len(rows)),
                                                   max=span(slowest[1]), dept=slowest[0]))
    return tuple(lines)


def _plan_rows(session: Session, case: Case, tz: ZoneInfo) -> tuple[list[PlanActualRow], int, int, list[Bar]]:
    """The rows of 计划与实际, the on-time count and the bars of its chart (planned, then actual
    from the task's start to its completion; a dropped task has neither)."""
    base = {t["id"]: t for t in baseline(session, case).get("tasks", [])}
    rows, on_time, total, bars = [], 0, 0, []
    for t in tasks_of(session, case, include_dropped=True):
        b = base.get(t.id)
        p_start = datetime.fromisoformat(b["start"]) if b else t.start_at
        p_due = datetime.fromisoformat(b["due"]) if b else t.due_at
        if t.dropped:
            result = texts.RESULT_DROPPED
        else:
            bars.append(Bar(t, p_start, p_due, texts.TIMELINE_PLANNED))
            if t.done_at is not None:
                bars.append(Bar(t, t.start_at, t.done_at, texts.TIMELINE_ACTUAL))
            total += 1
            if t.done_at is None:
                result = texts.RESULT_OPEN
            elif t.done_at <= p_due:
                on_time += 1
                result = texts.RESULT_ON_TIME
            else:
                result = texts.RESULT_LATE.format(late=span(t.done_at - p_due))
        rows.append(PlanActualRow(task=f"#{t.seq} {t.content}" + ("" if b else texts.RESULT_ADDED),
                                  owner=t.owner_open_id, planned_start=fmt(p_start, tz), planned_due=fmt(p_due, tz),
                                  actual_done=fmt(t.done_at, tz), result=result))
    return rows, on_time, total, bars


def _change_rows(session: Session, case: Case) -> list[ChangeRow]:
    rows = []
    crs = session.scalars(select(ChangeRequest).where(ChangeRequest.case_id == case.id,
                                                      ChangeRequest.tenant_key == case.tenant_key)
                          .order_by(ChangeRequest.id))
    for no, cr in enumerate(crs, start=1):
        what = "；".join(cr.changes.get("_lines", [])) or texts.CHANGE_KIND.get(cr.changes.get("kind"), "")
        rows.append(ChangeRow(no=no, change=_plain(what), reason=cr.reason, status=cr.status))
    return rows


def _plain(markup: str) -> str:
    """Table text cells do not render markup: show mentions as '@' and unescape entities."""
    return html.unescape(re.sub(r"<at id=([^>]+)></at>", "@", markup))


def report_view(session: Session, case: Case, now: datetime, tz: ZoneInfo, *, with_template_form: bool) -> ReportView:
    plan_rows, on_time, total, bars = _plan_rows(session, case, tz)
    times = step_times(session, case, now)
    version = repository.plan_version(session, case)
    closing = session.scalar(select(StepLog.reason).where(StepLog.case_id == case.id, StepLog.step == Step.RETRO)
                             .order_by(StepLog.id.desc()).limit(1))
    return ReportView(
        title=case.title, seq=case.seq, when=fmt(case.closed_at or now, tz), on_time=on_time, total=total,
        total_seconds=sum(d for _, d in times), version=version, plan_rows=tuple(plan_rows),
        step_times=tuple((texts.STEP_SHORT[s], d) for s, d in times), sign_lines=_sign_lines(session, case),
        changes=tuple(_change_rows(session, case)), entries=_entries(session, case),
        close_reason=closing if closing and closing != texts.ALL_TASKS_DONE else "",
        timeline=timeline(texts.REPORT_TIMELINE_TITLE, bars, nodes_of(session, case), tz),
        save_template=ActionValue(TEMPLATE_SAVE, case_id=case.id) if with_template_form else None)


def report_card_for(session: Session, case: Case, now: datetime, tz: ZoneInfo, *, typed_name: str = "") -> dict:
    view = report_view(session, case, now, tz, with_template_form=True)
    if typed_name:
        view = replace(view, template_name=typed_name)
    return report_card(view)


@router.action(RETRO_FINALISE, versioned=Versioned(  # finalise the report as the lead saw it
    step=Step.RETRO, current=lambda s, case, _v: len(repository.retro_entries(s, case)),
    card=lambda ctx, case, _v: retro_card_for(ctx.session, case)))
def finalise(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.status == CaseStatus.CLOSED:
        return CallbackAnswer(toast=texts.RETRO_ALREADY_FINAL, toast_type="info")
    require_step(case, Step.RETRO)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    repository.artifact_state(ctx.session, case, "retro").archived_at = ctx.now  # the archive shows it final
    try:
        transition(ctx, case, Finalise())
    except Blocked as exc:  # rolls the archiving back
        raise UserError(texts.RETRO_NEED_ENTRY) from exc
    audit(ctx, case, "retro.finalise", texts.RETRO_FINALISED)
    # the pinned report and the case card (now archived) say it; no extra line in the group
    ctx.send(outbox.SendCard(report_card_for(ctx.session, case, ctx.now, ctx.tz), pin=True))
    return CallbackAnswer(toast=texts.RETRO_FINALISED, card=retro_card_for(ctx.session, case))


@router.action(TEMPLATE_SAVE)
def save_template(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step < Step.RETRO:
        require_step(case, Step.RETRO)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    name = str((event.form_value or {}).get("name") or "").strip()
    try:
        tpl = templates.save_template(ctx.session, case, name, ctx.actor, ctx.now)
    except UserError as err:
        raise UserError(err.message, card=report_card_for(ctx.session, case, ctx.now, ctx.tz, typed_name=name)) from err
    audit(ctx, case, "template.save", tpl.name)
    return CallbackAnswer(toast=texts.TEMPLATE_SAVED.format(name=tpl.name))


# ---------------------------------------------------------------- Markdown export (/导出)
def export_retro(session: Session, case: Case, tz: ZoneInfo) -> str | None:
    if case.step < Step.RETRO:
        return None
    v = report_view(session, case, case.closed_at or case.updated_at, tz, with_template_form=False)
    approved = sum(1 for c in v.changes if c.status == ChangeStatus.APPROVED)
    name = people.namer(session, case.tenant_key, [r.owner for r in v.plan_rows] + [e.author for e in v.entries])
    out = [texts.EXP_RETRO_HEAD, f"「{case.title}」#{case.seq}", "",
           _plain(texts.REPORT_OVERVIEW.format(rate=rate(v.on_time, v.total), on_time=v.on_time, total=v.total,
                                               changes=len(v.changes), approved=approved,
                                               rejected=len(v.changes) - approved - sum(
                                                   1 for c in v.changes if c.status == ChangeStatus.PENDING),
                                               version=v.version, elapsed=span(v.total_seconds))), "",
           texts.REPORT_PLAN_HEAD,
           md_table([texts.COL_TASK, texts.COL_OWNER, texts.COL_PLANNED_START, texts.COL_PLANNED_DUE,
                     texts.COL_ACTUAL_DONE, texts.COL_RESULT],
                    [[r.task, name(r.owner), r.planned_start, r.planned_due, r.actual_done, r.result]
                     for r in v.plan_rows]),
           "", texts.REPORT_STEPS_HEAD, md_table([texts.COL_STEP_NAME, texts.COL_STEP_TIME],
                                                   [[step, span(secs)] for step, secs in v.step_times]),
           "", texts.REPORT_SIGN_HEAD, *[f"- {line}" for line in v.sign_lines], "", texts.REPORT_CHANGES_HEAD,
           md_table([texts.COL_CHANGE_NO, texts.COL_CHANGE, texts.COL_REASON, texts.COL_RESULT],
                    [[c.no, c.change, c.reason, texts.CHANGE_STATUS[c.status][0]] for c in v.changes])]
    for kind in RetroKind:
        out += ["", texts.REPORT_ENTRIES_HEAD.format(kind=texts.RETRO_KIND_LABELS[kind])]
        out += [texts.REPORT_ENTRY.format(content=e.content, author=name(e.author)) for e in v.entries
                if e.kind == kind] or [texts.REPORT_NO_ENTRY]
    return "\n".join(out)


router.buttons(Step.RETRO, (texts.BTN_OPEN_RETRO, RETRO_OPEN, True))
router.exporter(Step.RETRO)(export_retro)


@router.output_card(Step.RETRO)
def _output(ctx: Ctx, case: Case, when: datetime) -> dict:
    """《复盘总结报告》 once finalised; before that the 复盘会 card with the entries so far."""
    if repository.artifact_state(ctx.session, case, "retro").archived_at is not None:
        return report_card_for(ctx.session, case, when, ctx.tz)
    return retro_card_for(ctx.session, case)
