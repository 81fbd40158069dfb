"""Step 5 — 执行跟踪与动态调整 → 《进度跟踪表》.

Owners update their own tasks (the lead any task) from update cards; every update is a
TaskUpdate row (the standup reads who answered from them). Lagging tasks (bot.lagging) come
first; the lead is @mentioned once per task that newly lags (Task.lag_notified_at).

What the group sees of this step is drawn by the presenters in handlers.views; the lead's
lag alerts come from handlers.lag_alerts, here after an update and from handlers.jobs every minute.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from bot import outbox, repository, texts
from bot.actions import (
    CHANGE_OPEN,
    EXEC_CLOSE_OPEN,
    PLAN_OPEN,
    RISK_CLOSE,
    TRACK_OPEN,
    TRACK_SHOW,
    TRACK_UPDATE,
    ActionValue,
    to_name,
)
from bot.domain import CaseStatus, ChangeStatus, RiskStatus, TaskStatus, parse
from bot.envelope import CardAction, Header, MessageEvent
from bot.ids import is_open_id, number
from bot.lagging import is_lagging, lag_reason_required
from bot.models import Case, ChangeRequest, PlanVersion, PostedCard, Risk, StepLog, Task, TaskUpdate
from bot.repository import (
    department_of,
    get_task,
    risks_of,
    tasks_of,
    team_open_ids,
)
from bot.routing import CallbackAnswer, Ctx, Router, UserError, Versioned
from bot.workflow import Check, CloseExecution, Step
from cards import kit
from cards.tracking import (
    ChangeFormView,
    ChangeRequestView,
    CloseView,
    PlanDiffView,
    UpdateItem,
    UpdateView,
    change_form_card,
    change_request_card,
    close_card,
    field_names,
    plan_diff_card,
    update_card,
)
from handlers import case_card, feishu_board, feishu_tasks, people, warnings
from handlers.common import (
    audit,
    first_too_long,
    fmt,
    from_private_form,
    inert,
    load_case,
    md_table,
    mention,
    not_member,
    open_form,
    picker_value,
    require_step,
    send_private_form,
    transition,
    typed_back,
)
from handlers.lag_alerts import lag_alert_ops
from handlers.tasks import baseline, check_task, next_task_seq, plan_snapshot, when_field
from handlers.views import ordered_tasks, task_row, tracking_card_for, tracking_view

router = Router(Step.EXECUTION)



# ---------------------------------------------------------------- views
def _open_tasks_for(session: Session, case: Case, actor: str, now: datetime) -> list[Task]:
    tasks = [t for t in tasks_of(session, case) if t.status != TaskStatus.DONE]
    if actor != case.lead_open_id:
        tasks = [t for t in tasks if t.owner_open_id == actor]
    return ordered_tasks(tasks, now)


def update_card_for(session: Session, case: Case, actor: str, now: datetime, tz: ZoneInfo,
                    typed: dict[int, dict[str, str]] | None = None) -> dict | None:
    """The update form for `actor`'s open tasks (the lead: all open tasks); None if they have none.
    `typed` = {task_id: {status, progress, lag_reason, adjustment}} re-fills what was typed."""
    tasks = _open_tasks_for(session, case, actor, now)
    if not tasks:
        return None
    typed = typed or {}
    items = []
    for t in tasks:
        mine = typed.get(t.id, {})
        items.append(UpdateItem(
            row=task_row(t, now, tz),
            submit=ActionValue(TRACK_UPDATE, case_id=case.id, row_id=t.id, version=t.update_count),
            status=mine.get("status", t.status), progress=mine.get("progress", str(t.progress)),
            lag_reason=mine.get("lag_reason", t.lag_reason), adjustment=mine.get("adjustment", t.adjustment)))
    return update_card(UpdateView(title=case.title, who=actor, items=tuple(items)))


# ---------------------------------------------------------------- lag alerts


def _alert_new_lags(ctx: Ctx, case: Case) -> None:
    for op in lag_alert_ops(ctx.session, case, ctx.now, ctx.tz):
        ctx.send(op)


# ---------------------------------------------------------------- actions
@router.action(TRACK_SHOW)
def show(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step < Step.EXECUTION:
        require_step(case, Step.EXECUTION)
    _alert_new_lags(ctx, case)
    ctx.send(outbox.SendCard(tracking_card_for(ctx.session, case, ctx.now, ctx.tz), view="tracking", case_id=case.id))
    return CallbackAnswer(toast=texts.OUTPUTS[Step.EXECUTION])


@router.card_view("tracking")
def _tracking_view(ctx: Ctx, case: Case) -> dict:
    return tracking_card_for(ctx.session, case, ctx.now, ctx.tz)


@router.action(TRACK_OPEN)
def open_update(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.EXECUTION)
    card = update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz)
    if card is None:
        raise UserError(texts.NO_OPEN_TASKS_FOR_YOU, kind="info")
    return open_form(ctx, event, card, case)


def _read_form(form: dict, task_id: int) -> dict[str, str]:
    s, p, r, a = field_names(task_id)
    get = lambda k: str(form.get(k) or "").strip()  # noqa: E731
    return {"status": get(s), "progress": get(p), "lag_reason": get(r), "adjustment": get(a)}


def _validate(task: Task, typed: dict[str, str], now: datetime) -> tuple[TaskStatus, int]:
    status = parse(TaskStatus, typed["status"])
    if status is None:
        raise ValueError(texts.BAD_STATUS)
    if problem := first_too_long(typed, {"lag_reason": (texts.FIELD_LAG_REASON, 500),
                                         "adjustment": (texts.FIELD_ADJUSTMENT, 500)}):
        raise ValueError(problem)
    raw = typed["progress"].rstrip("%").strip()
    progress = number(raw, top=100)
    if progress is None:
        raise ValueError(texts.BAD_PROGRESS.format(value=typed["progress"][:10]))
    if status == TaskStatus.DONE:
        progress = 100
    elif progress == 100 and status != TaskStatus.BLOCKED:
        status = TaskStatus.DONE
    if lag_reason_required(task, now, status=status, progress=progress) and not (
            typed["lag_reason"] and typed["adjustment"]):
        raise ValueError(texts.LAG_FIELDS_REQUIRED.format(seq=task.seq, content=task.content))
    return status, progress


def _version_of(session: Session, case: Case, task_id: int | None) -> int:
    """The version of a task's update form, from the case's tasks (read anyway by the update; a
    dropped task is not among them, and its form is answered with the current one)."""
    return next((t.update_count for t in tasks_of(session, case) if t.id == task_id), 0)


@router.action(TRACK_UPDATE, versioned=Versioned(  # someone else updated the task since the form was drawn
    step=Step.EXECUTION, current=lambda s, case, v: _version_of(s, case, v.row_id),
    card=lambda ctx, case, _v: update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz)
    or tracking_card_for(ctx.session, case, ctx.now, ctx.tz)))   # nothing of theirs is open any more
def submit_update(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.EXECUTION)
    # the case's tasks are read anyway (the guard, the lag check, the next form): the one clicked
    # is among them unless it was dropped
    task = next((t for t in tasks_of(ctx.session, case) if t.id == value.row_id), None)
    if task is None:
        raise UserError(texts.TASK_NOT_FOUND)
    if ctx.actor not in (task.owner_open_id, case.lead_open_id):
        raise UserError(_not_task_owner(ctx, case, task))
    typed = _read_form(event.form_value or {}, task.id)
    try:
        status, progress = _validate(task, typed, ctx.now)
    except ValueError as exc:
        raise UserError(str(exc), card=update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz,
                                                       typed={task.id: typed})) from exc
    same = (task.status, task.progress, task.lag_reason, task.adjustment) == (
        status, progress, typed["lag_reason"], typed["adjustment"])
    if same and _last_update_by(ctx.session, task, ctx.actor):
        return CallbackAnswer(toast=texts.TASK_UPDATE_SAME.format(seq=task.seq), toast_type="info",
                              card=update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz))
    _apply(ctx, case, task, status, progress, typed)
    toast = texts.TASK_UPDATED.format(seq=task.seq, status=texts.TASK_STATUS_LABELS[status], progress=progress)
    # only a task that is now done can complete the set the step's guard waits for
    if status == TaskStatus.DONE and _maybe_finish(ctx, case):
        return CallbackAnswer(toast=toast)
    _alert_new_lags(ctx, case)
    case_card.refresh(ctx, case)
    card = update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz)
    return CallbackAnswer(toast=toast, card=card or update_card(UpdateView(case.title, ctx.actor, ())))


def _not_task_owner(ctx: Ctx, case: Case, task: Task) -> str:
    owner, lead = (people.name(ctx.session, ctx.tenant_key, o) for o in (task.owner_open_id, case.lead_open_id))
    if not (owner or lead):
        return texts.NOT_TASK_OWNER.format(seq=task.seq, content=task.content)
    return texts.NOT_TASK_OWNER_NAMED.format(
        owner=people.who(ctx.session, ctx.tenant_key, task.owner_open_id, texts.TASK_OWNER_WORD),
        lead=people.who(ctx.session, ctx.tenant_key, case.lead_open_id, texts.COL_LEAD), seq=task.seq,
        content=task.content)


def _last_update_by(session: Session, task: Task, actor: str) -> bool:
    last = session.scalar(select(TaskUpdate).where(TaskUpdate.task_id == task.id, TaskUpdate.case_id == task.case_id)
                          .order_by(TaskUpdate.id.desc()).limit(1))
    return last is not None and last.actor_open_id == actor


_UPDATE_COLUMNS = ("status", "progress", "lag_reason", "adjustment", "done_at", "updated_at", "update_count")


def _apply(ctx: Ctx, case: Case, task: Task, status: TaskStatus, progress: int, typed: dict[str, str]) -> None:
    task.status, task.progress = status, progress
    task.lag_reason, task.adjustment = typed["lag_reason"], typed["adjustment"]
    task.done_at = (task.done_at or ctx.now) if status == TaskStatus.DONE else None
    task.updated_at = ctx.now
    # Always the same UPDATE, whichever fields changed: the ORM compiles one statement per set of
    # changed columns, and the rehearsal at a start warms only the one it ran — a burst of first
    # updates with another set compiled theirs side by side.
    task.update_count += 1
    for column in _UPDATE_COLUMNS:
        flag_modified(task, column)
    ctx.session.add(TaskUpdate(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, task_id=task.id,
                               actor_open_id=ctx.actor, status=status, progress=progress,
                               lag_reason=typed["lag_reason"], adjustment=typed["adjustment"],
                               standup_day=ctx.now.astimezone(ctx.tz).date(), at=ctx.now))
    label = texts.TASK_STATUS_LABELS[status]
    audit(ctx, case, "task.update", f"#{task.seq} {label} {progress}% {typed['lag_reason']}".strip())
    feishu_tasks.touch(ctx, case)
    feishu_board.touch(ctx, case)


def _maybe_finish(ctx: Ctx, case: Case) -> bool:
    """Every task done: the case moves on to the retrospective (the step-6 case card, a new
    message, carries the closing words and asks the owners of open risks)."""
    return transition(ctx, case, Check(), reason=texts.ALL_TASKS_DONE) is not None


def _closing_words(ctx: Ctx, case: Case) -> str:
    """The step-6 case card's summary: how execution ended and, while any risk is still open,
    its owner @-mentioned (the card is sent anew on entering step 6, so this notifies once; it
    goes from the card as soon as the risk is closed)."""
    reason = ctx.session.scalar(select(StepLog.reason).where(
        StepLog.case_id == case.id, StepLog.tenant_key == case.tenant_key, StepLog.step == Step.RETRO)
        .order_by(StepLog.id.desc()).limit(1)) or texts.ALL_TASKS_DONE
    words = reason if reason == texts.ALL_TASKS_DONE else texts.EXEC_CLOSED.format(reason=kit.esc(reason))
    open_risks = [r for r in risks_of(ctx.session, case) if r.status == RiskStatus.OPEN]
    if open_risks:
        lines = "\n".join(texts.EXEC_OPEN_RISK_LINE.format(risk=kit.esc(r.risk), owner=kit.at(r.owner_open_id))
                          for r in open_risks)
        words += "\n" + texts.EXEC_OPEN_RISKS.format(n=len(open_risks), lines=lines)
    return words


# ---------------------------------------------------------------- closing risks
@router.action(RISK_CLOSE)
def close_risk(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step != Step.RETRO or case.status != CaseStatus.ACTIVE:  # risks left open may be closed in step 6 too
        require_step(case, Step.EXECUTION)
    form = event.form_value or {}
    typed = {"risk": str(form.get("risk") or "").strip(), "note": str(form.get("note") or "").strip()}
    risk = ctx.session.scalar(select(Risk).where(
        Risk.id == (number(typed["risk"]) or 0), Risk.case_id == case.id,
        Risk.tenant_key == case.tenant_key, Risk.chat_id == case.chat_id))
    if risk is None:
        message = texts.RISK_NOT_FOUND if typed["risk"] else texts.RISK_PICK_MISSING
        raise UserError(message, card=tracking_card_for(ctx.session, case, ctx.now, ctx.tz, typed))
    if ctx.actor not in (risk.owner_open_id, case.lead_open_id):
        raise UserError(texts.RISK_CLOSE_NOT_ALLOWED.format(
            owner=people.person_desc(ctx.session, case, risk.owner_open_id), risk=risk.risk[:40],
            lead=people.who(ctx.session, ctx.tenant_key, case.lead_open_id, texts.COL_LEAD)))
    if problem := first_too_long(typed, {"note": (texts.FIELD_RISK_NOTE, RISK_NOTE_LIMIT)}):
        raise UserError(problem, card=tracking_card_for(ctx.session, case, ctx.now, ctx.tz, typed))
    # compare-and-set: of two concurrent clicks exactly one closes the risk (and audits it)
    closed = ctx.session.execute(update(Risk).where(Risk.id == risk.id, Risk.status == RiskStatus.OPEN)
                                 .values(status=RiskStatus.CLOSED).execution_options(synchronize_session=False)).rowcount
    ctx.session.refresh(risk)
    if not closed:
        return CallbackAnswer(toast=texts.RISK_ALREADY_CLOSED.format(risk=risk.risk[:40]), toast_type="info",
                              card=tracking_card_for(ctx.session, case, ctx.now, ctx.tz))
    note = typed["note"]
    audit(ctx, case, "risk.close", f"{risk.risk[:200]}" + (f"：{note}" if note else ""))
    feishu_board.touch(ctx, case)
    return CallbackAnswer(toast=texts.RISK_CLOSED.format(risk=risk.risk[:40]),
                          card=tracking_card_for(ctx.session, case, ctx.now, ctx.tz))


# ---------------------------------------------------------------- case card in step 5
def _summary(ctx: Ctx, case: Case) -> str:
    tasks = tasks_of(ctx.session, case)
    lagging = [t for t in tasks if is_lagging(t, ctx.now)]
    done = sum(1 for t in tasks if t.status == TaskStatus.DONE)
    line = texts.CASE_SUMMARY_5.format(done=done, total=len(tasks), lagging=len(lagging))
    if lagging:
        line += "\n" + "\n".join(texts.CASE_SUMMARY_5_LAG.format(seq=t.seq, content=kit.esc(t.content),
                                                               owner=kit.at(t.owner_open_id), progress=t.progress)
                                 for t in lagging[:5])
    return line


router.buttons(Step.EXECUTION, (texts.BTN_SHOW_TRACKING, TRACK_SHOW, True),
               (texts.BTN_UPDATE_MINE, TRACK_OPEN, False), (texts.BTN_VIEW_PLAN, PLAN_OPEN, False))
router.summary(Step.EXECUTION)(_summary)
router.summary(Step.RETRO)(_closing_words)
router.output_card(Step.EXECUTION)(lambda ctx, case, when: tracking_card_for(ctx.session, case, when, ctx.tz))


@router.state(Step.EXECUTION)
def _colour(ctx: Ctx, case: Case) -> str:
    return "lagging" if any(is_lagging(t, ctx.now) for t in tasks_of(ctx.session, case)) else "info"


# ---------------------------------------------------------------- dynamic adjustment (change requests)
CHANGE_MODE = "change.mode"        # switch the form: edit | add | drop
CHANGE_SUBMIT = "change.submit"
CHANGE_APPROVE = "change.approve"  # row_id = change request id
CHANGE_REJECT = "change.reject"
EXEC_CLOSE = "exec.close"
CHANGE_LIMITS = {"content": (texts.FIELD_CONTENT, 500), "standard": (texts.FIELD_STANDARD, 500),
                 "reason": (texts.FIELD_REASON, 500), "retro_note": (texts.FIELD_RETRO_NOTE, 1000)}
RISK_NOTE_LIMIT = 300
DECISION_NOTE_LIMIT = 300
CLOSE_REASON_LIMIT = 500
_FORM_KEYS = ("task", "start", "due", "owner", "content", "standard", "reason", "retro_note")


def change_form_for(session: Session, case: Case, mode: str = "edit", typed: dict[str, str] | None = None,
                    warning: str = "", confirm: str = "") -> dict:
    options = tuple((f"#{t.seq} {t.content}"[:40], str(t.id)) for t in tasks_of(session, case)
                    if t.status != TaskStatus.DONE)
    return change_form_card(ChangeFormView(case_id=case.id, title=case.title, mode=mode,
                                           task_options=options or ((texts.PLAN_NONE, "0"),), mode_action=CHANGE_MODE,
                                           submit=ActionValue(CHANGE_SUBMIT, case_id=case.id,
                                                              row_id=_MODES.index(mode)),
                                           typed=typed or {}, warning=warning, confirm=confirm))


_MODES = ("edit", "add", "drop")


def _team_case(ctx: Ctx, case_id: int | None) -> Case:
    case = load_case(ctx, case_id)
    require_step(case, Step.EXECUTION)
    if ctx.actor not in team_open_ids(ctx.session, case):
        raise UserError(texts.NOT_TEAM_MEMBER)
    return case


@router.command(texts.CMD_ADJUST)
def adjust_command(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if case is None:
        raise UserError(texts.NO_ACTIVE_CASE)
    case = _team_case(ctx, case.id)
    send_private_form(ctx, change_form_for(ctx.session, case), case)


@router.action(CHANGE_OPEN)
def open_change(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    # the form is the asker's; once submitted, the request the lead decides on is posted
    case = _team_case(ctx, value.case_id)
    return open_form(ctx, event, change_form_for(ctx.session, case), case)


@router.action(CHANGE_MODE)
def change_mode(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _team_case(ctx, value.case_id)
    mode = value.extra.get("m", "edit")
    return CallbackAnswer(card=change_form_for(ctx.session, case, mode if mode in _MODES else "edit"))


def _parse_change(ctx: Ctx, case: Case, mode: str, form: dict) -> dict:
    """The requested change as stored in ChangeRequest.changes (times as UTC ISO strings)."""
    if not str(form.get("reason") or "").strip():
        raise ValueError(texts.CHANGE_NEED_REASON)
    if mode == "add":  # same rules as step 4; the task starts when the lead approves it
        start = picker_value(ctx.now, ctx.tz)
        due = when_field(form, "due", texts.FIELD_DUE, ctx.tz)
        if due <= ctx.now:  # say so plainly (not "due before start")
            raise ValueError(texts.ERR_PAST.format(field=texts.FIELD_DUE, value=fmt(due, ctx.tz)))
        data = check_task(ctx, case, dict(form, depends="0", start=start), None)
        return {"kind": "add", "content": data["content"], "owner": data["owner_open_id"],
                "due": data["due_at"].isoformat(), "standard": data["delivery_standard"]}
    task = get_task(ctx.session, case, number(str(form.get("task") or "")))
    if task is None or task.dropped:
        raise ValueError(texts.CHANGE_NEED_TASK)
    if task.status == TaskStatus.DONE:
        raise ValueError(texts.CHANGE_TASK_DONE.format(seq=task.seq))
    if mode == "drop":
        return {"kind": "drop", "task_id": task.id}
    start = when_field(form, "start", texts.FIELD_START, ctx.tz) if form.get("start") else None
    due = when_field(form, "due", texts.FIELD_DUE, ctx.tz) if form.get("due") else None
    owner = str(form.get("owner") or "").strip()
    owner = owner if is_open_id(owner) and owner != task.owner_open_id else ""
    if problem := not_member(ctx, owner, texts.FIELD_OWNER):
        raise ValueError(problem)
    if not (start or due or owner):
        raise ValueError(texts.CHANGE_NEED_SOMETHING)
    _check_dates(start or task.start_at, due or task.due_at, ctx.now)
    out: dict = {"kind": "edit", "task_id": task.id}
    if start:
        out["start"] = start.isoformat()
    if due:
        out["due"] = due.isoformat()
    if owner:
        out["owner"] = owner
    return out


def _check_dates(start: datetime, due: datetime, now: datetime) -> None:
    if due <= start:
        raise ValueError(texts.ERR_END_BEFORE_START)
    if due <= now:
        raise ValueError(texts.ERR_PAST.format(field=texts.FIELD_DUE, value=""))


@router.action(CHANGE_SUBMIT)
def submit_change(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _team_case(ctx, value.case_id)
    mode = _MODES[value.row_id] if value.row_id is not None and 0 <= value.row_id < len(_MODES) else "edit"
    form = event.form_value or {}
    typed = typed_back(form, _FORM_KEYS)
    try:
        if problem := first_too_long(typed, CHANGE_LIMITS):
            raise ValueError(problem)
        changes = _parse_change(ctx, case, mode, form)
    except ValueError as exc:
        raise UserError(str(exc), card=change_form_for(ctx.session, case, mode, typed)) from exc
    problems = _change_warnings(ctx, case, changes)
    token = warnings.fingerprint(changes)
    if problems and not warnings.confirmed(value, token):
        raise UserError(problems[0], kind="warning", card=change_form_for(
            ctx.session, case, mode, typed, warning="\n".join(problems), confirm=token))
    pending = ctx.session.scalars(select(ChangeRequest).where(
        ChangeRequest.case_id == case.id, ChangeRequest.tenant_key == case.tenant_key,
        ChangeRequest.chat_id == case.chat_id, ChangeRequest.status == ChangeStatus.PENDING))
    private = from_private_form(ctx, event)
    for cr in pending:  # a double submit files one request
        if cr.changes == changes and cr.requested_by == ctx.actor and cr.reason == typed["reason"]:
            return CallbackAnswer(toast=texts.CHANGE_SUBMITTED, card=case_card.result_line(texts.CHANGE_SUBMITTED)
                                  if private else _request_card(ctx, case, cr))
    cr = ChangeRequest(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, requested_by=ctx.actor,
                       reason=typed["reason"], changes=changes, retro_note=typed["retro_note"],
                       created_at=ctx.now)
    ctx.session.add(cr)
    ctx.session.flush()
    no = _request_no(ctx.session, cr)
    audit(ctx, case, "change.request", f"#{no} {cr.reason}")
    if private:  # one new card in the group: it @-mentions the lead, who is notified and decides on it
        ctx.send(outbox.SendCard(_request_card(ctx, case, cr)))
        return CallbackAnswer(toast=texts.CHANGE_SUBMITTED, card=case_card.result_line(texts.CHANGE_SUBMITTED))
    ctx.send(outbox.SendText(texts.CHANGE_PLEASE_DECIDE.format(
        lead=mention(case.lead_open_id), no=no, summary=inert(_summary_text(ctx, case, cr)),
        reason=inert(cr.reason))))
    return CallbackAnswer(toast=texts.CHANGE_SUBMITTED, card=_request_card(ctx, case, cr))


def _change_warnings(ctx: Ctx, case: Case, changes: dict) -> list[str]:
    """What a planner should confirm before filing: a deadline outside working hours, a move
    that makes a dependent task start before this one ends."""
    if "due" not in changes:
        return []
    due = datetime.fromisoformat(changes["due"])
    task = get_task(ctx.session, case, changes.get("task_id"))
    what = texts.WARN_TASK_WHAT.format(seq=task.seq) if task else texts.WARN_NEW_TASK
    out = [w for w in (warnings.due_off_hours(ctx.session, case, what, due, ctx.tz),) if w]
    if task is not None:
        out += warnings.dependency_warnings(tasks_of(ctx.session, case), task, due, ctx.tz)
    return out


def _dependent_lines(ctx: Ctx, case: Case, moved: Task) -> tuple[list[str], set[str]]:
    """One line per task waiting for `moved` (its owner @mentioned), and those owners."""
    lines, owners = [], set()
    for t in tasks_of(ctx.session, case):
        if t.depends_on_id != moved.id or t.dropped or t.status == TaskStatus.DONE:
            continue
        template = texts.DEPENDENT_NOTICE if t.start_at < moved.due_at else texts.DEPENDENT_MOVED
        lines.append(template.format(owner=kit.at(t.owner_open_id), dep=t.seq, dep_content=kit.esc(t.content),
                                     seq=moved.seq, due=fmt(moved.due_at, ctx.tz), start=fmt(t.start_at, ctx.tz)))
        owners.add(t.owner_open_id)
    return lines, owners


def _request_no(session: Session, cr: ChangeRequest) -> int:
    return session.scalar(select(func.count(ChangeRequest.id)).where(ChangeRequest.case_id == cr.case_id,
                                                                     ChangeRequest.id <= cr.id)) or 0


def _change_lines(ctx: Ctx, case: Case, cr: ChangeRequest) -> list[str]:
    c = cr.changes
    if c["kind"] == "add":
        start = fmt(datetime.fromisoformat(c["start"]), ctx.tz) if "start" in c else texts.CHANGE_STARTS_ON_APPROVAL
        return [f"{texts.DIFF_ADDED}：{kit.esc(c['content'])} · {kit.at(c['owner'])} · "
                f"{start} → {fmt(datetime.fromisoformat(c['due']), ctx.tz)}"]
    task = get_task(ctx.session, case, c["task_id"])
    label = f"#{task.seq} {kit.esc(task.content)}" if task else "—"
    if c["kind"] == "drop":
        return [f"{label}：{texts.CHANGE_KIND['drop']}"]
    parts = []
    if "start" in c and task:
        parts.append(texts.DIFF_FIELD.format(field=texts.COL_START, old=fmt(task.start_at, ctx.tz),
                                             new=fmt(datetime.fromisoformat(c["start"]), ctx.tz)))
    if "due" in c and task:
        parts.append(texts.DIFF_FIELD.format(field=texts.COL_DUE, old=fmt(task.due_at, ctx.tz),
                                             new=fmt(datetime.fromisoformat(c["due"]), ctx.tz)))
    if "owner" in c and task:
        parts.append(texts.DIFF_OWNER.format(old=kit.at(task.owner_open_id), new=kit.at(c["owner"])))
    return [f"{label}：{'；'.join(parts)}"]


def _summary_text(ctx: Ctx, case: Case, cr: ChangeRequest) -> str:
    c = cr.changes
    task = get_task(ctx.session, case, c.get("task_id"))
    what = c.get("content") or (f"#{task.seq} {task.content}" if task else "")
    return f"{texts.CHANGE_KIND[c['kind']]} {what}"


def _request_card(ctx: Ctx, case: Case, cr: ChangeRequest, new_version: int = 0) -> dict:
    pending = cr.status == ChangeStatus.PENDING
    lines = tuple(_change_lines(ctx, case, cr)) if pending else tuple(cr.changes.get("_lines", []))
    return change_request_card(ChangeRequestView(
        no=_request_no(ctx.session, cr), title=case.title, requester=cr.requested_by, lead=case.lead_open_id,
        kind=cr.changes["kind"], lines=lines, reason=cr.reason, retro_note=cr.retro_note, status=cr.status,
        approve=ActionValue(CHANGE_APPROVE, case_id=case.id, row_id=cr.id),
        reject=ActionValue(CHANGE_REJECT, case_id=case.id, row_id=cr.id),
        new_version=new_version or cr.changes.get("_version", 0), decision_note=cr.decision_note or ""))


def _decidable(ctx: Ctx, value: ActionValue) -> tuple[Case, ChangeRequest | None, CallbackAnswer | None]:
    case = load_case(ctx, value.case_id)
    cr = ctx.session.scalar(select(ChangeRequest).where(
        ChangeRequest.id == (value.row_id or 0), ChangeRequest.case_id == case.id,
        ChangeRequest.tenant_key == case.tenant_key, ChangeRequest.chat_id == case.chat_id))
    if cr is None:
        raise UserError(texts.CHANGE_NOT_FOUND)
    if cr.status != ChangeStatus.PENDING:  # a second click or a stale card: one effect only
        return case, None, _already(ctx, case, cr)
    require_step(case, Step.EXECUTION)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    return case, cr, None


def _already(ctx: Ctx, case: Case, cr: ChangeRequest) -> CallbackAnswer:
    return CallbackAnswer(toast=texts.CHANGE_ALREADY.format(status=texts.CHANGE_STATUS[cr.status][0]),
                          toast_type="info", card=_request_card(ctx, case, cr))


def _decision_note(event: CardAction, key: str, field: str) -> str:
    """The lead's note on a decision; an over-long one is refused (the form keeps what was typed)."""
    note = str((event.form_value or {}).get(key) or "").strip()
    if problem := first_too_long({key: note}, {key: (field, DECISION_NOTE_LIMIT)}):
        raise UserError(problem)
    return note


