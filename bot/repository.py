"""Keyword-only queries. Every query that touches a group's rows filters on tenant_key AND
chat_id (S8): a card value or command from another group or tenant finds nothing."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import bindparam, delete, event, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.domain import CaseStatus, Level, SignoffStatus, TaskStatus
from bot.models import (
    ArtifactState,
    AuditEntry,
    Case,
    Chat,
    ChatMember,
    ConsensusVersion,
    Department,
    DepartmentInput,
    KeyNode,
    Member,
    Person,
    PlanVersion,
    PostedCard,
    Requirement,
    RetroEntry,
    Risk,
    Signoff,
    StepLog,
    Task,
)
from bot.workflow import Facts, Step


def ensure_chat(session: Session, *, tenant_key: str, chat_id: str, now: datetime, name: str = "") -> Chat:
    chat = session.scalar(select(Chat).where(Chat.tenant_key == tenant_key, Chat.chat_id == chat_id))
    if chat is None:
        chat = Chat(tenant_key=tenant_key, chat_id=chat_id, name=name, joined_at=now)
        session.add(chat)
    else:
        chat.active = True
        chat.name = name or chat.name
    return chat


def get_case(session: Session, *, tenant_key: str, chat_id: str, case_id: int) -> Case | None:
    """The case, in this tenant and chat only. By primary key, so a request that looks at the same
    case twice (the stale-click check, then its handler) reads it once."""
    if not 0 < case_id <= 2 ** 31 - 1:
        return None
    case = session.get(Case, case_id)
    if case is None or (case.tenant_key, case.chat_id) != (tenant_key, chat_id):
        return None
    # the identity map holds objects weakly: without a reference the case read by the stale-click
    # check is gone by the time its handler asks again, and is read a second time
    session.info.setdefault("held_cases", {})[case_id] = case
    return case


def lock_case(session: Session, *, tenant_key: str, chat_id: str, case_id: int) -> Case | None:
    """`get_case`, the case's row locked until the transaction ends (`SELECT … FOR UPDATE`; SQLite
    has no row locks and needs none: its one writer at a time already runs clicks one by one).
    A transaction that waits here reads the row as the one it waited for left it, and its later
    statements see what that one wrote. Held like `get_case`'s: asking again reads nothing."""
    if not 0 < case_id <= 2 ** 31 - 1:
        return None
    case = session.scalar(_CASE_LOCKED, {"case_id": case_id, "tenant_key": tenant_key, "chat_id": chat_id})
    if case is not None:
        session.info.setdefault("held_cases", {})[case_id] = case
    return case


# built once: every click on a case's card asks first. In this tenant and chat only (S8): a forged
# id locks nobody else's row. populate_existing: values read before the wait are replaced.
_CASE_LOCKED = (select(Case).where(Case.id == bindparam("case_id"), Case.tenant_key == bindparam("tenant_key"),
                                   Case.chat_id == bindparam("chat_id"))
                .with_for_update().execution_options(populate_existing=True))


# ---------------------------------------------------------------- reads kept for one transaction
# A request reads the same departments, table version and signatures several times (the guard, the
# card it answers with, the live case card). Inside its transaction they are kept, and forgotten as
# soon as the session flushes a change to that kind of row that could change what the read holds:
# the rows read are the session's own objects, so a change to one of their values is already in
# them; only an added or deleted row, or a change to a column that decides which rows a read
# selects or their order (`_SHAPE`), makes a kept read wrong.
_SHAPE: dict[type, frozenset[str]] = {Task: frozenset({"case_id", "tenant_key", "chat_id", "dropped", "seq"})}


def _reshapes(obj: object) -> bool:
    """Whether a flushed change to `obj` may change which rows a kept read of its kind holds."""
    shape = _SHAPE.get(type(obj))
    if shape is None:
        return True
    attrs = inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in shape)


