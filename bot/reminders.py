"""The bot's clock, as data: which reminders each case should have, and reconciling the outbox
with that.

APScheduler only ticks (bot/scheduler.py). A planning tick calls `reconcile_all`: for each case
it computes the *current* set of slots (kind, fire_key, due_at, stale_after) from the database
— standups on working days, key-node checks, task deadlines, pending sign-offs — and then
  * ensures an outbox row for every slot that is due from now on (or fell due within `grace`),
  * revives a cancelled row whose slot is valid again (a deadline moved back),
  * cancels every *pending* row whose slot is no longer valid (deadline, node or standup time
    changed, case left step 5, standup paused).
The fire_key contains the due slot, so moving a deadline yields a new key: the old row is
cancelled and the new one is due at the new time. Rows planned ahead (standups for the next
days, every future deadline) survive downtime: after a restart the sender finds them due and
sends them once, marked late, or skips them as stale (`stale_after`) — never silently: every
skipped reminder gets an audit entry (`/记录`) with its reason (`audit_skipped`). Planning
catches up from the last planned horizon, not from now: when the bot was down longer than the
standups are planned ahead, the days in between get their rows too (sent late or skipped).

`plan_case` is pure (facts in, slots out); the rest is the thin database layer around it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from bot import outbox, texts
from bot.db import rowcount
from bot.domain import CaseStatus, SignoffStatus, TaskStatus
from bot.models import (
    ArtifactState,
    AuditEntry,
    Case,
    ConsensusVersion,
    Department,
    DepartmentInput,
    KeyNode,
    Outbox,
    Signoff,
    Task,
)
from bot.workdays import WorkCalendar, calendar_for
from bot.workflow import Step

STANDUP = "standup"
STANDUP_NUDGE = "standup_nudge"
STANDUP_CLOSE = "standup_close"
KEYNODE = "keynode"
TASK_DUE = "task_due"
OVERDUE = "overdue"
SIGNOFF = "signoff_nudge"
KINDS = (STANDUP, STANDUP_NUDGE, STANDUP_CLOSE, KEYNODE, TASK_DUE, OVERDUE, SIGNOFF)
# the steps that wait on people's sign-off (consensus signatures; requirement inputs and confirmations)
SIGNOFF_STEPS = (Step.CONSENSUS, Step.REQUIREMENTS)
CATCH_UP_DAYS = 31          # after downtime, standup days are caught up at most this far back
SKIPPED_NOTED = "stale: recorded in the audit trail"


@dataclass(frozen=True)
class Policy:
    """Tunable delays (settings in brackets, see bot.settings)."""

    nudge_after: timedelta = timedelta(minutes=30)      # [STANDUP_NUDGE_MINUTES]
    standup_window: timedelta = timedelta(minutes=60)   # [STANDUP_WINDOW_MINUTES] then the 进度跟踪表
    standup_stale: timedelta = timedelta(hours=3)       # a standup later than this is skipped
    task_warn: timedelta = timedelta(hours=24)          # [TASK_WARN_HOURS]
    escalate_after_days: int = 2                        # [OVERDUE_ESCALATE_DAYS] working days
    signoff_after: timedelta = timedelta(hours=24)      # [SIGNOFF_NUDGE_HOURS]
    plan_days: int = 7                                  # standups planned this many days ahead
    grace: timedelta = timedelta(minutes=10)            # a slot this far past is still created

    @classmethod
    def from_settings(cls, settings) -> "Policy":
        return cls(nudge_after=timedelta(minutes=settings.standup_nudge_minutes),
                   standup_window=timedelta(minutes=settings.standup_window_minutes),
                   task_warn=timedelta(hours=settings.task_warn_hours),
                   escalate_after_days=settings.overdue_escalate_days,
                   signoff_after=timedelta(hours=settings.signoff_nudge_hours))


# ---------------------------------------------------------------- pure planning
@dataclass(frozen=True)
class TaskFact:
    id: int
    due_at: datetime
    open: bool            # not done, not dropped
    start_at: datetime | None = None


@dataclass(frozen=True)
class NodeFact:
    id: int
    at: datetime


@dataclass(frozen=True)
class PendingSignoff:
    tag: str              # e.g. "s1v2": step 1, consensus version 2
    since: datetime


@dataclass(frozen=True)
class CaseFacts:
    case_id: int
    active: bool
    step: Step
    step_entered_at: datetime
    tz: ZoneInfo
    standup_time: time
    paused: bool
    offsets_h: tuple[int, ...]
    tasks: tuple[TaskFact, ...] = ()
    nodes: tuple[NodeFact, ...] = ()
    signoffs: tuple[PendingSignoff, ...] = ()
    # days whose standup already went out (or was skipped): day -> the fire_key it used
    standups_done: dict[date, str] = field(default_factory=dict)
    # the last planned standup still pending: planning catches up from there (after downtime)
    planned_until: datetime | None = None


@dataclass(frozen=True)
class Slot:
    kind: str
    fire_key: str
    due_at: datetime
    stale_after: datetime | None = None


def minute_key(dt: datetime) -> str:
    """A slot's minute in fire keys: UTC, e.g. 20250301T0130Z."""
    return dt.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%MZ")


