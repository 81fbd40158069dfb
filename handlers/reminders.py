"""What the bot's clock shows in the group: daily standup (每日站会), key-node checks (进度确认会),
task reminders, sign-off nudges, the `/站会` command and the buttons of those cards.

The planning tick (handlers.jobs) keeps the outbox's reminder rows equal to what the database says
is due; the outbox sender delivers them. What a reminder shows is decided here, by a renderer per
kind, at delivery time — so a reminder always shows the current state, and a reminder whose reason
went away (task done, deadline moved, standup paused) is cancelled instead of sent.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot import reminders as plan
from bot.actions import ActionValue
from bot.domain import CaseStatus, TaskStatus
from bot.envelope import CardAction, MessageEvent
from bot.ids import number
from bot.lagging import is_lagging, working_seconds
from bot.models import Case, KeyNode, Member, Outbox, StandupReply, Task, TaskUpdate
from bot.routing import CallbackAnswer, CaseArchived, Ctx, Router, UserError
from bot.workdays import WorkCalendar, calendar_for
from bot.workflow import Step
from cards import reminders as cards
from cards.reminders import KEYNODE_OK, STANDUP_SAME, TaskLine
from handlers import people
from handlers.common import mention
from handlers.views import tracking_card_for

router = Router(Step.EXECUTION)
LATE_AFTER = timedelta(minutes=5)


def _policy(ctx: Ctx) -> plan.Policy:
    assert ctx.registry is not None and ctx.registry.policy is not None, "the composed Router carries the policy"
    return ctx.registry.policy


# ---------------------------------------------------------------- shared helpers
def _fmt(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).strftime("%m-%d %H:%M")


def when_text(dt: datetime, tz: ZoneInfo) -> str:
    """A day and clock time people read at once: 12月14日（周一）09:00."""
    local = dt.astimezone(tz)
    return texts.WHEN_DAY.format(m=local.month, d=local.day, weekday=texts.WEEKDAYS[local.weekday()],
                                 hhmm=local.strftime("%H:%M"))


def _case_of(session: Session, row: Outbox) -> Case | None:
    if row.case_id is None:
        return None
    case = repository.get_case(session, tenant_key=row.tenant_key, chat_id=row.chat_id, case_id=row.case_id)
    return case if case is not None and case.status == CaseStatus.ACTIVE else None


def _tasks(session: Session, case: Case) -> list[Task]:
    return list(session.scalars(select(Task).where(
        Task.case_id == case.id, Task.tenant_key == case.tenant_key, Task.chat_id == case.chat_id)
        .order_by(Task.seq, Task.id)))


def _open_tasks(session: Session, case: Case) -> list[Task]:
    return [t for t in _tasks(session, case) if t.status != TaskStatus.DONE and not t.dropped]


def _overdue_days(task: Task, now: datetime, cal: WorkCalendar, tz: ZoneInfo) -> int | None:
    if now < task.due_at:
        return None
    first = plan.overdue_slot(task.due_at, cal, tz).astimezone(tz).date()
    return cal.workdays_between(first, now.astimezone(tz).date())


def _line(task: Task, now: datetime, cal: WorkCalendar, tz: ZoneInfo) -> TaskLine:
    return TaskLine(owner_open_id=task.owner_open_id, content=task.content, due=_fmt(task.due_at, tz),
                    progress=int(task.progress or 0), lagging=is_lagging(task, now, cal, tz),
                    overdue_days=_overdue_days(task, now, cal, tz))


def _late(row: Outbox, now: datetime) -> bool:
    """Sent later than planned: its own time, or the time it had before it waited for working hours."""
    planned = (row.payload or {}).get(PLANNED_AT) if isinstance(row.payload, dict) else None
    due = datetime.fromisoformat(planned) if isinstance(planned, str) else row.due_at
    return now - due > LATE_AFTER


PLANNED_AT = "planned_at"   # payload key: a deferred reminder's original time


# ---------------------------------------------------------------- standup
def answered(session: Session, case: Case, day: date) -> set[str]:
    """Who answered the day's standup: 今日无变化, or any progress update that day."""
    said = set(session.scalars(select(StandupReply.open_id).where(
        StandupReply.case_id == case.id, StandupReply.tenant_key == case.tenant_key,
        StandupReply.chat_id == case.chat_id, StandupReply.day == day)))
    said |= set(session.scalars(select(TaskUpdate.actor_open_id).where(
        TaskUpdate.case_id == case.id, TaskUpdate.tenant_key == case.tenant_key,
        TaskUpdate.chat_id == case.chat_id, TaskUpdate.standup_day == day)))
    return said