def _kept(session: Session, model: type, key: tuple, read: Callable[[], Any]) -> Any:
    kept = session.info.setdefault("kept_reads", {})
    if (model, key) in kept and not _pending_change_to(session, model):
        return kept[(model, key)]   # no flush: nothing pending can change this read
    if session.new or session.dirty or session.deleted:
        session.flush()  # what a query would autoflush; it also forgets the reads it changes
    if (model, key) not in kept:
        kept[(model, key)] = read()
    return kept[(model, key)]


def _pending_change_to(session: Session, model: type) -> bool:
    """Whether a change not flushed yet would make a kept read of `model` rows wrong."""
    return any(type(o) is model for o in (*session.new, *session.deleted)) or any(
        type(o) is model and _reshapes(o) for o in session.dirty)


@event.listens_for(Session, "after_flush")
def _forget_changed_reads(session: Session, _flush_context: Any) -> None:
    kept = session.info.get("kept_reads")
    if kept:
        changed = {type(o) for o in (*session.new, *session.deleted)}
        changed.update(type(o) for o in session.dirty if type(o) not in changed and _reshapes(o))
        for model, key in [k for k in kept if k[0] in changed]:
            del kept[(model, key)]


@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_commit")
def _forget_all_reads(session: Session) -> None:
    for name in ("kept_reads", "held_cases"):
        session.info.pop(name, None)


def posted_card(session: Session, *, tenant_key: str, message_id: str) -> PostedCard | None:
    """The recorded card a click came from (message ids are unique), read once per transaction:
    the dispatcher asks which group it acts in, the answer whether it was a private form."""
    if not message_id:
        return None
    return _kept(session, PostedCard, (tenant_key, message_id), lambda: session.scalar(
        _POSTED_CARD, {"message_id": message_id, "tenant_key": tenant_key}))


# built once: every click with a message id asks
_POSTED_CARD = select(PostedCard).where(PostedCard.message_id == bindparam("message_id"),
                                        PostedCard.tenant_key == bindparam("tenant_key"))


def active_case(session: Session, *, tenant_key: str, chat_id: str) -> Case | None:
    return session.scalar(select(Case).where(Case.tenant_key == tenant_key, Case.chat_id == chat_id,
                                             Case.status == CaseStatus.ACTIVE).order_by(Case.id.desc()))


def cases_of_chat(session: Session, *, tenant_key: str, chat_id: str) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.tenant_key == tenant_key, Case.chat_id == chat_id)
                                .order_by(Case.seq)))


def next_seq(session: Session, *, tenant_key: str, chat_id: str) -> int:
    top = session.scalar(select(func.max(Case.seq)).where(Case.tenant_key == tenant_key,
                                                          Case.chat_id == chat_id))
    return (top or 0) + 1


def departments(session: Session, case: Case, *, active_only: bool = True) -> list[Department]:
    def read() -> list[Department]:
        q = select(Department).where(Department.case_id == case.id, Department.tenant_key == case.tenant_key,
                                     Department.chat_id == case.chat_id)
        if active_only:
            q = q.where(Department.active.is_(True))
        return list(session.scalars(q.order_by(Department.position, Department.id)))
    return list(_kept(session, Department, (case.id, active_only), read))


def current_consensus(session: Session, case: Case) -> ConsensusVersion | None:
    return _kept(session, ConsensusVersion, (case.id,), lambda: session.scalar(select(ConsensusVersion).where(
        ConsensusVersion.case_id == case.id, ConsensusVersion.tenant_key == case.tenant_key,
        ConsensusVersion.chat_id == case.chat_id).order_by(ConsensusVersion.version.desc())))


def signoffs(session: Session, case: Case, *, artifact: str, version: int) -> dict[int, Signoff]:
    def read() -> dict[int, Signoff]:
        rows = session.scalars(select(Signoff).where(
            Signoff.case_id == case.id, Signoff.tenant_key == case.tenant_key, Signoff.chat_id == case.chat_id,
            Signoff.artifact == artifact, Signoff.artifact_version == version))
        return {row.department_id: row for row in rows}
    return dict(_kept(session, Signoff, (case.id, artifact, version), read))