def _decide(ctx: Ctx, event: CardAction, value: ActionValue, status: ChangeStatus
            ) -> tuple[Case, ChangeRequest, list[str], str] | CallbackAnswer:
    """The change request a decision is about, what it changes (as it stood before) and the lead's
    note, claimed for `status`; or the answer to a click that decides nothing (already decided, or
    the other of two concurrent clicks)."""
    case, cr, done = _decidable(ctx, value)
    if done:
        return done
    assert cr is not None
    lines = _change_lines(ctx, case, cr)
    key, field = ("approve_note", texts.FIELD_APPROVE_NOTE) if status == ChangeStatus.APPROVED else (
        "reject_note", texts.FIELD_REJECT_NOTE)
    note = _decision_note(event, key, field)
    return _claim(ctx, case, cr, status, note) or (case, cr, lines, note)


def _claim(ctx: Ctx, case: Case, cr: ChangeRequest, status: ChangeStatus, note: str) -> CallbackAnswer | None:
    """Compare-and-set pending → status: of two concurrent clicks (approve/approve, approve/reject)
    exactly one decides; the other is answered like a second click. (If the handler then fails,
    the dispatcher rolls this back with the rest.)"""
    won = ctx.session.execute(update(ChangeRequest).where(ChangeRequest.id == cr.id,
                                                          ChangeRequest.status == ChangeStatus.PENDING)
                              .values(status=status, decided_by=ctx.actor, decided_at=ctx.now, decision_note=note)
                              .execution_options(synchronize_session=False)).rowcount
    ctx.session.refresh(cr)
    return None if won else _already(ctx, case, cr)


