"""Help, welcome and audit-log cards."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import texts
from bot.actions import ActionValue
from bot.domain import CaseStatus
from bot.workflow import Step
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
    step: Step
    status: CaseStatus
    lead_open_id: str


def cases_card(rows: list[CaseRow]) -> dict:
    data = [{"seq": f"#{r.seq}", "title": r.title, "step": texts.STEP_SHORT[r.step],
             "status": kit.tag_option(*texts.CASE_STATUS[r.status]), "lead": [r.lead_open_id]} for r in rows]
    body = [kit.table([("seq", "#", "text"), ("title", texts.COL_TITLE, "text"), ("step", texts.COL_STEP, "text"),
                       ("status", texts.COL_STATUS, "options"), ("lead", texts.COL_LEAD, "persons")], data)] \
        if data else [kit.md(texts.NO_CASES)]
    return kit.card(texts.CASES_TITLE, template="blue", elements=body)


@dataclass(frozen=True)
class ArchiveNav:
    """The buttons of an archived case: its case card and each output it has."""
    case: ActionValue                              # back to the case card
    outputs: tuple[tuple[int, ActionValue], ...]   # (step, show that output)
    showing: int = 0                               # the step shown now (0: the case card)


NAV_PER_ROW = 3


def archive_nav(nav: ArchiveNav) -> list[dict]:
    """「查看其他内容」 and rows of buttons (three a row so they stay readable on a phone)."""
    buttons = [kit.button(texts.BTN_ARCHIVE_CASE, nav.case, type="primary" if nav.showing == 0 else "default")]
    buttons += [kit.button(texts.OUTPUTS[step], value, type="primary" if step == nav.showing else "default")
                for step, value in nav.outputs]
    rows = [kit.columns([[b] for b in buttons[i:i + NAV_PER_ROW]]) for i in range(0, len(buttons), NAV_PER_ROW)]
    return [kit.md(texts.ARCHIVE_NAV_HEAD), *rows]


def archived_copy(card_json: dict, seq: int, nav: ArchiveNav) -> dict:
    """An archived case's card or output: read-only, with the buttons to its other contents."""
    plain = kit.read_only(card_json, texts.ARCHIVE_NOTE.format(seq=seq))
    return {**plain, "body": {**plain["body"], "elements": plain["body"]["elements"] + archive_nav(nav)}}