def artifact_state(session: Session, case: Case, artifact: str) -> ArtifactState:
    state = session.scalar(select(ArtifactState).where(
        ArtifactState.case_id == case.id, ArtifactState.artifact == artifact,
        ArtifactState.tenant_key == case.tenant_key, ArtifactState.chat_id == case.chat_id))
    if state is None:
        state = ArtifactState(case_id=case.id, artifact=artifact, tenant_key=case.tenant_key,
                              chat_id=case.chat_id, version=1)
        session.add(state)
        session.flush()
    return state


def audit(session: Session, case: Case | None, *, tenant_key: str, chat_id: str, actor: str, action: str,
          detail: str, now: datetime) -> None:
    session.add(AuditEntry(tenant_key=tenant_key, chat_id=chat_id, case_id=case.id if case else None,
                           actor_open_id=actor, action=action, detail=detail[:2000], at=now))


def audit_entries(session: Session, *, tenant_key: str, chat_id: str, case_id: int | None, limit: int = 15
                  ) -> list[AuditEntry]:
    q = select(AuditEntry).where(AuditEntry.tenant_key == tenant_key, AuditEntry.chat_id == chat_id)
    if case_id is not None:
        q = q.where(AuditEntry.case_id == case_id)
    return list(session.scalars(q.order_by(AuditEntry.id.desc()).limit(limit)))


def enter_step(session: Session, case: Case, step: Step, *, now: datetime, reason: str | None = None) -> None:
    """Record the step change (the caller got `step` from bot.workflow)."""
    open_log = session.scalar(select(StepLog).where(StepLog.case_id == case.id, StepLog.left_at.is_(None))
                              .order_by(StepLog.id.desc()))
    if open_log is not None:
        open_log.left_at = now
    if step >= Step.CLOSED:
        case.status, case.closed_at = CaseStatus.CLOSED, now
    else:
        session.add(StepLog(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, step=step,
                            entered_at=now, reason=reason))
    case.step, case.step_entered_at, case.updated_at = step, now, now


def facts(session: Session, case: Case, step: Step | None = None) -> Facts:
    """What the state machine's guard for `step` (default: the case's step) looks at, read in one
    place. Only that step's facts are read: a click in step 1 never loads tasks or requirements."""
    step = Step(case.step) if step is None else step
    reader = _FACT_READERS.get(step)
    return Facts(**reader(session, case)) if reader else Facts()


def _consensus_facts(session: Session, case: Case) -> dict[str, Any]:
    consensus = current_consensus(session, case)
    if consensus is None:
        return {"consensus_submitted": False}
    depts = departments(session, case)
    names = {d.id: d.name for d in depts}
    signs = signoffs(session, case, artifact="consensus", version=consensus.version)
    objections = tuple(names[i] for i, s in signs.items() if s.status == SignoffStatus.OBJECTED and i in names)
    return {"objections": objections,
            "unsigned_departments": tuple(d.name for d in depts
                                          if (d.id not in signs or signs[d.id].status != SignoffStatus.SIGNED)
                                          and d.name not in objections)}


def _team_facts(session: Session, case: Case) -> dict[str, Any]:
    return {"departments_without_contact": tuple(d.name for d in departments(session, case) if not d.contact_open_id)}


def _requirements_facts(session: Session, case: Case) -> dict[str, Any]:
    depts = departments(session, case)
    inputs = set(session.scalars(select(DepartmentInput.department_id).where(
        DepartmentInput.case_id == case.id, DepartmentInput.tenant_key == case.tenant_key)))
    reqs = list(session.scalars(select(Requirement).where(Requirement.case_id == case.id,
                                                          Requirement.tenant_key == case.tenant_key)))
    req_state = artifact_state(session, case, "requirements")
    confirmed = signoffs(session, case, artifact="requirements", version=req_state.version)
    return {"inputs_missing": tuple(d.name for d in depts if d.id not in inputs),
            "requirements_count": len(reqs),
            "unresolved_conflicts": tuple(r.demand[:20] for r in reqs if r.is_conflict and not r.resolved_at),
            "unconfirmed_departments": tuple(d.name for d in depts if d.id not in confirmed)}


