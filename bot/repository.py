"""Keyword-only queries. Every query that touches a group's rows filters on tenant_key AND
chat_id (S8): a card value or command from another group or tenant finds nothing."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.domain import Level, TaskStatus
from bot.models import (
    ArtifactState,
    AuditEntry,
    Case,
    Chat,
    ConsensusVersion,
    Department,
    DepartmentInput,
    KeyNode,
    Member,
    Person,
    Requirement,
    RetroEntry,
    Risk,
    Signoff,
    StepLog,
    Task,
    TaskUpdate,
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
    return session.scalar(select(Case).where(Case.id == case_id, Case.tenant_key == tenant_key,
                                             Case.chat_id == chat_id))


def active_case(session: Session, *, tenant_key: str, chat_id: str) -> Case | None:
    return session.scalar(select(Case).where(Case.tenant_key == tenant_key, Case.chat_id == chat_id,
                                             Case.status == "active").order_by(Case.id.desc()))


def cases_of_chat(session: Session, *, tenant_key: str, chat_id: str) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.tenant_key == tenant_key, Case.chat_id == chat_id)
                                .order_by(Case.seq)))


def next_seq(session: Session, *, tenant_key: str, chat_id: str) -> int:
    top = session.scalar(select(func.max(Case.seq)).where(Case.tenant_key == tenant_key,
                                                          Case.chat_id == chat_id))
    return (top or 0) + 1


def departments(session: Session, case: Case, *, active_only: bool = True) -> list[Department]:
    q = select(Department).where(Department.case_id == case.id, Department.tenant_key == case.tenant_key,
                                 Department.chat_id == case.chat_id)
    if active_only:
        q = q.where(Department.active.is_(True))
    return list(session.scalars(q.order_by(Department.position, Department.id)))


def current_consensus(session: Session, case: Case) -> ConsensusVersion | None:
    return session.scalar(select(ConsensusVersion).where(
        ConsensusVersion.case_id == case.id, ConsensusVersion.tenant_key == case.tenant_key,
        ConsensusVersion.chat_id == case.chat_id).order_by(ConsensusVersion.version.desc()))


def signoffs(session: Session, case: Case, *, artifact: str, version: int) -> dict[int, Signoff]:
    rows = session.scalars(select(Signoff).where(
        Signoff.case_id == case.id, Signoff.tenant_key == case.tenant_key, Signoff.chat_id == case.chat_id,
        Signoff.artifact == artifact, Signoff.artifact_version == version))
    return {row.department_id: row for row in rows}


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
        case.status, case.closed_at = "closed", now
    else:
        session.add(StepLog(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, step=step,
                            entered_at=now, reason=reason))
    case.step, case.step_entered_at, case.updated_at = step, now, now


def facts(session: Session, case: Case) -> Facts:
    """Everything the workflow's guards need, read in one place."""
    depts = departments(session, case)
    names = {d.id: d.name for d in depts}
    out: dict[str, object] = {}
    consensus = current_consensus(session, case)
    if consensus is not None:
        signs = signoffs(session, case, artifact="consensus", version=consensus.version)
        objections = tuple(names[i] for i, s in signs.items() if s.status == "objected" and i in names)
        out["objections"] = objections
        out["unsigned_departments"] = tuple(d.name for d in depts
                                            if (d.id not in signs or signs[d.id].status != "signed")
                                            and d.name not in objections)
    else:
        out["consensus_submitted"] = False
    out["departments_without_contact"] = tuple(d.name for d in depts if not d.contact_open_id)
    inputs = set(session.scalars(select(DepartmentInput.department_id).where(
        DepartmentInput.case_id == case.id, DepartmentInput.tenant_key == case.tenant_key)))
    out["inputs_missing"] = tuple(d.name for d in depts if d.id not in inputs)
    reqs = list(session.scalars(select(Requirement).where(Requirement.case_id == case.id,
                                                          Requirement.tenant_key == case.tenant_key)))
    out["requirements_count"] = len(reqs)
    out["unresolved_conflicts"] = tuple(r.demand[:20] for r in reqs if r.is_conflict and not r.resolved_at)
    req_state = artifact_state(session, case, "requirements")
    confirmed = signoffs(session, case, artifact="requirements", version=req_state.version)
    out["unconfirmed_departments"] = tuple(d.name for d in depts if d.id not in confirmed)
    tasks = list(session.scalars(select(Task).where(Task.case_id == case.id, Task.tenant_key == case.tenant_key,
                                                    Task.dropped.is_(False))))
    out["task_count"] = len(tasks)
    out["open_tasks"] = tuple(t.content[:20] for t in tasks if t.status != TaskStatus.DONE)
    out["retro_entry_count"] = len(retro_entries(session, case))
    return Facts(**out)  # type: ignore[arg-type]


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
def tasks_of(session: Session, case: Case, *, include_dropped: bool = False) -> list[Task]:
    q = select(Task).where(Task.case_id == case.id, Task.tenant_key == case.tenant_key, Task.chat_id == case.chat_id)
    if not include_dropped:
        q = q.where(Task.dropped.is_(False))
    return list(session.scalars(q.order_by(Task.seq, Task.id)))


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
    return session.scalar(select(func.count()).select_from(TaskUpdate).where(TaskUpdate.task_id == task_id)) or 0
