"""SQLAlchemy 2.x typed models. Every row that belongs to a group carries tenant_key and
chat_id, and every repository query filters on both (tenant isolation, S8)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.domain import CaseStatus, ChangeStatus, DeptKind, Level, RetroKind, RiskStatus, SignoffStatus, TaskStatus
from bot.workflow import Step


class StepType(TypeDecorator):
    """A case's step: an INTEGER column, a workflow.Step in Python."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else int(Step(value))

    def process_result_value(self, value, dialect):
        return None if value is None else Step(value)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always hands back aware datetimes (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class CodeType(TypeDecorator):
    """A domain code (bot.domain): a VARCHAR column holding the code, the StrEnum member in
    Python. Binding anything that is not one of the enum's codes (a label, a typo) raises."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int):
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value, dialect):
        return None if value is None else self.enum(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class GroupScoped:
    tenant_key: Mapped[str] = mapped_column(String(64), index=True)
    chat_id: Mapped[str] = mapped_column(String(64), index=True)


# ---------------------------------------------------------------- transport
class InboxEvent(Base):
    """Every verified event/callback, stored once by event_id before we answer 200."""

    __tablename__ = "inbox_events"
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    tenant_key: Mapped[str] = mapped_column(String(64), default="")
    chat_id: Mapped[str] = mapped_column(String(64), default="")
    # im.message.receive_v1 may be redelivered under a new event_id (long-connection backfill).
    message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|done|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Outbox(GroupScoped, Base):
    """A due send (reminder, nudge): unique per (case, kind, slot), claimed with a lease,
    sent with a Feishu uuid derived from the key, so it goes out exactly once."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("tenant_key", "chat_id", "kind", "fire_key"),
                      Index("ix_outbox_due", "status", "priority", "due_at"),
                      # "does this chat have a send in flight?" on every claim
                      Index("ix_outbox_chat_status", "tenant_key", "chat_id", "status"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    fire_key: Mapped[str] = mapped_column(String(96))
    due_at: Mapped[datetime]
    # claimed lowest first when the quota is short: 0 a reply to a person, 1 reminders, 2 hints
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    stale_after: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending|sending|sent|failed|cancelled|skipped_stale
    status: Mapped[str] = mapped_column(String(16), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    message_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- groups and cases
class Chat(GroupScoped, Base):
    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("tenant_key", "chat_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime]


class Case(GroupScoped, Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("tenant_key", "chat_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)  # #1, #2 … within the group
    title: Mapped[str] = mapped_column(String(200))
    step: Mapped[Step] = mapped_column(StepType, default=Step.CONSENSUS)
    status: Mapped[CaseStatus] = mapped_column(CodeType(CaseStatus, 16), default=CaseStatus.ACTIVE)
    opener_open_id: Mapped[str] = mapped_column(String(64))
    lead_open_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumps on every change (stale clicks)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    step_entered_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    card_message_id: Mapped[str | None] = mapped_column(String(128))  # the live case card
    template_id: Mapped[int | None] = mapped_column(Integer)
    draft: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what a user typed, kept on errors
    # reminders (step 5)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    standup_time: Mapped[str] = mapped_column(String(5), default="09:30")
    standup_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    key_node_offsets_h: Mapped[list[Any]] = mapped_column(JSON, default=lambda: [24])
    __mapper_args__ = {"version_id_col": version}


class StepLog(GroupScoped, Base):
    """When each step was entered and left: feeds the retrospective's 'days per step'."""

    __tablename__ = "step_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    step: Mapped[Step] = mapped_column(StepType)
    entered_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class AuditEntry(GroupScoped, Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    actor_open_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


# ---------------------------------------------------------------- step 1
class ConsensusVersion(GroupScoped, Base):
    """One version of 《问题共识表》; editing after a signature creates a new version."""

    __tablename__ = "consensus_versions"
    __table_args__ = (UniqueConstraint("case_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    background: Mapped[str] = mapped_column(Text)
    current_state: Mapped[str] = mapped_column(Text)
    impact: Mapped[str] = mapped_column(Text)
    goal: Mapped[str] = mapped_column(Text)
    goal_date: Mapped[date | None] = mapped_column(Date)
    expected_outcome: Mapped[str] = mapped_column(Text)
    departments: Mapped[list[Any]] = mapped_column(JSON)  # [{"name","head"}] as of this version
    change_summary: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Department(GroupScoped, Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("case_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    head_open_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[DeptKind] = mapped_column(CodeType(DeptKind, 8), default=DeptKind.CORE)
    contact_open_id: Mapped[str | None] = mapped_column(String(64))  # 接口人
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Signoff(GroupScoped, Base):
    """A department's signature / objection / confirmation of one version of an output.
    Unique per version and department: a double click cannot sign twice."""

    __tablename__ = "signoffs"
    __table_args__ = (UniqueConstraint("case_id", "artifact", "artifact_version", "department_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    artifact: Mapped[str] = mapped_column(String(16))  # consensus | requirements
    artifact_version: Mapped[int] = mapped_column(Integer)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    status: Mapped[SignoffStatus] = mapped_column(CodeType(SignoffStatus, 16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_open_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# ---------------------------------------------------------------- step 2
class Member(GroupScoped, Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("case_id", "open_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    open_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64), default="")
    duty: Mapped[str] = mapped_column(Text, default="")


class ActionItem(GroupScoped, Base):
    __tablename__ = "action_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(Text)
    owner_open_id: Mapped[str] = mapped_column(String(64))
    due_date: Mapped[date | None] = mapped_column(Date)
    carried_to_task_id: Mapped[int | None] = mapped_column(Integer)


# ---------------------------------------------------------------- step 3
class DepartmentInput(GroupScoped, Base):
    """资源 / 限制 / 诉求 submitted by a department's 接口人."""

    __tablename__ = "department_inputs"
    __table_args__ = (UniqueConstraint("case_id", "department_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    resources: Mapped[str] = mapped_column(Text, default="")
    constraints: Mapped[str] = mapped_column(Text, default="")
    demands: Mapped[str] = mapped_column(Text, default="")
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime]


class Requirement(GroupScoped, Base):
    __tablename__ = "requirements"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    demand: Mapped[str] = mapped_column(Text)
    solution: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[Level] = mapped_column(CodeType(Level, 4), default=Level.MID)
    adjustment: Mapped[str] = mapped_column(Text, default="")       # 调整说明
    is_conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    conflict_department_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ArtifactState(GroupScoped, Base):
    """Version counter and archive flag of an output that is confirmed as a whole
    (《需求确认清单》, 《跨部门协作行动方案》, 《复盘总结报告》)."""

    __tablename__ = "artifact_states"
    __table_args__ = (UniqueConstraint("case_id", "artifact"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    artifact: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    archived_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(128))


# ---------------------------------------------------------------- step 4
class Task(GroupScoped, Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    owner_open_id: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    start_at: Mapped[datetime]
    due_at: Mapped[datetime]
    delivery_standard: Mapped[str] = mapped_column(Text)
    resources: Mapped[str] = mapped_column(Text, default="")
    depends_on_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    status: Mapped[TaskStatus] = mapped_column(CodeType(TaskStatus, 8), default=TaskStatus.TODO)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    lag_reason: Mapped[str] = mapped_column(Text, default="")
    adjustment: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[datetime | None]
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)
    lag_notified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # its TaskUpdate rows, counted as they are added: the version an update form carries. Left to
    # the server's default on insert and not fetched back (read when a form is drawn, later).
    update_count: Mapped[int] = mapped_column(Integer, server_default="0")
    __mapper_args__ = {"eager_defaults": False}


class TaskUpdate(GroupScoped, Base):
    """History of progress reports (standups feed this; the retrospective reads it)."""

    __tablename__ = "task_updates"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    actor_open_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[TaskStatus] = mapped_column(CodeType(TaskStatus, 8))
    progress: Mapped[int] = mapped_column(Integer)
    lag_reason: Mapped[str] = mapped_column(Text, default="")
    adjustment: Mapped[str] = mapped_column(Text, default="")
    standup_day: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime]


class Risk(GroupScoped, Base):
    __tablename__ = "risks"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    risk: Mapped[str] = mapped_column(Text)
    likelihood: Mapped[Level] = mapped_column(CodeType(Level, 4), default=Level.MID)
    impact: Mapped[Level] = mapped_column(CodeType(Level, 4), default=Level.MID)
    response: Mapped[str] = mapped_column(Text, default="")
    owner_open_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[RiskStatus] = mapped_column(CodeType(RiskStatus, 8), default=RiskStatus.OPEN)


class KeyNode(GroupScoped, Base):
    __tablename__ = "key_nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class PlanVersion(GroupScoped, Base):
    """A published plan: version 1 is the baseline; approved changes add versions."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("case_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    change_request_id: Mapped[int | None] = mapped_column(Integer)
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime]


# ---------------------------------------------------------------- step 5
class ChangeRequest(GroupScoped, Base):
    __tablename__ = "change_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[ChangeStatus] = mapped_column(CodeType(ChangeStatus, 12), default=ChangeStatus.PENDING)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str] = mapped_column(Text, default="")
    retro_note: Mapped[str] = mapped_column(Text, default="")  # 复盘会 note
    created_at: Mapped[datetime]


class StandupReply(GroupScoped, Base):
    """Who answered which day's standup (the nudge and 'who is missing' read this)."""

    __tablename__ = "standup_replies"
    __table_args__ = (UniqueConstraint("case_id", "day", "open_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    open_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# ---------------------------------------------------------------- step 6
class RetroEntry(GroupScoped, Base):
    __tablename__ = "retro_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_open_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[RetroKind] = mapped_column(CodeType(RetroKind, 8))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Template(Base):
    """An SOP saved from a case; shared across the tenant's groups."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("tenant_key", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_key: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    source_case_id: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Person(Base):
    """Display names of a tenant's people (from the chat member list and message mentions),
    so toasts and exports can say 李娜 instead of an open_id. Tenant-wide, like templates."""

    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("tenant_key", "open_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_key: Mapped[str] = mapped_column(String(64))
    open_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class ChatMember(GroupScoped, Base):
    """Who is in a group, as its member list last said (replaced on every sync: the bot joining,
    `/问题`). A group with no rows has no known list."""

    __tablename__ = "chat_members"
    __table_args__ = (UniqueConstraint("tenant_key", "chat_id", "open_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    open_id: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime]


class PostedCard(GroupScoped, Base):
    """A card the bot posted for a case and what it shows (`view`: case, req, team, …; `digest`
    of the JSON last sent), so that when the state behind it moves the card is patched to the
    truth, or shrunk to a pointer once a newer card of the same view supersedes it. A private
    card (`private_for`) is one person's form: answered in place, never patched."""

    __tablename__ = "posted_cards"
    __table_args__ = (UniqueConstraint("message_id"),
                      Index("ix_posted_cards_case", "case_id", "superseded"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(128))
    view: Mapped[str] = mapped_column(String(32))
    private_for: Mapped[str | None] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), default="")
    sent_at: Mapped[datetime]
    patched_at: Mapped[datetime | None]
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)   # shows a pointer / a result line


class CalendarOverride(Base):
    """A tenant's own working-day exception (company holiday, extra workday)."""

    __tablename__ = "calendar_overrides"
    __table_args__ = (UniqueConstraint("tenant_key", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_key: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")


# ---------------------------------------------------------------- Feishu Tasks sync
class FeishuTaskSync(GroupScoped, Base):
    """A case's link to 飞书任务: whether the lead turned it on, its tasklist, and what stopped it
    (a missing scope is told to the lead once: problem_notified_at)."""

    __tablename__ = "feishu_task_sync"
    __table_args__ = (UniqueConstraint("case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime]
    tasklist_guid: Mapped[str | None] = mapped_column(String(100))
    # the exact name of a tasklist create in flight: set before the call, cleared with the guid, so a
    # retry after a lost answer looks for that list first (the create takes no client_token)
    tasklist_pending: Mapped[str | None] = mapped_column(String(100))
    problem: Mapped[str | None] = mapped_column(String(200))      # e.g. "scope:task:task:write"
    problem_notified_at: Mapped[datetime | None]
    last_poll_at: Mapped[datetime | None]


class FeishuTaskLink(GroupScoped, Base):
    """One bot task ↔ one Feishu task. `client_token` is derived from our key, so a create that is
    retried or doubled returns the same Feishu task. `pushed_hash` is what we last wrote,
    `remote_updated_ms` the task's updated_at as we last saw it (our own writes included), so
    each side's changes since the last sync can be told apart."""

    __tablename__ = "feishu_task_links"
    __table_args__ = (UniqueConstraint("task_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    client_token: Mapped[str] = mapped_column(String(64))
    task_guid: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text, default="")
    pushed_hash: Mapped[str] = mapped_column(String(64), default="")
    pushed_members: Mapped[list[Any]] = mapped_column(JSON, default=list)
    synced_at: Mapped[datetime | None]              # bot-side task.updated_at covered by the last sync
    remote_updated_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    polled_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]             # deleted in Feishu: reported once, never re-created


# ---------------------------------------------------------------- 多维表格 board sync
class FeishuBoard(GroupScoped, Base):
    """A case's 多维表格 board: whether the lead created it, the base and its tables' ids
    (`tables`: kind -> table_id), and what stopped it (a missing scope told to the lead once)."""

    __tablename__ = "feishu_boards"
    __table_args__ = (UniqueConstraint("case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime]
    app_token: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text, default="")
    tables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    problem: Mapped[str | None] = mapped_column(String(200))
    problem_notified_at: Mapped[datetime | None]
    last_poll_at: Mapped[datetime | None]


class FeishuBoardRow(GroupScoped, Base):
    """One bot item (task, risk, key node; or the case itself in the tenant's overview) ↔ one
    record. `token` is the batch_create client_token the record was asked for with (stored before
    the call, so a lost answer is asked again with the same token); `pushed` the values we last
    wrote, so an edit made in the board can be told from ours."""

    __tablename__ = "feishu_board_rows"
    __table_args__ = (UniqueConstraint("case_id", "kind", "item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))        # task | risk | node | overview
    item_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64), default="")
    record_id: Mapped[str | None] = mapped_column(String(100))
    pushed_hash: Mapped[str] = mapped_column(String(64), default="")
    pushed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_modified_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted_at: Mapped[datetime | None]                  # deleted in the board: reported once, never re-created


class FeishuOverview(Base):
    """The tenant's 《协作问题总览》 base (one row per case). `claimed_by_case`: the case whose sync
    creates it, so two cases never create two bases."""

    __tablename__ = "feishu_overviews"
    __table_args__ = (UniqueConstraint("tenant_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_key: Mapped[str] = mapped_column(String(64))
    claimed_by_case: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime]
    app_token: Mapped[str | None] = mapped_column(String(100))
    table_id: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text, default="")