def standup_key(day: date, at: time) -> str:
    return f"{day.isoformat()}@{at.strftime('%H:%M')}"


def parse_standup_key(key: str) -> tuple[date, time]:
    day, _, hhmm = key.partition("@")
    return date.fromisoformat(day), time.fromisoformat(hhmm)


def parse_hhmm(value: str) -> time | None:
    value = value.strip().replace("：", ":")
    parts = value.split(":")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and 1 <= len(p) <= 2 for p in parts):
        return None
    h, m = int(parts[0]), int(parts[1])
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return None
    return time(h, m)


# A standup that goes out at least this long before a deadline carries its due-soon warning.
STANDUP_CARRIES_LEAD = timedelta(hours=1)


def task_due_slot(due_at: datetime, cal: WorkCalendar, tz: ZoneInfo, policy: Policy,
                  standup_at: time | None = None, start_at: datetime | None = None) -> datetime:
    """When to warn about a deadline: `task_warn` before it, moved back into working hours.
    With the standup running (`standup_at`), a warning the next standup would repeat before the
    deadline moves to that standup, whose card carries it (one message instead of two); a task
    that has not started by then keeps its own warning."""
    warn = cal.last_in_hours(due_at - policy.task_warn, tz)
    carried = carrying_standup(warn, due_at, cal, tz, standup_at) if standup_at is not None else None
    if carried is not None and (start_at is None or start_at <= carried):
        return carried
    return warn


def carrying_standup(warn: datetime, due_at: datetime, cal: WorkCalendar, tz: ZoneInfo,
                     standup_at: time) -> datetime | None:
    """The first standup at or after `warn` that is still `STANDUP_CARRIES_LEAD` before `due_at`."""
    day = warn.astimezone(tz).date()
    while day <= due_at.astimezone(tz).date():
        at = datetime.combine(day, standup_at, tz)
        if cal.is_workday(day) and at >= warn:
            return at if at <= due_at - STANDUP_CARRIES_LEAD else None
        day += timedelta(days=1)
    return None


def keynode_check_slot(node_at: datetime, hours: int, cal: WorkCalendar, tz: ZoneInfo) -> datetime:
    """When to hold the 进度确认会 `hours` before a key node, at an hour people work: a check that
    would fall on a day off moves to the working day before at the same time of day, and a time
    outside 09:00–18:00 is brought inside that day; if that is not before the node, the end of
    the previous working window."""
    local = (node_at - timedelta(hours=hours)).astimezone(tz)
    day = local.date()
    for _ in range(30):
        if cal.is_workday(day):
            break
        day -= timedelta(days=1)
    at = min(max(local.time().replace(second=0, microsecond=0), time(9, 0)), time(18, 0))
    when = datetime.combine(day, at, tz)
    return when if when < node_at else cal.last_in_hours(node_at - timedelta(hours=hours), tz)


def overdue_slot(due_at: datetime, cal: WorkCalendar, tz: ZoneInfo) -> datetime:
    """When to say a task became overdue: at the deadline, or the next working morning."""
    return cal.next_in_hours(due_at, tz)


def standup_slots(f: CaseFacts, cal: WorkCalendar, now: datetime, policy: Policy) -> list[Slot]:
    if not f.active or f.step != Step.EXECUTION or f.paused:
        return []
    out: list[Slot] = []
    today = now.astimezone(f.tz).date()
    first = today - timedelta(days=1)
    if f.planned_until is not None:  # down longer than we plan ahead: catch up from the horizon
        first = max(min(first, f.planned_until.astimezone(f.tz).date()), today - timedelta(days=CATCH_UP_DAYS))
    span = (today - first).days + policy.plan_days
    days = sorted(set(cal.workdays_after(first, span)) | set(f.standups_done))
    for day in days:
        if day in f.standups_done:
            at = parse_standup_key(f.standups_done[day])[1]
        else:
            at = f.standup_time
        due = datetime.combine(day, at, f.tz)
        if due < f.step_entered_at and day not in f.standups_done:
            continue
        key = standup_key(day, at)
        out.append(Slot(STANDUP, key, due, due + policy.standup_stale))
        close = due + policy.standup_window
        end_of_day = datetime.combine(day + timedelta(days=1), time(0, 0), f.tz)
        out.append(Slot(STANDUP_NUDGE, key, due + policy.nudge_after, close))
        out.append(Slot(STANDUP_CLOSE, key, close, end_of_day))
    return out


