"""Help, welcome and audit-log cards."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import texts
from cards import kit


def help_card() -> dict:
    return kit.card(texts.HELP_TITLE, template="blue", elements=[kit.md(texts.HELP_BODY)])


def welcome_card() -> dict:
    return kit.card(texts.WELCOME_TITLE, template="blue", elements=[kit.md(texts.WELCOME_BODY)])


@dataclass(frozen=True)
class LogLine:
    at: datetime  # already in the group's time zone
    actor_open_id: str
    action: str
    detail: str


def audit_card(title: str, lines: list[LogLine]) -> dict:
    rows = [{"at": line.at.strftime("%m-%d %H:%M"), "who": [line.actor_open_id] if line.actor_open_id else [],
             "what": texts.AUDIT_ACTIONS.get(line.action, line.action), "detail": line.detail}
            for line in lines]
    body = [kit.table([("at", texts.COL_TIME, "text"), ("who", texts.COL_WHO, "persons"),
                       ("what", texts.COL_ACTION, "text"), ("detail", texts.COL_DETAIL, "text")], rows)] \
        if rows else [kit.md(texts.AUDIT_EMPTY)]
    return kit.card(texts.AUDIT_TITLE.format(title=title), template="blue", elements=body)


@dataclass(frozen=True)
class CaseRow:
    seq: int
    title: str
    step: int
    status: str
    lead_open_id: str


def cases_card(rows: list[CaseRow]) -> dict:
    data = [{"seq": f"#{r.seq}", "title": r.title, "step": texts.STEP_SHORT[r.step],
             "status": kit.tag_option(*texts.CASE_STATUS[r.status]), "lead": [r.lead_open_id]} for r in rows]
    body = [kit.table([("seq", "#", "text"), ("title", texts.COL_TITLE, "text"), ("step", texts.COL_STEP, "text"),
                       ("status", texts.COL_STATUS, "options"), ("lead", texts.COL_LEAD, "persons")], data)] \
        if data else [kit.md(texts.NO_CASES)]
    return kit.card(texts.CASES_TITLE, template="blue", elements=body)