def _task_facts(session: Session, case: Case) -> dict[str, Any]:
    tasks = tasks_of(session, case)   # kept: the card that shows the facts lists the same tasks
    return {"task_count": len(tasks), "open_tasks": tuple(t.content[:20] for t in tasks if t.status != TaskStatus.DONE)}


def _retro_facts(session: Session, case: Case) -> dict[str, Any]:
    return {"retro_entry_count": len(retro_entries(session, case))}


_FACT_READERS = {Step.CONSENSUS: _consensus_facts, Step.TEAM: _team_facts, Step.REQUIREMENTS: _requirements_facts,
                 Step.PLAN: _task_facts, Step.EXECUTION: _task_facts, Step.RETRO: _retro_facts}


def retro_entries(session: Session, case: Case) -> list[RetroEntry]:
    return list(session.scalars(select(RetroEntry).where(RetroEntry.case_id == case.id,
                                                         RetroEntry.tenant_key == case.tenant_key)
                                .order_by(RetroEntry.id)))


def remember_people(session: Session, *, tenant_key: str, people: list[tuple[str, str]], now: datetime) -> None:
    """Upsert display names (member lists, mentions). Empty names never overwrite known ones."""
    wanted = {oid: name[:100] for oid, name in people if oid and name}
    if not wanted:
        return
    known = {p.open_id: p for p in session.scalars(select(Person).where(
        Person.tenant_key == tenant_key, Person.open_id.in_(list(wanted))))}
    for open_id, name in wanted.items():
        person = known.get(open_id)
        if person is None:
            try:
                with session.begin_nested():
                    session.add(Person(tenant_key=tenant_key, open_id=open_id, name=name, updated_at=now))
            except IntegrityError:
                pass  # a concurrent sync stored it first
        elif person.name != name:
            person.name, person.updated_at = name, now


def remember_members(session: Session, *, tenant_key: str, chat_id: str, open_ids: list[str],
                     now: datetime) -> None:
    """The group's member list as just read (complete): it replaces the one known before.
    An empty list (a failed or odd read) leaves the known list alone."""
    wanted = {oid for oid in open_ids if oid}
    if not wanted:
        return
    scope = (ChatMember.tenant_key == tenant_key, ChatMember.chat_id == chat_id)
    known = set(session.scalars(select(ChatMember.open_id).where(*scope)))
    gone = known - wanted
    if gone:
        session.execute(delete(ChatMember).where(*scope, ChatMember.open_id.in_(list(gone))))
    for open_id in sorted(wanted - known):
        try:
            with session.begin_nested():
                session.add(ChatMember(tenant_key=tenant_key, chat_id=chat_id, open_id=open_id, synced_at=now))
        except IntegrityError:
            pass  # a concurrent sync stored it first


def is_member(session: Session, *, tenant_key: str, chat_id: str, open_id: str) -> bool | None:
    """Whether `open_id` is in the group's known member list; None when no list is known."""
    scope = (ChatMember.tenant_key == tenant_key, ChatMember.chat_id == chat_id)
    if session.scalar(select(ChatMember.id).where(*scope, ChatMember.open_id == open_id).limit(1)) is not None:
        return True
    return False if session.scalar(select(ChatMember.id).where(*scope).limit(1)) is not None else None


def names(session: Session, *, tenant_key: str, open_ids: list[str]) -> dict[str, str]:
    """open_id -> display name for the ids we know; callers fall back to a role or @mention."""
    ids = [i for i in set(open_ids) if i]
    if not ids:
        return {}
    return dict(session.execute(select(Person.open_id, Person.name).where(
        Person.tenant_key == tenant_key, Person.open_id.in_(ids))).all())


def name_of(session: Session, *, tenant_key: str, open_id: str, default: str = "") -> str:
    return names(session, tenant_key=tenant_key, open_ids=[open_id]).get(open_id, default)


# ---------------------------------------------------------------- steps 4–6
def _tasks_query(include_dropped: bool) -> Any:
    q = select(Task).where(Task.case_id == bindparam("case_id"), Task.tenant_key == bindparam("tenant_key"),
                           Task.chat_id == bindparam("chat_id"))
    if not include_dropped:
        q = q.where(Task.dropped.is_(False))
    return q.order_by(Task.seq, Task.id)