def _note_suffix(note: str) -> str:
    return ("\n" + texts.CHANGE_NOTICE_NOTE.format(note=inert(note))) if note else ""


@router.action(CHANGE_REJECT)
def reject_change(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    decided = _decide(ctx, event, value, ChangeStatus.REJECTED)
    if isinstance(decided, CallbackAnswer):
        return decided
    case, cr, lines, note = decided
    cr.changes = {**cr.changes, "_lines": lines}
    no = _request_no(ctx.session, cr)
    audit(ctx, case, "change.reject", f"#{no} {cr.reason}" + (f" · {note}" if note else ""))
    ctx.send(outbox.SendText(texts.CHANGE_REJECTED_NOTICE.format(
        who=mention(cr.requested_by), no=no,
        summary=inert(_summary_text(ctx, case, cr))) + _note_suffix(note)))
    return CallbackAnswer(toast=texts.CHANGE_REJECTED.format(no=no), card=_request_card(ctx, case, cr))


def _apply_change(ctx: Ctx, case: Case, cr: ChangeRequest) -> set[str]:
    """Carry the change out on the tasks; returns the owners concerned."""
    c = cr.changes
    if c["kind"] == "add":  # requests filed before starts were dropped from the form still carry one
        due = datetime.fromisoformat(c["due"])
        start = datetime.fromisoformat(c["start"]) if "start" in c else ctx.now
        _check_dates(start, due, ctx.now)
        dept = department_of(ctx.session, case, c["owner"])
        ctx.session.add(Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                             seq=next_task_seq(ctx.session, case), content=c["content"],
                             owner_open_id=c["owner"], department_id=dept.id if dept else None, start_at=start,
                             due_at=due, delivery_standard=c["standard"], updated_at=ctx.now))
        return {c["owner"]}
    task = get_task(ctx.session, case, c["task_id"])
    if task is None or task.dropped or task.status == TaskStatus.DONE:
        raise ValueError(texts.CHANGE_NEED_TASK if task is None or task.dropped
                         else texts.CHANGE_TASK_DONE.format(seq=task.seq))
    concerned = {task.owner_open_id}
    if c["kind"] == "drop":
        task.dropped = True
    else:
        start = datetime.fromisoformat(c["start"]) if "start" in c else task.start_at
        due = datetime.fromisoformat(c["due"]) if "due" in c else task.due_at
        _check_dates(start, due, ctx.now)
        task.start_at, task.due_at = start, due
        if "owner" in c:
            task.owner_open_id = c["owner"]
            concerned.add(c["owner"])
    task.updated_at = ctx.now
    return concerned


