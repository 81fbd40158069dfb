"""Cards of the bot's clock: the daily standup prompt, the key-node 进度确认会 reminder, grouped
task reminders (due soon / overdue) and the sign-off nudge. Pure: views in, Card JSON out.
One card per group and occasion, never one message per task (cards.md: quiet by design)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bot import texts
from bot.actions import ActionValue
from bot.durations import span
from cards import kit

TRACK_OPEN = "track.open"          # handlers.tracking: opens the clicking owner's update form
STANDUP_SAME = "standup.same"      # handlers.reminders: 今日无变化
KEYNODE_OK = "keynode.ok"          # handlers.reminders: the lead confirms the node holds


@dataclass(frozen=True)
class TaskLine:
    owner_open_id: str
    content: str
    due: str              # already formatted in the case's time zone
    progress: int
    lagging: bool = False
    overdue_days: int | None = None   # None: not overdue; 0: overdue since today
    due_soon: bool = False            # within the warning window (the standup carries the warning)


@dataclass(frozen=True)
class OwnerBlock:
    open_id: str
    tasks: tuple[TaskLine, ...]
    answered: bool


@dataclass(frozen=True)
class StandupView:
    case_id: int
    title: str
    day: date
    lead_open_id: str
    owners: tuple[OwnerBlock, ...]
    escalate: tuple[TaskLine, ...] = ()
    escalate_days: int = 2
    show_missing: bool = False      # after the nudge delay: the lead sees who is missing
    closed: bool = False            # after the standup window
    late: bool = False


def _title(text: str, late: bool) -> str:
    return text + texts.LATE_MARK if late else text


def _flag(t: TaskLine) -> str:
    if t.overdue_days is not None:
        return texts.FLAG_OVERDUE.format(days=t.overdue_days) if t.overdue_days else texts.FLAG_OVERDUE_TODAY
    return (texts.FLAG_LAGGING if t.lagging else "") + (texts.FLAG_DUE_SOON if t.due_soon else "")


def _task_line(t: TaskLine, *, with_owner: bool) -> str:
    fmt = texts.OVERDUE_TASK_LINE if with_owner else texts.STANDUP_TASK_LINE
    return fmt.format(owner=kit.at(t.owner_open_id), content=kit.esc(t.content), due=t.due,
                      progress=t.progress, flag=_flag(t))


def standup_card(v: StandupView) -> dict:
    title = texts.STANDUP_TITLE.format(month=v.day.month, day=v.day.day)
    elements = []
    if not v.owners:
        elements.append(kit.md(texts.STANDUP_NO_OWNERS))
    else:
        elements.append(kit.md(texts.STANDUP_INTRO))
        for block in v.owners:
            state = texts.STANDUP_OWNER_DONE if block.answered else texts.STANDUP_OWNER_WAITING
            lines = [f"{kit.at(block.open_id)} {state}"]
            lines += [_task_line(t, with_owner=False) for t in block.tasks]
            elements.append(kit.md("\n".join(lines)))
    if v.escalate:
        lines = [texts.STANDUP_ESCALATE.format(days=v.escalate_days, lead=kit.at(v.lead_open_id))]
        lines += [_task_line(t, with_owner=True) for t in v.escalate]
        elements.append(kit.md("\n".join(lines)))
    missing = [b.open_id for b in v.owners if not b.answered]
    if v.show_missing or v.closed:
        footer = (texts.STANDUP_MISSING.format(people=" ".join(kit.at(o) for o in missing)) if missing
                  else texts.STANDUP_ALL_ANSWERED)
        elements.append(kit.hr())
        elements.append(kit.md(footer))
    if v.closed:
        elements.append(kit.md(texts.STANDUP_CLOSED))
    elif v.owners:
        elements.append(kit.columns([
            [kit.button(texts.BTN_UPDATE_PROGRESS, ActionValue(TRACK_OPEN, case_id=v.case_id), type="primary_filled")],
            [kit.button(texts.BTN_NO_CHANGE, ActionValue(STANDUP_SAME, case_id=v.case_id,
                                                          extra={"d": v.day.isoformat()}))],
        ]))
    template = "grey" if v.closed else ("red" if v.escalate else "orange")
    return kit.card(_title(title, v.late), template=template,
                    subtitle=texts.STANDUP_SUBTITLE.format(title=v.title), elements=elements,
                    summary=_title(title, v.late))


@dataclass(frozen=True)
class KeyNodeView:
    case_id: int
    node_id: int
    node_name: str
    node_at: str          # formatted
    hours_before: int
    left_seconds: int     # from the card's time to the node
    lead_open_id: str
    open_tasks: tuple[TaskLine, ...]
    confirmed_by: str | None = None
    confirmed_at: str = ""
    late: bool = False
    work_left_seconds: int | None = None   # working time to the node (None: not known)


def _work_left(v: KeyNodeView) -> str:
    """「，其中工作时间 8 小时」 when nights or days off stand between the card and the node."""
    if v.work_left_seconds is None or v.work_left_seconds >= v.left_seconds - 60:
        return ""
    if v.work_left_seconds <= 0:
        return texts.KEYNODE_NO_WORK_LEFT
    hours = round(v.work_left_seconds / 3600)
    return texts.KEYNODE_WORK_LEFT.format(hours=hours) if hours else texts.KEYNODE_WORK_LEFT_UNDER_ONE


def keynode_card(v: KeyNodeView) -> dict:
    left = span(max(0, v.left_seconds), precise=True)
    title = texts.KEYNODE_TITLE.format(node=v.node_name, left=left)
    lines = [texts.KEYNODE_WHEN.format(node=kit.esc(v.node_name), at=v.node_at, left=left, work=_work_left(v))]
    if v.open_tasks:
        lines.append(texts.KEYNODE_OPEN)
        lines += [texts.KEYNODE_TASK_LINE.format(owner=kit.at(t.owner_open_id), content=kit.esc(t.content),
                                                 due=t.due, progress=t.progress, flag=_flag(t))
                  for t in v.open_tasks]
    else:
        lines.append(texts.KEYNODE_ALL_DONE)
    elements = [kit.md("\n".join(lines))]
    if v.confirmed_by:
        elements.append(kit.md(texts.KEYNODE_CONFIRMED.format(lead=kit.at(v.confirmed_by),
                                                             node=kit.esc(v.node_name), at=v.confirmed_at)))
    else:
        elements.append(kit.md(texts.KEYNODE_ASK.format(lead=kit.at(v.lead_open_id))))
        elements.append(kit.columns([
            [kit.button(texts.BTN_KEYNODE_OK, ActionValue(KEYNODE_OK, case_id=v.case_id, row_id=v.node_id,
                                                           extra={"h": str(v.hours_before)}), type="primary_filled")],
            [kit.button(texts.BTN_UPDATE_PROGRESS, ActionValue(TRACK_OPEN, case_id=v.case_id))],
        ]))
    template = "green" if v.confirmed_by else ("red" if any(t.lagging for t in v.open_tasks) else "orange")
    return kit.card(_title(title, v.late), template=template, elements=elements, summary=_title(title, v.late))


@dataclass(frozen=True)
class TaskReminderView:
    case_id: int
    kind: str             # "due" | "overdue"
    tasks: tuple[TaskLine, ...]
    warn_hours: int = 24
    late: bool = False
    lead_open_id: str = ""
    escalate_days: int = 0    # overdue this many working days or more: the lead is asked to act
    due_when: str = ""        # "due": the first deadline, e.g. 12月14日（周一）09:00
    left_hours: int = 0       # "due": working hours left until it


def task_reminder_card(v: TaskReminderView) -> dict:
    overdue = v.kind == "overdue"
    title = texts.OVERDUE_TITLE if overdue else texts.TASK_DUE_TITLE
    if overdue:
        intro = texts.OVERDUE_INTRO
    elif v.due_when:  # the real remaining time, not a fixed "24 小时" (a warning pulled out of a weekend)
        intro = (texts.TASK_DUE_INTRO_AT.format(when=v.due_when, left=v.left_hours) if v.left_hours > 0
                 else texts.TASK_DUE_INTRO_NEXT.format(when=v.due_when))
    else:
        intro = texts.TASK_DUE_INTRO.format(hours=v.warn_hours)
    lines = [intro] + [_task_line(t, with_owner=True) for t in v.tasks]
    elements = [kit.md("\n".join(lines))]
    escalate = [t for t in v.tasks if overdue and v.escalate_days and v.lead_open_id
                and (t.overdue_days or 0) >= v.escalate_days]
    if escalate:
        elements.append(kit.md("\n".join(
            [texts.STANDUP_ESCALATE.format(days=v.escalate_days, lead=kit.at(v.lead_open_id))]
            + [_task_line(t, with_owner=True) for t in escalate])))
    elements.append(kit.button(texts.BTN_UPDATE_PROGRESS, ActionValue(TRACK_OPEN, case_id=v.case_id),
                               type="primary_filled"))
    return kit.card(_title(title, v.late), template="red" if overdue else "orange", elements=elements,
                    summary=_title(title, v.late))


@dataclass(frozen=True)
class MissingDept:
    name: str
    open_id: str
    what: str             # 待签字 / 待确认 / 待提交资源与诉求


@dataclass(frozen=True)
class SignoffNudgeView:
    step: int
    output: str
    hours: int
    missing: tuple[MissingDept, ...]
    late: bool = False


def signoff_nudge_card(v: SignoffNudgeView) -> dict:
    lines = [texts.SIGNOFF_INTRO.format(output=v.output, hours=v.hours)]
    lines += [texts.SIGNOFF_LINE.format(dept=kit.esc(m.name), who=f"{kit.at(m.open_id)} {m.what}")
              for m in v.missing]
    lines.append(texts.SIGNOFF_ACTION[v.step])
    title = texts.SIGNOFF_TITLE.format(output=v.output)
    return kit.card(_title(title, v.late), template="orange", elements=[kit.md("\n".join(lines))],
                    summary=_title(title, v.late))


_URGENCY = {"red": 0, "orange": 1}


def bundle_card(parts: list[dict]) -> dict:
    """Several reminders due for the group at once, as one card: the most urgent one's header
    and content first, then each other one under its own title (its buttons kept)."""
    ordered = sorted(parts, key=lambda c: _URGENCY.get(c.get("header", {}).get("template", ""), 2))
    first, rest = ordered[0], ordered[1:]
    elements = list(first.get("body", {}).get("elements", []))
    for part in rest:
        elements += [kit.hr(), kit.md(f"**{kit.esc(part.get('header', {}).get('title', {}).get('content', ''))}**")]
        elements += list(part.get("body", {}).get("elements", []))
    header = first.get("header", {})
    return kit.card(header.get("title", {}).get("content", ""), template=header.get("template", "orange"),
                    subtitle=texts.REMINDER_BUNDLE_MORE.format(n=len(rest)), elements=elements,
                    summary=header.get("title", {}).get("content", ""))