# built once: most clicks and commands of steps 4–6 read a case's tasks
_TASKS = {flag: _tasks_query(flag) for flag in (False, True)}


def tasks_of(session: Session, case: Case, *, include_dropped: bool = False) -> list[Task]:
    def read() -> list[Task]:
        return list(session.scalars(_TASKS[include_dropped], {
            "case_id": case.id, "tenant_key": case.tenant_key, "chat_id": case.chat_id}))
    return list(_kept(session, Task, (case.id, include_dropped), read))


def get_task(session: Session, case: Case, task_id: int | None) -> Task | None:
    if task_id is None:
        return None
    return session.scalar(select(Task).where(Task.id == task_id, Task.case_id == case.id,
                                             Task.tenant_key == case.tenant_key, Task.chat_id == case.chat_id))


def risks_of(session: Session, case: Case) -> list[Risk]:
    return list(session.scalars(select(Risk).where(Risk.case_id == case.id, Risk.tenant_key == case.tenant_key,
                                                   Risk.chat_id == case.chat_id).order_by(Risk.id)))


def nodes_of(session: Session, case: Case) -> list[KeyNode]:
    return list(session.scalars(select(KeyNode).where(KeyNode.case_id == case.id, KeyNode.tenant_key == case.tenant_key,
                                                      KeyNode.chat_id == case.chat_id)
                                .order_by(KeyNode.at, KeyNode.id)))


def plan_version(session: Session, case: Case) -> int:
    """The latest published version of the case's action plan; 0 before the first."""
    return session.scalar(select(func.max(PlanVersion.version)).where(
        PlanVersion.case_id == case.id, PlanVersion.tenant_key == case.tenant_key,
        PlanVersion.chat_id == case.chat_id)) or 0


def team_open_ids(session: Session, case: Case) -> set[str]:
    """Everyone who belongs to the case: lead, heads, 接口人, members and task owners."""
    ids = {case.lead_open_id}
    for d in departments(session, case):
        ids.add(d.head_open_id)
        if d.contact_open_id:
            ids.add(d.contact_open_id)
    ids.update(session.scalars(select(Member.open_id).where(Member.case_id == case.id,
                                                            Member.tenant_key == case.tenant_key,
                                                            Member.chat_id == case.chat_id)))
    ids.update(t.owner_open_id for t in tasks_of(session, case))
    return ids


def department_of(session: Session, case: Case, open_id: str) -> Department | None:
    """The department a person works for in this case (member row, else head/接口人)."""
    dept_id = session.scalar(select(Member.department_id).where(Member.case_id == case.id, Member.open_id == open_id,
                                                                Member.tenant_key == case.tenant_key))
    depts = departments(session, case)
    for d in depts:
        if d.id == dept_id:
            return d
    for d in depts:
        if open_id in (d.head_open_id, d.contact_open_id):
            return d
    return None


# ---------------------------------------------------------------- step 3
def department_inputs(session: Session, case: Case) -> dict[int, DepartmentInput]:
    rows = session.scalars(select(DepartmentInput).where(
        DepartmentInput.case_id == case.id, DepartmentInput.tenant_key == case.tenant_key,
        DepartmentInput.chat_id == case.chat_id))
    return {r.department_id: r for r in rows}


def requirements_of(session: Session, case: Case) -> list[Requirement]:
    rows = list(session.scalars(select(Requirement).where(
        Requirement.case_id == case.id, Requirement.tenant_key == case.tenant_key,
        Requirement.chat_id == case.chat_id)))
    order = {p: i for i, p in enumerate(Level)}
    # conflicts first (undecided before decided), then by priority
    return sorted(rows, key=lambda r: (not r.is_conflict, r.resolved_at is not None, order.get(r.priority, 9), r.id))


def updates_of(session: Session, task_id: int) -> int:
    """How many progress updates a task has had: the version an update form carries."""
    task = session.get(Task, task_id)
    return task.update_count if task is not None else 0