def plan_case(f: CaseFacts, cal: WorkCalendar, now: datetime, policy: Policy) -> list[Slot]:
    """Every slot this case should have right now (past ones included; `reconcile` decides
    which still need a row)."""
    slots = standup_slots(f, cal, now, policy)
    if f.active and f.step == Step.EXECUTION:
        for node in f.nodes:
            for h in f.offsets_h:
                due = keynode_check_slot(node.at, h, cal, f.tz)
                slots.append(Slot(KEYNODE, f"{node.id}:{h}h@{minute_key(node.at)}", due, node.at))
        due_groups: dict[datetime, datetime] = {}
        over_groups: set[datetime] = set()
        for t in f.tasks:
            if not t.open:
                continue
            s = task_due_slot(t.due_at, cal, f.tz, policy, None if f.paused else f.standup_time, t.start_at)
            due_groups[s] = min(due_groups.get(s, t.due_at), t.due_at)
            over_groups.add(overdue_slot(t.due_at, cal, f.tz))
        for s, first_deadline in due_groups.items():
            slots.append(Slot(TASK_DUE, f"due@{minute_key(s)}", s, first_deadline))
        for s in over_groups:
            slots.append(Slot(OVERDUE, f"over@{minute_key(s)}", s, s + timedelta(days=1)))
        if f.paused:  # the daily repeat normally rides on the standup card
            today = now.astimezone(f.tz).date()
            firsts = [overdue_slot(t.due_at, cal, f.tz).astimezone(f.tz).date() for t in f.tasks if t.open]
            for day in cal.workdays_after(today, 2):
                if any(first < day for first in firsts):
                    due = datetime.combine(day, f.standup_time, f.tz)
                    slots.append(Slot(OVERDUE, f"daily@{day.isoformat()}", due, due + timedelta(hours=8)))
    if f.active and f.step in SIGNOFF_STEPS:
        for p in f.signoffs:
            due = cal.next_in_hours(p.since + policy.signoff_after, f.tz)
            slots.append(Slot(SIGNOFF, p.tag, due, None))
    return slots


@dataclass(frozen=True)
class ExistingRow:
    kind: str
    fire_key: str
    status: str
    due_at: datetime | None = None


@dataclass
class Changes:
    create: list[Slot] = field(default_factory=list)
    revive: list[Slot] = field(default_factory=list)
    cancel: list[tuple[str, str]] = field(default_factory=list)


def planned_until(existing: Iterable[ExistingRow]) -> datetime | None:
    """The planning horizon the outbox shows: the latest standup row still pending."""
    dues = [r.due_at for r in existing if r.kind == STANDUP and r.status == "pending" and r.due_at is not None]
    return max(dues) if dues else None


def reconcile(slots: Iterable[Slot], existing: Iterable[ExistingRow], now: datetime, policy: Policy,
              never_planned_since: datetime | None = None) -> Changes:
    """Pure diff of wanted slots against the outbox rows that exist for the case. A slot already
    past is created only when it lies beyond the last planned horizon (it was never planned:
    the bot was down) — the sender then sends it late or skips it, recorded. A case that was
    never planned at all (the bot stopped before its first planning tick) has its horizon at
    `never_planned_since`, when it entered the step."""
    existing = list(existing)
    have = {(r.kind, r.fire_key): r.status for r in existing}
    wanted = {(s.kind, s.fire_key): s for s in slots}
    horizon = planned_until(existing)
    if horizon is None and not existing and never_planned_since is not None:
        horizon = never_planned_since - timedelta(microseconds=1)   # a slot at the step's very start counts
    ch = Changes()
    for key, slot in wanted.items():
        status = have.get(key)
        fresh = slot.due_at > now - policy.grace or (status is None and horizon is not None
                                                     and horizon < slot.due_at <= now)
        if status is None and fresh:
            ch.create.append(slot)
        elif status == "cancelled" and fresh:
            ch.revive.append(slot)
    for r in existing:
        # A pending row already due is left to the sender: its renderer re-checks the slot at
        # delivery and cancels it, sends it late or skips it as stale — never silently.
        if r.status == "pending" and (r.kind, r.fire_key) not in wanted and (r.due_at is None or r.due_at > now):
            ch.cancel.append((r.kind, r.fire_key))
    return ch