@router.action(CHANGE_APPROVE)
def approve_change(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    decided = _decide(ctx, event, value, ChangeStatus.APPROVED)
    if isinstance(decided, CallbackAnswer):
        return decided
    case, cr, lines, note = decided
    moved = get_task(ctx.session, case, cr.changes.get("task_id")) if cr.changes["kind"] == "edit" else None
    before = (moved.start_at, moved.due_at) if moved else None
    try:
        concerned = _apply_change(ctx, case, cr)
    except ValueError as exc:
        raise UserError(texts.CHANGE_NOW_INVALID.format(problem=str(exc))) from exc
    ctx.session.flush()
    dependents: list[str] = []
    if moved is not None and before is not None and before[1] != moved.due_at:
        dependents, owners = _dependent_lines(ctx, case, moved)   # told in the same card, by name, once
        concerned -= owners
    state = repository.artifact_state(ctx.session, case, "plan")
    version = (repository.plan_version(ctx.session, case) or 1) + 1
    state.version = version
    ctx.session.add(PlanVersion(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, version=version,
                                snapshot=plan_snapshot(ctx.session, case), reason=cr.reason,
                                change_request_id=cr.id, published_by=ctx.actor, published_at=ctx.now))
    cr.changes = {**cr.changes, "_lines": lines, "_version": version}
    feishu_tasks.touch(ctx, case)  # dates, owner, new and dropped tasks reach 飞书任务
    feishu_board.touch(ctx, case)  # … and the board
    no = _request_no(ctx.session, cr)
    audit(ctx, case, "change.approve", f"#{no} → v{version} {cr.reason}" + (f" · {note}" if note else ""))
    # the requester hears the decision by name on the new version's card (one message, it notifies)
    requester = cr.requested_by if cr.requested_by != ctx.actor else ""
    ctx.send(outbox.SendCard(diff_card_for(ctx.session, case, version, no, cr, ctx.tz,
                                           sorted(concerned - {requester}), dependents, requester=requester)))
    case_card.refresh(ctx, case)
    return CallbackAnswer(toast=texts.CHANGE_APPROVED.format(no=no, version=version),
                          card=_request_card(ctx, case, cr, version))


def diff_lines(base: dict, now: dict, tz: ZoneInfo) -> list[str]:
    """Per task, what differs between two plan snapshots (markup, user text escaped)."""
    old = {t["id"]: t for t in base.get("tasks", [])}
    out = []
    for t in now.get("tasks", []):
        label = f"#{t['seq']} {kit.esc(t['content'])}"
        before = old.get(t["id"])
        if before is None:
            if not t["dropped"]:
                out.append(texts.DIFF_LINE.format(seq=t["seq"], content=kit.esc(t["content"]),
                                                  changes=texts.DIFF_ADDED))
            continue
        if t["dropped"] and not before.get("dropped"):
            out.append(f"{label}：{texts.DIFF_DROPPED}")
            continue
        parts = []
        for key, col in (("start", texts.COL_START), ("due", texts.COL_DUE)):
            if t[key] != before[key]:
                parts.append(texts.DIFF_FIELD.format(field=col, old=fmt(datetime.fromisoformat(before[key]), tz),
                                                     new=fmt(datetime.fromisoformat(t[key]), tz)))
        if t["owner"] != before["owner"]:
            parts.append(texts.DIFF_OWNER.format(old=kit.at(before["owner"]), new=kit.at(t["owner"])))
        if parts:
            out.append(f"{label}：{'；'.join(parts)}")
    return out


def diff_card_for(session: Session, case: Case, version: int, no: int, cr: ChangeRequest, tz: ZoneInfo,
                  notify: list[str], dependents: list[str] | None = None, requester: str = "") -> dict:
    lines = diff_lines(baseline(session, case), plan_snapshot(session, case), tz)
    return plan_diff_card(PlanDiffView(title=case.title, version=version, no=no, lines=tuple(lines), reason=cr.reason,
                                       retro_note=cr.retro_note, notify=tuple(notify),
                                       decision_note=cr.decision_note or "", dependents=tuple(dependents or ()),
                                       requester=requester))


# ---------------------------------------------------------------- closing execution
@router.action(EXEC_CLOSE_OPEN)
def open_close(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.EXECUTION)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    ctx.send(outbox.SendCard(_close_card(ctx, case)))
    return CallbackAnswer(toast=texts.BTN_CLOSE_EXECUTION)


def _close_card(ctx: Ctx, case: Case, typed: str = "") -> dict:
    n = sum(1 for t in tasks_of(ctx.session, case) if t.status != TaskStatus.DONE)
    return close_card(CloseView(title=case.title, open_tasks=n, submit=ActionValue(EXEC_CLOSE, case_id=case.id),
                                typed_reason=typed))


@router.action(EXEC_CLOSE)
def close_execution(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step > Step.EXECUTION:
        return CallbackAnswer(toast=texts.EXEC_ALREADY_CLOSED, toast_type="info")
    require_step(case, Step.EXECUTION)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    reason = str((event.form_value or {}).get("reason") or "").strip()
    if not reason:
        raise UserError(texts.EXEC_CLOSE_NEED_REASON, card=_close_card(ctx, case))
    if problem := first_too_long({"reason": reason}, {"reason": (texts.FIELD_CLOSE_REASON, CLOSE_REASON_LIMIT)}):
        raise UserError(problem, card=_close_card(ctx, case, reason))
    repository.artifact_state(ctx.session, case, "execution").archived_at = ctx.now
    audit(ctx, case, "execution.close", reason)
    transition(ctx, case, CloseExecution(reason), reason=reason)   # the step-6 case card says why
    return CallbackAnswer(toast=texts.EXEC_CLOSED.format(reason=reason[:40]),
                          card=tracking_card_for(ctx.session, case, ctx.now, ctx.tz))


# ---------------------------------------------------------------- Markdown export (/导出 5)
def export_tracking(session: Session, case: Case, tz: ZoneInfo) -> str | None:
    if case.step < Step.EXECUTION:
        return None
    # the export has no clock: show the table as of the end of execution, or of the latest change
    tasks = tasks_of(session, case)
    now = (case.closed_at or case.step_entered_at) if case.step > Step.EXECUTION else max(
        [case.updated_at] + [t.updated_at for t in tasks])
    view = tracking_view(session, case, now, tz)
    name = people.namer(session, case.tenant_key, [t.owner for t in view.tasks] + [r.owner for r in view.risks])
    lagging = sum(1 for t in view.tasks if t.lagging)
    done = sum(1 for t in view.tasks if t.status == TaskStatus.DONE)
    # the baseline (plan version 1) beside the current plan, as the card says it
    base_due = {t["id"]: fmt(datetime.fromisoformat(t["due"]), tz)
                for t in baseline(session, case).get("tasks", []) if t.get("due")}
    late = view.baseline_late
    versus = (texts.TRACK_BASELINE_LATE.format(n=len(late), seqs="、".join(f"#{s}" for s in late)) if late
              else texts.EXP_TRACK_BASELINE_OK if base_due else "")
    return "\n".join([
        f"# {texts.OUTPUTS[Step.EXECUTION]}", f"「{case.title}」#{case.seq}",
        texts.EXP_TRACK_AT.format(when=fmt(now, tz), done=done, total=len(view.tasks), lagging=lagging),
        *([versus] if versus else []), "",
        texts.EXP_TRACK_TASKS,
        md_table([texts.COL_TASK, texts.COL_OWNER, texts.COL_STATUS_T, texts.COL_PROGRESS, texts.COL_DUE,
                  texts.COL_BASELINE_DUE, texts.COL_LAG_REASON, texts.COL_ADJUSTMENT],
                 [[f"#{t.seq} {t.content}", name(t.owner),
                   texts.TASK_STATUS_LABELS[t.status] + (f" · {texts.LAGGING_TAG}" if t.lagging else ""),
                   f"{t.progress}%", t.due, base_due.get(t.task_id, texts.EXP_TRACK_NOT_IN_BASELINE),
                   t.lag_reason, t.adjustment] for t in view.tasks]), "",
        texts.EXP_TRACK_RISKS,
        md_table([texts.COL_RISK, texts.COL_LIKELIHOOD, texts.COL_IMPACT, texts.COL_RESPONSE, texts.COL_OWNER],
                 [[r.risk, texts.LEVEL_LABELS[r.likelihood], texts.LEVEL_LABELS[r.impact], r.response, name(r.owner)]
                  for r in view.risks])])


router.exporter(Step.EXECUTION)(export_tracking)


# ---------------------------------------------------------------- 飞书任务 (bot.sync_tasks): a change made there
def apply_feishu_change(registry: Router, session: Session, case: Case, task: Task, done: bool, note: str,
                        now: datetime) -> datetime:
    """A task completed (or re-opened) in 飞书任务 is recorded like a card update (a TaskUpdate, the
    audit trail, lag alerts, the case card, step 6 when it was the last), by 「飞书任务」. A task that
    lagged with no 滞后原因 gets the question in the group rather than closing silently."""
    ctx = Ctx(session=session, now=now, tz=ZoneInfo(case.timezone), tenant_key=case.tenant_key,
              chat_id=case.chat_id, actor="feishu", event_id=f"ftask:{task.id}:{now.isoformat()}", registry=registry)
    ask = done and is_lagging(task, now) and not task.lag_reason
    progress = 100 if done else _last_open_progress(session, task)
    _apply(ctx, case, task, TaskStatus.DONE if done else TaskStatus.DOING, progress,
           {"lag_reason": task.lag_reason, "adjustment": task.adjustment})
    audit(ctx, case, "ftask.remote", note or (texts.AUDIT_FTASK_DONE if done else texts.AUDIT_FTASK_REOPEN)
          .format(seq=task.seq))
    words = {"owner": mention(task.owner_open_id), "seq": task.seq, "content": inert(task.content[:60]),
             "due": fmt(task.due_at, ctx.tz), "progress": progress}
    if ask:
        ctx.send(outbox.SendText(texts.FTASK_NEED_REASON.format(**words)))
    elif not done:
        ctx.send(outbox.SendText(texts.FTASK_REOPENED.format(**words)))
    if not _maybe_finish(ctx, case):
        _alert_new_lags(ctx, case)
        case_card.refresh(ctx, case)
    outbox.enqueue_ops(session, tenant_key=case.tenant_key, chat_id=case.chat_id, key=ctx.event_id, now=now,
                       ops=ctx.ops, case_id=case.id)
    return task.updated_at


def _last_open_progress(session: Session, task: Task) -> int:
    """Re-opened: the last completion reported below 100 %, else 0."""
    last = session.scalar(select(TaskUpdate.progress).where(TaskUpdate.task_id == task.id, TaskUpdate.progress < 100)
                          .order_by(TaskUpdate.id.desc()).limit(1))
    return int(last or 0)


# ---------------------------------------------------------------- 多维表格 board (bot.sync_board): an edit made there
_STATUS_BY_LABEL = {label: code for code, label in texts.TASK_STATUS_LABELS.items()}


def apply_board_edit(registry: Router, session: Session, case: Case, task_id: int, editor: str,
                     remote: dict, now: datetime) -> str | None:
    """An edit of 状态 / 完成率 / 滞后原因 / 调整措施 in the board goes through a card update's checks
    (the owner edits their own task, the lead any; a lagging task needs a reason) and is recorded
    as one, by the person who edited the record. Returns None when applied, else why it was not."""
    task = get_task(session, case, task_id)
    if task is None or task.dropped or case.step != Step.EXECUTION or case.status != CaseStatus.ACTIVE:
        return texts.TASK_NOT_FOUND
    if editor not in (task.owner_open_id, case.lead_open_id):
        return texts.BOARD_WHY_NOT_OWNER
    ctx = Ctx(session=session, now=now, tz=ZoneInfo(case.timezone), tenant_key=case.tenant_key,
              chat_id=case.chat_id, actor=editor, event_id=f"board:{task.id}:{now.isoformat()}", registry=registry)
    label = str(remote.get("状态") or "")
    typed = {"status": str(_STATUS_BY_LABEL.get(label, label)), "progress": str(remote.get("完成率", "")),
             "lag_reason": str(remote.get("滞后原因") or "").strip(),
             "adjustment": str(remote.get("调整措施") or "").strip()}
    try:
        status, progress = _validate(task, typed, now)
    except ValueError as exc:
        return str(exc)
    _apply(ctx, case, task, status, progress, typed)
    audit(ctx, case, "board.edit", texts.AUDIT_BOARD_EDIT.format(seq=task.seq))
    if not _maybe_finish(ctx, case):
        _alert_new_lags(ctx, case)
        case_card.refresh(ctx, case)
    outbox.enqueue_ops(session, tenant_key=case.tenant_key, chat_id=case.chat_id, key=ctx.event_id, now=now,
                       ops=ctx.ops, case_id=case.id)
    return None


def rehearsal(session: Session) -> list[CardAction]:
    """The clicks of the case in step 5 changed last (its 《进度跟踪表》, the update form, a progress
    update of its first task), for `Dispatcher.rehearse`: the clicks' process runs them when it
    starts, in transactions it rolls back, so the first real clicks find everything they run warm."""
    case = session.scalar(select(Case).where(Case.status == CaseStatus.ACTIVE, Case.step == Step.EXECUTION)
                          .order_by(Case.updated_at.desc()).limit(1))
    if case is None:
        return []
    card = session.scalar(select(PostedCard.message_id).where(
        PostedCard.case_id == case.id, PostedCard.tenant_key == case.tenant_key,
        PostedCard.private_for.is_(None)).order_by(PostedCard.id.desc()).limit(1)) or ""

    def click(n: int, actor: str, **kw) -> CardAction:
        return CardAction(header=Header(event_id=f"rehearsal-{n}", event_type="card.action.trigger",
                                        tenant_key=case.tenant_key, app_id="", create_time_ms=0),
                          operator_open_id=actor, token="", tag="button", chat_id=case.chat_id, message_id=card, **kw)

    clicks = [click(1, case.lead_open_id, name="", value={"a": TRACK_SHOW, "c": case.id})]
    task = next(iter(tasks_of(session, case)), None)
    if task is not None:
        clicks.append(click(2, task.owner_open_id, name="", value={"a": TRACK_OPEN, "c": case.id}))
        name = to_name(ActionValue(TRACK_UPDATE, case_id=case.id, row_id=task.id, version=task.update_count))
        # a lag reason and an adjustment too: a lagging task's update is refused without them
        clicks.append(click(3, task.owner_open_id, name=name, value={}, form_value={
            f"s{task.id}": TaskStatus.DOING, f"p{task.id}": str(task.progress % 99 + 1),
            f"r{task.id}": "-", f"a{task.id}": "-"}))
    return clicks


router.rehearsals.append(rehearsal)