def standup_view(session: Session, case: Case, day: date, now: datetime, policy: plan.Policy, *,
                 show_missing: bool = False, closed: bool = False, late: bool = False,
                 asked_at: datetime | None = None) -> cards.StandupView:
    """`asked_at`: when the standup went out — only the owners of tasks started by then were
    asked, and only they are listed, nudged and counted as missing (default: now)."""
    tz, cal = plan.case_tz(case), calendar_for(session, case.tenant_key)
    said = answered(session, case, day)
    by_owner: dict[str, list[TaskLine]] = {}
    escalate = []
    for task in _open_tasks(session, case):
        if task.start_at > (asked_at or now):
            continue  # not started (when asked): nothing to report, nobody to @mention
        line = _line(task, now, cal, tz)
        if line.overdue_days is None and task.due_at - (asked_at or now) <= policy.task_warn:
            line = replace(line, due_soon=True)   # the standup carries the due-soon warning
        by_owner.setdefault(task.owner_open_id, []).append(line)
        if line.overdue_days is not None and line.overdue_days >= policy.escalate_after_days:
            escalate.append(line)
    owners = tuple(cards.OwnerBlock(oid, tuple(lines), oid in said) for oid, lines in by_owner.items())
    return cards.StandupView(case_id=case.id, title=case.title, day=day, lead_open_id=case.lead_open_id,
                             owners=owners, escalate=tuple(escalate), escalate_days=policy.escalate_after_days,
                             show_missing=show_missing, closed=closed, late=late)


def _standup_live(session: Session, case: Case | None, key: str) -> bool:
    """The standup slot `key` is still what the case wants (step 5, running, same time, workday)."""
    if case is None or case.step != Step.EXECUTION or case.standup_paused:
        return False
    day, at = plan.parse_standup_key(key)
    return at == (plan.parse_hhmm(case.standup_time or "") or at) and \
        calendar_for(session, case.tenant_key).is_workday(day)


def _standup_row(session: Session, row: Outbox) -> Outbox | None:
    return session.scalar(select(Outbox).where(
        Outbox.tenant_key == row.tenant_key, Outbox.chat_id == row.chat_id, Outbox.kind == plan.STANDUP,
        Outbox.fire_key == row.fire_key))


def _sent_standup(session: Session, case: Case, day: date) -> Outbox | None:
    return session.scalar(select(Outbox).where(
        Outbox.tenant_key == case.tenant_key, Outbox.chat_id == case.chat_id, Outbox.kind == plan.STANDUP,
        Outbox.fire_key.startswith(f"{day.isoformat()}@"), Outbox.status == "sent"))