# ---------------------------------------------------------------- database layer
def _tz(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def case_tz(case: Case) -> ZoneInfo:
    return _tz(case.timezone)


def keynode_offsets(case: Case) -> tuple[int, ...]:
    """Hours before each key node to remind, largest first (24 h when none are valid)."""
    out = []
    for v in case.key_node_offsets_h or [24]:
        try:
            h = int(v)
        except (TypeError, ValueError):
            continue
        if 0 < h <= 24 * 14:
            out.append(h)
    return tuple(sorted(set(out), reverse=True)) or (24,)


def pending_signoffs(session: Session, case: Case) -> tuple[PendingSignoff, ...]:
    """Steps 1 and 3: what has been waiting for departments, and since when."""
    depts = missing_departments(session, case)
    if not depts:
        return ()
    if case.step == Step.CONSENSUS:
        cv = _consensus(session, case)
        return (PendingSignoff(f"s1v{cv.version}", cv.created_at),) if cv else ()
    state = _requirements_state(session, case)
    return (PendingSignoff(f"s3v{state.version if state else 1}", case.step_entered_at),)


def _consensus(session: Session, case: Case) -> ConsensusVersion | None:
    return session.scalar(select(ConsensusVersion).where(
        ConsensusVersion.case_id == case.id, ConsensusVersion.tenant_key == case.tenant_key,
        ConsensusVersion.chat_id == case.chat_id).order_by(ConsensusVersion.version.desc()).limit(1))


def _requirements_state(session: Session, case: Case) -> ArtifactState | None:
    return session.scalar(select(ArtifactState).where(
        ArtifactState.case_id == case.id, ArtifactState.artifact == "requirements",
        ArtifactState.tenant_key == case.tenant_key, ArtifactState.chat_id == case.chat_id))


def missing_departments(session: Session, case: Case) -> list[tuple[Department, str]]:
    """(department, what is missing) for a case waiting in step 1 (signatures) or 3 (inputs,
    confirmations). Empty when nothing waits."""
    if case.status != CaseStatus.ACTIVE or case.step not in SIGNOFF_STEPS:
        return []
    depts = list(session.scalars(select(Department).where(
        Department.case_id == case.id, Department.tenant_key == case.tenant_key,
        Department.chat_id == case.chat_id, Department.active.is_(True))
        .order_by(Department.position, Department.id)))
    if case.step == Step.CONSENSUS:
        cv = _consensus(session, case)
        if cv is None:
            return []
        done = set(session.scalars(select(Signoff.department_id).where(
            Signoff.case_id == case.id, Signoff.artifact == "consensus", Signoff.artifact_version == cv.version,
            Signoff.status == SignoffStatus.SIGNED)))
        return [(d, texts.SIGNOFF_MISSING_SIGN) for d in depts if d.id not in done]
    state = _requirements_state(session, case)
    version = state.version if state else 1
    inputs = set(session.scalars(select(DepartmentInput.department_id).where(DepartmentInput.case_id == case.id)))
    confirmed = set(session.scalars(select(Signoff.department_id).where(
        Signoff.case_id == case.id, Signoff.artifact == "requirements", Signoff.artifact_version == version,
        Signoff.status == SignoffStatus.SIGNED)))
    out = []
    for d in depts:
        if d.id not in inputs:
            out.append((d, texts.SIGNOFF_MISSING_INPUT))
        elif d.id not in confirmed:
            out.append((d, texts.SIGNOFF_MISSING_CONFIRM))
    return out


def _open(t: Task) -> bool:
    return t.status != TaskStatus.DONE and not t.dropped


def load_facts(session: Session, case: Case, *, tasks: list[Task] | None = None, nodes: list[KeyNode] | None = None,
               done_standups: dict[date, str] | None = None, horizon: datetime | None = None) -> CaseFacts:
    if tasks is None:
        tasks = list(session.scalars(select(Task).where(Task.case_id == case.id, Task.tenant_key == case.tenant_key,
                                                        Task.chat_id == case.chat_id)))
    if nodes is None:
        nodes = list(session.scalars(select(KeyNode).where(KeyNode.case_id == case.id,
                                                           KeyNode.tenant_key == case.tenant_key,
                                                           KeyNode.chat_id == case.chat_id)))
    return CaseFacts(
        case_id=case.id, active=case.status == CaseStatus.ACTIVE, step=case.step, step_entered_at=case.step_entered_at,
        tz=case_tz(case), standup_time=parse_hhmm(case.standup_time or "") or time(9, 30),
        paused=bool(case.standup_paused), offsets_h=keynode_offsets(case),
        tasks=tuple(TaskFact(t.id, t.due_at, _open(t), t.start_at) for t in tasks),
        nodes=tuple(NodeFact(n.id, n.at) for n in nodes),
        signoffs=pending_signoffs(session, case) if case.step in SIGNOFF_STEPS else (),
        standups_done=dict(done_standups or {}), planned_until=horizon)


def _existing(session: Session, case_ids: list[int], since: datetime) -> dict[int, list[ExistingRow]]:
    rows = session.execute(select(Outbox.case_id, Outbox.kind, Outbox.fire_key, Outbox.status, Outbox.due_at).where(
        Outbox.case_id.in_(case_ids), Outbox.kind.in_(KINDS),
        or_(Outbox.status == "pending", Outbox.due_at >= since))).all()
    out: dict[int, list[ExistingRow]] = {}
    for case_id, kind, key, status, due_at in rows:
        if case_id is not None:  # always: the query picks rows of these cases
            out.setdefault(case_id, []).append(ExistingRow(kind, key, status, due_at))
    return out


def _new_rows(case: Case, changes: Changes) -> list[dict[str, Any]]:
    return [dict(tenant_key=case.tenant_key, chat_id=case.chat_id, kind=s.kind, fire_key=s.fire_key,
                 due_at=s.due_at, case_id=case.id, stale_after=s.stale_after) for s in changes.create]


def _apply_all(session: Session, planned: list[tuple[Case, Changes]]) -> int:
    """A batch's changes: its new rows in one statement, then the (rare) revivals and cancellations."""
    n = outbox.enqueue_planned(session, [r for case, changes in planned for r in _new_rows(case, changes)])
    return n + sum(_revive_and_cancel(session, case, changes) for case, changes in planned)


def _revive_and_cancel(session: Session, case: Case, changes: Changes) -> int:
    n = 0
    for s in changes.revive:
        n += rowcount(session.execute(update(Outbox).where(
            Outbox.tenant_key == case.tenant_key, Outbox.chat_id == case.chat_id, Outbox.kind == s.kind,
            Outbox.fire_key == s.fire_key, Outbox.status == "cancelled")
            .values(status="pending", due_at=s.due_at, stale_after=s.stale_after, attempts=0)))
    if changes.cancel:
        conds = [and_(Outbox.kind == k, Outbox.fire_key == key) for k, key in changes.cancel]
        n += rowcount(session.execute(update(Outbox).where(
            Outbox.tenant_key == case.tenant_key, Outbox.chat_id == case.chat_id, Outbox.case_id == case.id,
            Outbox.status == "pending", or_(*conds)).values(status="cancelled")))
    return n


def reconcile_case(session: Session, case: Case, now: datetime, policy: Policy | None = None,
                   cal: WorkCalendar | None = None) -> Changes:
    """Plan one case now (after `/站会 时间`, a deadline change…), in the caller's transaction."""
    policy = policy or Policy()
    cal = cal or calendar_for(session, case.tenant_key)
    session.flush()
    rows = _existing(session, [case.id], now - timedelta(days=policy.plan_days + 2)).get(case.id, [])
    facts = load_facts(session, case, done_standups=_done_standups(rows), horizon=planned_until(rows))
    changes = reconcile(plan_case(facts, cal, now, policy), rows, now, policy, _first_plan(case, now, policy))
    _apply_all(session, [(case, changes)])
    return changes


def _first_plan(case: Case, now: datetime, policy: Policy) -> datetime | None:
    """Where a case without any reminder row yet starts planning: when it entered its step, if
    that is recent enough for its rows to be in view (older rows are not loaded)."""
    entered = case.step_entered_at
    return entered if entered is not None and entered >= now - timedelta(days=policy.plan_days) else None


def _done_standups(rows: list[ExistingRow]) -> dict[date, str]:
    out = {}
    for r in rows:
        if r.kind == STANDUP and r.status not in ("pending", "cancelled"):
            out[parse_standup_key(r.fire_key)[0]] = r.fire_key
    return out


def reconcile_all(session: Session, now: datetime, policy: Policy | None = None, *, batch: int = 200,
                  after_batch: Callable[[], None] | None = None) -> int:
    """The planning tick: every active case in a step with reminders, plus any case that still
    has pending reminder rows (so leaving step 5 cancels them). Returns rows changed.
    `after_batch` runs after each batch of cases (the tick commits there, so a first pass over
    many cases never holds the database's write lock for long)."""
    policy = policy or Policy()
    since = now - timedelta(days=policy.plan_days + 2)
    ids = set(session.scalars(select(Case.id).where(Case.status == CaseStatus.ACTIVE, Case.step.in_((1, 3, 5)))))
    ids |= set(session.scalars(select(Outbox.case_id).where(Outbox.status == "pending", Outbox.kind.in_(KINDS),
                                                            Outbox.case_id.is_not(None)).distinct()))
    changed = 0
    cals: dict[str, WorkCalendar] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), batch):
        chunk = ordered[i:i + batch]
        cases = list(session.scalars(select(Case).where(Case.id.in_(chunk))))
        tasks: dict[int, list[Task]] = {}
        for t in session.scalars(select(Task).where(Task.case_id.in_(chunk))):
            tasks.setdefault(t.case_id, []).append(t)
        nodes: dict[int, list[KeyNode]] = {}
        for n in session.scalars(select(KeyNode).where(KeyNode.case_id.in_(chunk))):
            nodes.setdefault(n.case_id, []).append(n)
        existing = _existing(session, chunk, since)
        # The whole batch is planned before any of it is written: on SQLite the first write takes
        # the writers' lock until the commit, and planning 50 cases in between (a niced process's
        # CPU) is time the other processes' writers would wait through.
        planned: list[tuple[Case, Changes]] = []
        for case in cases:
            cal = cals.get(case.tenant_key) or cals.setdefault(case.tenant_key, calendar_for(session, case.tenant_key))
            rows = existing.get(case.id, [])
            facts = load_facts(session, case, tasks=[t for t in tasks.get(case.id, [])
                                                     if t.tenant_key == case.tenant_key and t.chat_id == case.chat_id],
                               nodes=[n for n in nodes.get(case.id, [])
                                      if n.tenant_key == case.tenant_key and n.chat_id == case.chat_id],
                               done_standups=_done_standups(rows), horizon=planned_until(rows))
            planned.append((case, reconcile(plan_case(facts, cal, now, policy), rows, now, policy,
                                            _first_plan(case, now, policy))))
        changed += _apply_all(session, planned)
        if after_batch is not None:
            after_batch()
    audit_skipped(session, now)
    return changed


