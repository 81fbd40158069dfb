"""Domain codes: the values the database stores, forms send and handlers compare. Their
user-visible labels (and colours) live in bot.texts, keyed by the code; exports, audit details
and cards show the labels.

Codes are short enough for the columns that held the Chinese labels before (String(4) and
String(8)), so switching to codes needed no schema change, only a data migration
(migrations/versions/0004_domain_codes.py).
"""
from __future__ import annotations

from enum import StrEnum


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


def parse(enum: type[StrEnum], raw: object) -> StrEnum | None:
    """The member whose code is `raw` (a form value), or None."""
    try:
        return enum(str(raw or "").strip())
    except ValueError:
        return None
