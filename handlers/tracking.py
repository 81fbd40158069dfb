"""Step 5 — 执行跟踪与动态调整 → 《进度跟踪表》.

Owners update their own tasks (the lead any task) from update cards; every update is a
TaskUpdate row (the standup reads who answered from them). Lagging tasks (bot.lagging) come
first; the lead is @mentioned once per task that newly lags (Task.lag_notified_at).

API for other modules (reminders, standup):
  * tracking_card_for(session, case, now, tz) -> dict   the 《进度跟踪表》 card
  * update_card_for(session, case, actor, now, tz) -> dict | None   an owner's update form
  * new_lag_ops(session, case, now, tz) -> list[Op]     lead alerts for newly lagging tasks
  * TRACK_OPEN: button action that sends the clicking owner's update form (lead: all tasks)
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.envelope import CardAction
from bot.lagging import BLOCKED, DONE, STATUSES, is_lagging, lag_reason_required
from bot.models import Case, Task, TaskUpdate
from bot.routing import CallbackAnswer, Ctx, Router, UserError
from bot.workflow import Blocked, Step, advance
from cards import kit
from cards.tracking import RiskRow, TaskRow, TrackingView, UpdateItem, UpdateView, field_names, tracking_card, \
    update_card
from handlers import case_card
from handlers.plan import audit, fmt, get_task, load_case, require_step, risks_of, tasks_of

router = Router()

TRACK_OPEN = "track.open"        # send the clicking owner's update form
TRACK_UPDATE = "track.update"    # submit one task's update (row_id = task id)
TRACK_SHOW = "track.show"        # post the 《进度跟踪表》


# ---------------------------------------------------------------- views
def _row(task: Task, now: datetime, tz: ZoneInfo) -> TaskRow:
    return TaskRow(task_id=task.id, seq=task.seq, content=task.content, owner=task.owner_open_id, status=task.status,
                   progress=task.progress, due=fmt(task.due_at, tz), lag_reason=task.lag_reason,
                   adjustment=task.adjustment, lagging=is_lagging(task, now))


def _ordered(tasks: list[Task], now: datetime) -> list[Task]:
    """Lagging first, then open, then done; by seq within each group."""
    return sorted(tasks, key=lambda t: (not is_lagging(t, now), t.status == DONE, t.seq))


def track_buttons(case: Case) -> tuple[tuple[str, ActionValue, bool], ...]:
    return ((texts.BTN_UPDATE_MINE, ActionValue(TRACK_OPEN, case_id=case.id), True),)


def tracking_view(session: Session, case: Case, now: datetime, tz: ZoneInfo) -> TrackingView:
    tasks = _ordered(tasks_of(session, case), now)
    risks = sorted(risks_of(session, case), key=lambda r: r.status != "open")
    archived = case.step != Step.EXECUTION
    return TrackingView(
        case_id=case.id, case_version=case.version, title=case.title, when=fmt(now, tz),
        tasks=tuple(_row(t, now, tz) for t in tasks),
        risks=tuple(RiskRow(risk=r.risk, likelihood=r.likelihood, impact=r.impact, response=r.response,
                            owner=r.owner_open_id, open=r.status == "open") for r in risks),
        buttons=() if archived else track_buttons(case), archived=archived)


def tracking_card_for(session: Session, case: Case, now: datetime, tz: ZoneInfo) -> dict:
    """《进度跟踪表》 for a case: lagging first, a completion chart, risks below."""
    return tracking_card(tracking_view(session, case, now, tz))


def _open_tasks_for(session: Session, case: Case, actor: str, now: datetime) -> list[Task]:
    tasks = [t for t in tasks_of(session, case) if t.status != DONE]
    if actor != case.lead_open_id:
        tasks = [t for t in tasks if t.owner_open_id == actor]
    return _ordered(tasks, now)


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
            row=_row(t, now, tz), submit=ActionValue(TRACK_UPDATE, case_id=case.id, row_id=t.id),
            status=mine.get("status", t.status), progress=mine.get("progress", str(t.progress)),
            lag_reason=mine.get("lag_reason", t.lag_reason), adjustment=mine.get("adjustment", t.adjustment)))
    return update_card(UpdateView(title=case.title, who=actor, items=tuple(items)))


# ---------------------------------------------------------------- lag alerts
def new_lag_ops(session: Session, case: Case, now: datetime, tz: ZoneInfo) -> list[outbox.Op]:
    """Mention the lead once for every task that newly lags; a task that recovers may alert again."""
    ops: list[outbox.Op] = []
    if case.step != Step.EXECUTION:
        return ops
    for task in tasks_of(session, case):
        lagging = is_lagging(task, now)
        if lagging and task.lag_notified_at is None:
            task.lag_notified_at = now
            ops.append(outbox.SendText(texts.LAG_ALERT.format(
                lead=f'<at user_id="{case.lead_open_id}"></at>', seq=task.seq, content=task.content,
                owner=f'<at user_id="{task.owner_open_id}"></at>', status=task.status, progress=task.progress,
                due=fmt(task.due_at, tz))))
        elif not lagging and task.lag_notified_at is not None:
            task.lag_notified_at = None
    return ops


def _alert_new_lags(ctx: Ctx, case: Case) -> None:
    for op in new_lag_ops(ctx.session, case, ctx.now, ctx.tz):
        ctx.send(op)


# ---------------------------------------------------------------- actions
@router.action(TRACK_SHOW)
def show(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step < Step.EXECUTION:
        require_step(case, Step.EXECUTION)
    _alert_new_lags(ctx, case)
    ctx.send(outbox.SendCard(tracking_card_for(ctx.session, case, ctx.now, ctx.tz)))
    return CallbackAnswer(toast=texts.OUTPUTS[5])


@router.action(TRACK_OPEN)
def open_update(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.EXECUTION)
    card = update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz)
    if card is None:
        raise UserError(texts.NO_OPEN_TASKS_FOR_YOU, kind="info")
    ctx.send(outbox.SendCard(card))
    return CallbackAnswer(toast=texts.UPDATE_FORM_SENT)


def _read_form(form: dict, task_id: int) -> dict[str, str]:
    s, p, r, a = field_names(task_id)
    get = lambda k: str(form.get(k) or "").strip()  # noqa: E731
    return {"status": get(s), "progress": get(p), "lag_reason": get(r), "adjustment": get(a)}


def _validate(task: Task, typed: dict[str, str], now: datetime) -> tuple[str, int]:
    if typed["status"] not in STATUSES:
        raise ValueError(texts.BAD_STATUS)
    raw = typed["progress"].rstrip("%").strip()
    if not raw.isdigit() or not 0 <= int(raw) <= 100:
        raise ValueError(texts.BAD_PROGRESS.format(value=typed["progress"][:10]))
    status, progress = typed["status"], int(raw)
    if status == DONE:
        progress = 100
    elif progress == 100 and status != BLOCKED:
        status = DONE
    if lag_reason_required(task, now, status=status, progress=progress) and not (
            typed["lag_reason"] and typed["adjustment"]):
        raise ValueError(texts.LAG_FIELDS_REQUIRED.format(seq=task.seq, content=task.content))
    return status, progress


@router.action(TRACK_UPDATE)
def submit_update(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    require_step(case, Step.EXECUTION)
    task = get_task(ctx.session, case, value.row_id)
    if task is None or task.dropped:
        raise UserError(texts.TASK_NOT_FOUND)
    if ctx.actor not in (task.owner_open_id, case.lead_open_id):
        raise UserError(texts.NOT_TASK_OWNER.format(seq=task.seq, content=task.content))
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
    toast = texts.TASK_UPDATED.format(seq=task.seq, status=status, progress=progress)
    if _maybe_finish(ctx, case):
        return CallbackAnswer(toast=toast)
    _alert_new_lags(ctx, case)
    case_card.refresh(ctx, case)
    card = update_card_for(ctx.session, case, ctx.actor, ctx.now, ctx.tz)
    return CallbackAnswer(toast=toast, card=card or update_card(UpdateView(case.title, ctx.actor, ())))


def _last_update_by(session: Session, task: Task, actor: str) -> bool:
    last = session.scalar(select(TaskUpdate).where(TaskUpdate.task_id == task.id, TaskUpdate.case_id == task.case_id)
                          .order_by(TaskUpdate.id.desc()).limit(1))
    return last is not None and last.actor_open_id == actor


def _apply(ctx: Ctx, case: Case, task: Task, status: str, progress: int, typed: dict[str, str]) -> None:
    task.status, task.progress = status, progress
    task.lag_reason, task.adjustment = typed["lag_reason"], typed["adjustment"]
    task.done_at = (task.done_at or ctx.now) if status == DONE else None
    task.updated_at = ctx.now
    ctx.session.add(TaskUpdate(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, task_id=task.id,
                               actor_open_id=ctx.actor, status=status, progress=progress,
                               lag_reason=typed["lag_reason"], adjustment=typed["adjustment"],
                               standup_day=ctx.now.astimezone(ctx.tz).date(), at=ctx.now))
    audit(ctx, case, "task.update", f"#{task.seq} {status} {progress}% {typed['lag_reason']}".strip())


def _maybe_finish(ctx: Ctx, case: Case) -> bool:
    """Every task done: the case moves on to the retrospective."""
    ctx.session.flush()
    try:
        step = advance(Step(case.step), repository.facts(ctx.session, case))
    except Blocked:
        return False
    repository.enter_step(ctx.session, case, step, now=ctx.now, reason=texts.ALL_TASKS_DONE)
    ctx.send(outbox.SendText(texts.ALL_TASKS_DONE))
    case_card.announce_step(ctx, case, Step.EXECUTION)
    return True


# ---------------------------------------------------------------- case card in step 5
def _summary(ctx: Ctx, case: Case) -> str:
    tasks = tasks_of(ctx.session, case)
    lagging = [t for t in tasks if is_lagging(t, ctx.now)]
    done = sum(1 for t in tasks if t.status == DONE)
    line = texts.CASE_SUMMARY_5.format(done=done, total=len(tasks), lagging=len(lagging))
    if lagging:
        line += "\n" + "\n".join(texts.CASE_SUMMARY_5_LAG.format(seq=t.seq, content=kit.esc(t.content),
                                                               owner=kit.at(t.owner_open_id), progress=t.progress)
                                 for t in lagging[:5])
    return line


case_card.STEP_BUTTONS[Step.EXECUTION] = [(texts.BTN_SHOW_TRACKING, TRACK_SHOW, True),
                                          (texts.BTN_UPDATE_MINE, TRACK_OPEN, False)]
case_card.STEP_SUMMARY[Step.EXECUTION] = _summary
case_card.STEP_STATE[Step.EXECUTION] = lambda ctx, case: (
    "lagging" if any(is_lagging(t, ctx.now) for t in tasks_of(ctx.session, case)) else "info")