def _keep_nudge_after_late_standup(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> None:
    """A standup sent late keeps its nudge and its close: both move to the same distance from
    the moment it actually went out (a row this sender already claimed is put back as pending,
    so its claim is dropped and it goes out at the new time)."""
    nudge_at = now + policy.nudge_after
    close_at = max(row.due_at + policy.standup_window, nudge_at + (policy.standup_window - policy.nudge_after))
    for kind, due, stale in ((plan.STANDUP_NUDGE, nudge_at, close_at), (plan.STANDUP_CLOSE, close_at, None)):
        values: dict = {"status": "pending", "due_at": due, "claimed_by": None, "claimed_at": None}
        if stale is not None:
            values["stale_after"] = stale
        session.execute(update(Outbox).where(
            Outbox.tenant_key == row.tenant_key, Outbox.chat_id == row.chat_id, Outbox.kind == kind,
            Outbox.fire_key == row.fire_key, Outbox.status.in_(("pending", "sending")), Outbox.due_at < due)
            .values(**values).execution_options(synchronize_session=False))


def render_standup(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case = _case_of(session, row)
    if not _standup_live(session, case, row.fire_key):
        return None
    day = plan.parse_standup_key(row.fire_key)[0]
    view = standup_view(session, case, day, now, policy, late=_late(row, now))
    if not view.owners:
        return None  # every open task starts later: no standup today
    if _late(row, now):
        _keep_nudge_after_late_standup(session, row, now, policy)
    return [outbox.SendCard(cards.standup_card(view), view="standup", case_id=case.id)]


@router.card_view("standup")
def standup_now(ctx: Ctx, case: Case) -> dict | None:
    """The newest standup card as it should read now: a row turns ✅ the moment its owner
    answers (今日无变化 or a progress update), the footer lists who is still missing once
    nudged, and a closed standup says so."""
    standup = ctx.session.scalar(select(Outbox).where(
        Outbox.tenant_key == case.tenant_key, Outbox.chat_id == case.chat_id, Outbox.case_id == case.id,
        Outbox.kind == plan.STANDUP, Outbox.status == "sent").order_by(Outbox.sent_at.desc()).limit(1))
    if standup is None:
        return None
    done = {k for k, in ctx.session.execute(select(Outbox.kind).where(
        Outbox.tenant_key == case.tenant_key, Outbox.chat_id == case.chat_id, Outbox.fire_key == standup.fire_key,
        Outbox.kind.in_((plan.STANDUP_NUDGE, plan.STANDUP_CLOSE)), Outbox.status == "sent"))}
    day = plan.parse_standup_key(standup.fire_key)[0]
    closed = plan.STANDUP_CLOSE in done or case.step != Step.EXECUTION
    return cards.standup_card(standup_view(ctx.session, case, day, ctx.now, _policy(ctx), late=standup.late,
                                           show_missing=plan.STANDUP_NUDGE in done, closed=closed,
                                           asked_at=standup.sent_at))


def render_nudge(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case, standup = _case_of(session, row), _standup_row(session, row)
    if (case is None or case.step != Step.EXECUTION or standup is None or standup.status != "sent"
            or not standup.message_id):
        return None
    day = plan.parse_standup_key(row.fire_key)[0]
    view = standup_view(session, case, day, now, policy, show_missing=True, late=standup.late,
                        asked_at=standup.sent_at)
    missing = [b.open_id for b in view.owners if not b.answered]
    if not missing:
        return None  # all answered (a late standup moved this row to `nudge_after` after it)
    people = " ".join(mention(oid) for oid in missing)
    return [outbox.SendText(texts.STANDUP_NUDGE.format(people=people)),
            outbox.PatchCard(standup.message_id, cards.standup_card(view))]


def render_close(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case, standup = _case_of(session, row), _standup_row(session, row)
    if (case is None or case.step != Step.EXECUTION or standup is None
            or standup.status not in ("sent", "skipped_stale")):
        return None
    ops: list[outbox.Op] = []
    if standup.status == "sent" and standup.message_id:
        day = plan.parse_standup_key(row.fire_key)[0]
        view = standup_view(session, case, day, now, policy, closed=True, late=standup.late,
                            asked_at=standup.sent_at)
        ops.append(outbox.PatchCard(standup.message_id, cards.standup_card(view)))
    ops.append(outbox.SendCard(tracking_card_for(session, case, now, plan.case_tz(case), late=_late(row, now)),
                               view="tracking", case_id=case.id))
    return ops


# ---------------------------------------------------------------- key nodes
def _node_for(session: Session, case: Case, key: str) -> tuple[KeyNode, int] | None:
    node_part, _, rest = key.partition(":")
    hours, _, at = rest.partition("h@")
    node_id, offset = number(node_part), number(hours)
    if node_id is None or offset is None:
        return None
    node = session.scalar(select(KeyNode).where(KeyNode.id == node_id, KeyNode.case_id == case.id,
                                                KeyNode.tenant_key == case.tenant_key,
                                                KeyNode.chat_id == case.chat_id))
    if node is None or plan.minute_key(node.at) != at or offset not in plan.keynode_offsets(case):
        return None
    return node, offset


def keynode_view(session: Session, case: Case, node: KeyNode, hours: int, now: datetime, *,
                 late: bool = False, confirmed_by: str | None = None) -> cards.KeyNodeView:
    tz, cal = plan.case_tz(case), calendar_for(session, case.tenant_key)
    due = [t for t in _open_tasks(session, case) if t.due_at <= node.at]
    return cards.KeyNodeView(
        case_id=case.id, node_id=node.id, node_name=node.name, node_at=_fmt(node.at, tz), hours_before=hours,
        left_seconds=int((node.at - now).total_seconds()), lead_open_id=case.lead_open_id,
        open_tasks=tuple(_line(t, now, cal, tz) for t in due), confirmed_by=confirmed_by,
        confirmed_at=_fmt(now, tz), late=late, work_left_seconds=int(working_seconds(now, node.at, cal, tz)))


def render_keynode(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case = _case_of(session, row)
    found = _node_for(session, case, row.fire_key) if case is not None and case.step == Step.EXECUTION else None
    if found is None:
        return None
    view = keynode_view(session, case, *found, now, late=_late(row, now))
    return [outbox.SendCard(cards.keynode_card(view))]


# ---------------------------------------------------------------- tasks
def _wait_for_working_hours(session: Session, case: Case, row: Outbox, now: datetime) -> bool:
    """Only standups and key-node checks go out outside working hours: a task or sign-off
    reminder that comes up late in the evening (the bot was down at its time) waits for the next
    working morning — its row moves there (the sender keeps a row whose time moved ahead) and is
    sent, marked late, or skipped as stale if it no longer matters by then."""
    tz, cal = plan.case_tz(case), calendar_for(session, case.tenant_key)
    if cal.in_hours(now, tz):
        return False
    later = cal.next_in_hours(now, tz)
    if row.kind == plan.OVERDUE and row.stale_after is not None:   # its day of relevance moves along
        row.stale_after = row.stale_after + (later - row.due_at)
    payload = dict(row.payload or {})
    payload.setdefault(PLANNED_AT, row.due_at.isoformat())
    row.payload, row.due_at = payload, later
    return True


def render_task_due(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case = _case_of(session, row)
    if case is None or case.step != Step.EXECUTION or _wait_for_working_hours(session, case, row, now):
        return None
    tz, cal = plan.case_tz(case), calendar_for(session, case.tenant_key)
    slot = row.fire_key.partition("@")[2]
    standup_at = None if case.standup_paused else plan.parse_hhmm(case.standup_time or "") or time(9, 30)
    tasks = [t for t in _open_tasks(session, case)
             if plan.minute_key(plan.task_due_slot(t.due_at, cal, tz, policy, standup_at, t.start_at)) == slot
             and t.due_at > now]
    if not tasks or _standup_carries(session, case, tasks, now, policy, standup_at):
        return None
    first = min(t.due_at for t in tasks)
    left = working_seconds(now, first, cal, tz) / 3600
    view = cards.TaskReminderView(case.id, "due", tuple(_line(t, now, cal, tz) for t in tasks),
                                  warn_hours=int(policy.task_warn.total_seconds() // 3600), late=_late(row, now),
                                  due_when=when_text(first, tz), left_hours=round(left))
    return [outbox.SendCard(cards.task_reminder_card(view))]


def _standup_carries(session: Session, case: Case, tasks: list[Task], now: datetime, policy: plan.Policy,
                     standup_at: time | None) -> bool:
    """This tick is the standup's and its card lists every one of these tasks, flagged as due
    soon: the group hears of them once, on the standup card."""
    local = now.astimezone(plan.case_tz(case))
    if standup_at is None or local.time().replace(second=0, microsecond=0) != standup_at:
        return False
    key = plan.standup_key(local.date(), standup_at)
    if not _standup_live(session, case, key):
        return False
    view = standup_view(session, case, local.date(), now, policy)
    listed = {(b.open_id, t.content) for b in view.owners for t in b.tasks if t.due_soon}
    return all((t.owner_open_id, t.content) in listed for t in tasks)


def _overdue_tasks(session: Session, case: Case, key: str, now: datetime, cal: WorkCalendar,
                   tz: ZoneInfo) -> list[Task]:
    kind, _, slot = key.partition("@")
    late = [t for t in _open_tasks(session, case) if t.due_at <= now]
    if kind == "over":  # became overdue in this slot
        return [t for t in late if plan.minute_key(plan.overdue_slot(t.due_at, cal, tz)) == slot]
    day = date.fromisoformat(slot)  # daily repeat (standup paused): overdue before that day
    return [t for t in late if plan.overdue_slot(t.due_at, cal, tz).astimezone(tz).date() < day]


def render_overdue(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case = _case_of(session, row)
    if case is None or case.step != Step.EXECUTION:
        return None
    if row.fire_key.startswith("daily@") and not case.standup_paused:
        return None  # the standup card carries the daily repeat
    if _wait_for_working_hours(session, case, row, now):
        return None
    tz, cal = plan.case_tz(case), calendar_for(session, case.tenant_key)
    tasks = _overdue_tasks(session, case, row.fire_key, now, cal, tz)
    if not tasks:
        return None
    view = cards.TaskReminderView(case.id, "overdue", tuple(_line(t, now, cal, tz) for t in tasks),
                                  late=_late(row, now), lead_open_id=case.lead_open_id,
                                  escalate_days=policy.escalate_after_days)
    return [outbox.SendCard(cards.task_reminder_card(view))]


# ---------------------------------------------------------------- sign-offs (steps 1 and 3)
def render_signoff(session: Session, row: Outbox, now: datetime, policy: plan.Policy) -> list[outbox.Op] | None:
    case = _case_of(session, row)
    if case is None or case.step not in plan.SIGNOFF_STEPS:
        return None
    if row.fire_key not in {p.tag for p in plan.pending_signoffs(session, case)}:
        return None
    if _wait_for_working_hours(session, case, row, now):
        return None
    missing = tuple(cards.MissingDept(d.name, d.contact_open_id if case.step == Step.REQUIREMENTS and d.contact_open_id
                                      else d.head_open_id, what)
                    for d, what in plan.missing_departments(session, case))
    output = texts.OUTPUTS[case.step]
    view = cards.SignoffNudgeView(step=case.step, output=output,
                                  hours=int(policy.signoff_after.total_seconds() // 3600), missing=missing,
                                  late=_late(row, now))
    return [outbox.SendCard(cards.signoff_nudge_card(view))]


# Reminders that fall due for a group in the same tick are one card (a quiet bot): the 24-hours-
# before-a-node moment brings the key-node check, tasks due soon and tasks overdue together.
BUNDLED = (plan.KEYNODE, plan.OVERDUE, plan.TASK_DUE, plan.SIGNOFF)


def merge_reminders(parts: list[list[outbox.Op]]) -> list[outbox.Op]:
    """The ops of several reminder rows as one message: their cards in one card (most urgent
    first: key node, overdue, due soon, sign-off), other ops after it."""
    cards_: list[dict] = []
    rest: list[outbox.Op] = []
    for ops in parts:
        for op in ops:
            if isinstance(op, outbox.SendCard) and not op.view and not op.pin and not op.reply_to:
                cards_.append(op.card)
            else:
                rest.append(op)
    if len(cards_) < 2:
        return [op for ops in parts for op in ops]
    return [outbox.SendCard(cards.bundle_card(cards_)), *rest]


BUNDLE = outbox.Bundle(kinds=frozenset(BUNDLED), merge=merge_reminders)


for _kind, _fn in ((plan.STANDUP, render_standup), (plan.STANDUP_NUDGE, render_nudge),
                   (plan.STANDUP_CLOSE, render_close), (plan.KEYNODE, render_keynode),
                   (plan.TASK_DUE, render_task_due), (plan.OVERDUE, render_overdue),
                   (plan.SIGNOFF, render_signoff)):
    router.renderer(_kind)(_fn)


# ---------------------------------------------------------------- card actions
def _load(ctx: Ctx, value: ActionValue) -> Case:
    case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                               case_id=value.case_id or 0)
    if case is None:
        raise UserError(texts.CASE_NOT_FOUND)
    if case.status != CaseStatus.ACTIVE:
        raise CaseArchived(texts.CASE_CLOSED)
    return case


@router.action(STANDUP_SAME)
def no_change(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _load(ctx, value)
    tz = plan.case_tz(case)
    today = ctx.now.astimezone(tz).date()
    try:
        day = date.fromisoformat(value.extra.get("d", ""))
    except ValueError as exc:
        raise UserError(texts.UNKNOWN_ACTION) from exc
    if day != today:
        raise UserError(texts.STANDUP_OLD.format(day=texts.MONTH_DAY.format(m=day.month, d=day.day)), kind="info")
    standup = _sent_standup(ctx.session, case, day)
    asked_at = standup.sent_at if standup is not None and standup.sent_at else ctx.now
    asked = standup_view(ctx.session, case, day, ctx.now, _policy(ctx), asked_at=asked_at)
    owners = {b.open_id for b in asked.owners}  # the people this card asked, nobody else
    if ctx.actor not in owners:
        raise UserError(_owner_names(ctx, owners), kind="info")
    toast = texts.STANDUP_REPLIED
    try:
        with ctx.session.begin_nested():
            ctx.session.add(StandupReply(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                         day=day, open_id=ctx.actor, at=ctx.now))
    except IntegrityError:
        toast = texts.STANDUP_ALREADY
    card = cards.standup_card(standup_view(ctx.session, case, day, ctx.now, _policy(ctx), asked_at=asked_at,
                                           late=bool(standup is not None and standup.late)))
    return CallbackAnswer(toast=toast, card=card)


def _owner_names(ctx: Ctx, owners: set[str]) -> str:
    if not owners:
        return texts.STANDUP_NOT_OWNER_NONE

    names = repository.names(ctx.session, tenant_key=ctx.tenant_key, open_ids=list(owners))
    roles = dict(ctx.session.execute(select(Member.open_id, Member.role).where(
        Member.tenant_key == ctx.tenant_key, Member.chat_id == ctx.chat_id, Member.open_id.in_(owners))).all())
    return texts.STANDUP_NOT_OWNER.format(owners="、".join(sorted(names.get(o) or roles.get(o) or o for o in owners)))


@router.action(KEYNODE_OK)
def keynode_ok(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _load(ctx, value)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    node = ctx.session.scalar(select(KeyNode).where(KeyNode.id == (value.row_id or 0), KeyNode.case_id == case.id,
                                                    KeyNode.tenant_key == case.tenant_key,
                                                    KeyNode.chat_id == case.chat_id))
    if node is None:
        raise UserError(texts.KEYNODE_GONE)
    asked = number(value.extra.get("h", "24"))
    hours = 24 if asked is None else asked
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action="keynode.confirm", detail=f"{node.name} {_fmt(node.at, plan.case_tz(case))}", now=ctx.now)
    view = keynode_view(ctx.session, case, node, hours, ctx.now, confirmed_by=ctx.actor)
    return CallbackAnswer(toast=texts.KEYNODE_CONFIRMED_TOAST.format(node=node.name),
                          card=cards.keynode_card(view))


# ---------------------------------------------------------------- /站会
@router.command(texts.CMD_STANDUP)
def standup_command(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if case is None:
        raise UserError(texts.NO_ACTIVE_CASE)
    verb, _, rest = args.strip().partition(" ")
    if not verb:
        ctx.send(outbox.SendText(_status(case)))
        return
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    if verb == texts.STANDUP_VERB_TIME:
        message = _set_time(ctx, case, rest)
    elif verb in (texts.STANDUP_VERB_PAUSE, texts.STANDUP_VERB_RESUME):
        message = _set_paused(ctx, case, verb == texts.STANDUP_VERB_PAUSE)
    else:
        raise UserError(texts.STANDUP_USAGE)
    plan.reconcile_case(ctx.session, case, ctx.now, _policy(ctx))
    ctx.send(outbox.SendText(message))


def _status(case: Case) -> str:
    state = (texts.STANDUP_STATE_PAUSED if case.standup_paused else
             texts.STANDUP_STATE_ON if case.step == Step.EXECUTION else texts.STANDUP_STATE_IDLE)
    return texts.STANDUP_STATUS.format(time=case.standup_time, tz=case.timezone, state=state)


def _set_time(ctx: Ctx, case: Case, raw: str) -> str:
    at = plan.parse_hhmm(raw)
    if at is None:
        raise UserError(texts.STANDUP_BAD_TIME.format(value=raw.strip()[:20]))
    case.standup_time, case.updated_at = at.strftime("%H:%M"), ctx.now
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action="standup.time", detail=case.standup_time, now=ctx.now)
    return texts.STANDUP_TIME_SET.format(time=case.standup_time, tz=case.timezone)


def _set_paused(ctx: Ctx, case: Case, paused: bool) -> str:
    if case.standup_paused == paused:
        raise UserError(texts.STANDUP_ALREADY_PAUSED if paused else
                        texts.STANDUP_ALREADY_RUNNING.format(time=case.standup_time), kind="info")
    case.standup_paused, case.updated_at = paused, ctx.now
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action="standup.pause" if paused else "standup.resume", detail="", now=ctx.now)
    return texts.STANDUP_PAUSED if paused else texts.STANDUP_RESUMED.format(time=case.standup_time)