def audit_skipped(session: Session, now: datetime) -> int:
    """Every reminder the sender skipped as stale (it fell due while the bot was down and no
    longer matters) gets one audit entry with its reason, visible in `/记录`. The rows and their
    cases are read first and written in two statements: row by row (a look-up each after the
    first write) 500 of them held SQLite's writers' lock for over half a second."""
    found = session.execute(select(Outbox.id, Outbox.tenant_key, Outbox.chat_id, Outbox.case_id, Outbox.kind,
                                   Outbox.due_at).where(
        Outbox.status == "skipped_stale", Outbox.kind.in_(KINDS), Outbox.case_id.is_not(None),
        Outbox.last_error.is_(None)).order_by(Outbox.due_at, Outbox.id).limit(500)).all()
    if not found:
        return 0
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_({r.case_id for r in found})))}
    # only the rows this transaction marks are recorded (a planner racing it records the others)
    marked = set(session.scalars(update(Outbox).where(Outbox.id.in_([r.id for r in found]),
                                                      Outbox.last_error.is_(None))
                                 .values(last_error=SKIPPED_NOTED).returning(Outbox.id)
                                 .execution_options(synchronize_session=False)))
    entries = []
    for row in found:
        case = cases.get(row.case_id)
        if row.id not in marked or case is None or case.tenant_key != row.tenant_key or case.chat_id != row.chat_id:
            continue
        when = row.due_at.astimezone(case_tz(case)).strftime("%m-%d %H:%M")
        detail = texts.REMINDER_SKIPPED.format(kind=texts.REMINDER_KINDS.get(row.kind, row.kind), when=when,
                                               reason=texts.REMINDER_SKIPPED_REASONS.get(row.kind, ""))
        entries.append(dict(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, actor_open_id="",
                            action="reminder.skipped", detail=detail, at=now))
    if entries:
        session.execute(insert(AuditEntry), entries)
    return len(found)
