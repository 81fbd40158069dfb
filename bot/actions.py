"""Typed button payloads. A card only ever carries pointers (case id, row id, card version);
permissions and state are always re-read from the database when the callback arrives."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.ids import MAX_ID


class ActionError(ValueError):
    """The callback's value is not one of ours."""


@dataclass(frozen=True)
class ActionValue:
    action: str            # one of the constants in bot.actions.names
    case_id: int | None = None
    version: int | None = None   # the version of the object the card showed (stale-click check)
    row_id: int | None = None    # e.g. a department, task or change request
    extra: dict[str, str] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.action}
        if self.case_id is not None:
            out["c"] = self.case_id
        if self.version is not None:
            out["v"] = self.version
        if self.row_id is not None:
            out["r"] = self.row_id
        if self.extra:
            out["x"] = dict(self.extra)
        return out

    @classmethod
    def parse(cls, raw: Any) -> "ActionValue":
        if not isinstance(raw, dict) or not isinstance(raw.get("a"), str):
            raise ActionError("missing action")

        def _int(key: str) -> int | None:
            val = raw.get(key)
            if val is None:
                return None
            if isinstance(val, bool) or not isinstance(val, (int, str)):
                raise ActionError(f"bad {key}")
            if isinstance(val, str) and not (val.isascii() and val.isdigit()):
                raise ActionError(f"bad {key}")
            number = int(val) if len(str(val)) <= 12 else MAX_ID + 1
            if not 0 <= number <= MAX_ID:
                raise ActionError(f"{key} out of range")
            return number

        extra = raw.get("x") or {}
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise ActionError("bad extra")
        if len(raw["a"]) > 64:
            raise ActionError("bad action")
        return cls(action=raw["a"], case_id=_int("c"), version=_int("v"),
                   row_id=_int("r"), extra=extra)


# Form submit buttons echo back only their `name` (platform.md §5.3 form), so a form's
# pointer travels there: "action~case~version~row", plus "~token" when the form confirms a
# warning (the fingerprint of the values the user was warned about).
_SEP = "~"
CONFIRM_EXTRA = "ok"
_TOKEN = re.compile(r"^[0-9a-f]{1,32}$")


def to_name(value: ActionValue) -> str:
    parts = [value.action] + ["" if x is None else str(x) for x in (value.case_id, value.version, value.row_id)]
    token = value.extra.get(CONFIRM_EXTRA)
    if token:
        parts.append(token)
    return _SEP.join(parts)


def from_name(name: str) -> ActionValue:
    parts = name.split(_SEP)
    if len(parts) not in (4, 5) or not parts[0] or (len(parts) == 5 and not _TOKEN.match(parts[4])):
        raise ActionError("not an action name")
    extra = {CONFIRM_EXTRA: parts[4]} if len(parts) == 5 else {}
    return ActionValue.parse({"a": parts[0], "c": parts[1] or None, "v": parts[2] or None,
                              "r": parts[3] or None, "x": extra})


# Action names more than one module puts on a card (the handler lives in the first module named).
PLAN_OPEN = "plan.open"              # handlers.plan: show the plan card
TRACK_OPEN = "track.open"            # handlers.tracking: send the clicking owner's update form
TRACK_UPDATE = "track.update"        # submit one task's update (row_id = task id)
TRACK_SHOW = "track.show"            # post the 《进度跟踪表》
RISK_CLOSE = "risk.close"            # form submit: close the picked open risk (its 负责人 or the lead)
CHANGE_OPEN = "change.open"          # handlers.tracking: the change-request form (/调整 does the same)
EXEC_CLOSE_OPEN = "exec.close_open"  # handlers.tracking: the lead's form to end step 5 early
FTASKS_ON = "ftasks.on"              # handlers.feishu_tasks: the lead turns 飞书任务 sync on for the case
FTASKS_OFF = "ftasks.off"            # … and off
BOARD_ON = "board.on"                # handlers.feishu_board: the lead creates the case's 多维表格 board
BOARD_OFF = "board.off"              # … and stops syncing it
