"""Domain codes: the values the database stores, forms send and handlers compare. Their
user-visible labels (and colours) live in bot.texts, keyed by the code; exports, audit details
and cards show the labels.

Codes are short enough for the columns that held the Chinese labels before (String(4) and
String(8)), so switching to codes needed no schema change, only a data migration
(migrations/versions/0004_domain_codes.py).
"""
from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class TaskStatus(StrEnum):
    """A task's state (tasks.status, task_updates.status): 未开始 / 进行中 / 已完成 / 受阻."""

    TODO = "todo"
    DOING = "doing"
    DONE = "done"
    BLOCKED = "blocked"


class Level(StrEnum):
    """高 / 中 / 低: a requirement's priority, a risk's likelihood and impact."""

    HIGH = "high"
    MID = "mid"
    LOW = "low"


class RetroKind(StrEnum):
    """What a retrospective entry is about: 成果 / 成功经验 / 不足之处 / 改进方向."""

    OUTCOME = "outcome"
    SUCCESS = "success"
    WEAKNESS = "weakness"
    IMPROVE = "improve"


class CaseStatus(StrEnum):
    """A case's life (cases.status): 进行中 / 已结案 / 已取消; the step says where a live case is."""

    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class DeptKind(StrEnum):
    """A department's part in a case (departments.kind): 核心 / 支持. A department added in step 1
    is UNSET until step 2 asks, so nobody is 核心 by default."""

    UNSET = ""
    CORE = "core"
    SUPPORT = "support"


class SignoffStatus(StrEnum):
    """A department's answer on a consensus (signoffs.status): 已签字 / 有异议. No row is 待签字."""

    SIGNED = "signed"
    OBJECTED = "objected"


class RiskStatus(StrEnum):
    """A risk's state (risks.status): 未关闭 / 已关闭."""

    OPEN = "open"
    CLOSED = "closed"


class ChangeStatus(StrEnum):
    """A change request's state (change_requests.status): 待审批 / 已批准 / 已驳回."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


E = TypeVar("E", bound=StrEnum)


def parse(enum: type[E], raw: object) -> E | None:
    """The member whose code is `raw` (a form value), or None."""
    try:
        return enum(str(raw or "").strip())
    except ValueError:
        return None
