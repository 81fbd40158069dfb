"""《进度跟踪表》 and the progress-update form. Pure: views in, Card JSON 2.0 out."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot import texts
from bot.actions import ActionValue, to_name
from cards import kit

MAX_FORMS = 6  # forms per update card (each is 4 fields + a button)


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    seq: int
    content: str
    owner: str            # open_id
    status: str
    progress: int
    due: str              # already formatted in the group's time zone
    lag_reason: str = ""
    adjustment: str = ""
    lagging: bool = False
    department: str = ""


@dataclass(frozen=True)
class RiskRow:
    risk: str
    likelihood: str
    impact: str
    response: str
    owner: str
    open: bool = True


@dataclass(frozen=True)
class TrackingView:
    case_id: int
    case_version: int
    title: str
    when: str                       # "12-09 09:30"
    tasks: tuple[TaskRow, ...]      # lagging first (the builder keeps the given order)
    risks: tuple[RiskRow, ...] = ()
    buttons: tuple[tuple[str, ActionValue, bool], ...] = ()  # (label, value, primary)
    archived: bool = False


def _status_cell(row: TaskRow) -> list[dict[str, str]]:
    cell = kit.tag_option(row.status, texts.STATUS_COLOURS.get(row.status, "neutral"))
    if row.lagging:
        cell += kit.tag_option(texts.LAGGING_TAG, "red")
    return cell


def _task_label(row: TaskRow) -> str:
    return f"#{row.seq} {row.content}"


def tracking_card(view: TrackingView) -> dict:
    lagging = [t for t in view.tasks if t.lagging]
    done = sum(1 for t in view.tasks if t.status == "已完成")
    elements: list[dict] = []
    elements.append(kit.md(texts.TRACK_LAGGING_HEAD.format(n=len(lagging)) if lagging else texts.TRACK_ALL_ON_TRACK))
    if view.tasks:
        rows = [{"task": _task_label(t), "owner": [t.owner], "status": _status_cell(t), "progress": f"{t.progress}%",
                 "due": t.due, "reason": t.lag_reason or "—", "adjust": t.adjustment or "—"} for t in view.tasks]
        elements.append(kit.table([("task", texts.COL_TASK, "text"), ("owner", texts.COL_OWNER, "persons"),
                                   ("status", texts.COL_STATUS_T, "options"), ("progress", texts.COL_PROGRESS, "text"),
                                   ("due", texts.COL_DUE, "text"), ("reason", texts.COL_LAG_REASON, "text"),
                                   ("adjust", texts.COL_ADJUSTMENT, "text")], rows))
        data = [{"task": f"#{t.seq}", "progress": t.progress} for t in view.tasks]
        elements.append(kit.chart_bar(texts.TRACK_CHART_TITLE, data, "task", "progress"))
    else:
        elements.append(kit.md(texts.TRACK_NO_TASKS))
    elements.append(kit.md(texts.TRACK_RISKS_HEAD))
    if view.risks:
        rows = [{"risk": r.risk, "l": r.likelihood, "i": r.impact, "resp": r.response or "—", "owner": [r.owner]}
                for r in view.risks]
        elements.append(kit.table([("risk", texts.COL_RISK, "text"), ("l", texts.COL_LIKELIHOOD, "text"),
                                   ("i", texts.COL_IMPACT, "text"), ("resp", texts.COL_RESPONSE, "text"),
                                   ("owner", texts.COL_OWNER, "persons")], rows))
    else:
        elements.append(kit.md(texts.TRACK_NO_RISKS))
    if view.buttons and not view.archived:
        elements.append(button_row(view.buttons))
    return kit.card(texts.TRACK_TITLE.format(title=view.title),
                    template="grey" if view.archived else ("red" if lagging else "blue"),
                    subtitle=texts.TRACK_SUBTITLE.format(when=view.when, done=done, total=len(view.tasks),
                                                         lagging=len(lagging)),
                    elements=elements, summary=texts.TRACK_TITLE.format(title=view.title))


def button_row(buttons: tuple[tuple[str, ActionValue, bool], ...]) -> dict:
    return kit.columns([[kit.button(label, value, type="primary_filled" if primary else "default")]
                        for label, value, primary in buttons])


@dataclass(frozen=True)
class UpdateItem:
    row: TaskRow
    submit: ActionValue
    # what the form shows: the stored values, or what the user typed before an error
    status: str = ""
    progress: str = ""
    lag_reason: str = ""
    adjustment: str = ""


@dataclass(frozen=True)
class UpdateView:
    title: str
    who: str                    # open_id of the person the card is for
    items: tuple[UpdateItem, ...]
    more: int = 0               # open tasks not shown


def field_names(task_id: int) -> tuple[str, str, str, str]:
    """Card-unique names of one task's form fields: status, progress, lag reason, adjustment."""
    return f"s{task_id}", f"p{task_id}", f"r{task_id}", f"a{task_id}"


def update_card(view: UpdateView) -> dict:
    elements: list[dict] = [kit.md(texts.UPDATE_INTRO.format(who=kit.at(view.who)))]
    if not view.items:
        elements.append(kit.md(texts.UPDATE_NO_OPEN))
    for item in view.items[:MAX_FORMS]:
        row = item.row
        s, p, r, a = field_names(row.task_id)
        head = texts.UPDATE_TASK_HEAD.format(seq=row.seq, content=kit.esc(row.content), owner=kit.at(row.owner),
                                             due=row.due, status=row.status, progress=row.progress)
        if row.lagging:
            head += texts.UPDATE_TASK_LAGGING
        elements.append(kit.form(f"f{row.task_id}", [
            kit.md(head),
            kit.select_static(s, [(x, x) for x in texts.TASK_STATUSES], placeholder=texts.PH_STATUS,
                              required=True, initial=item.status or None),
            kit.text_input(p, texts.FIELD_PROGRESS, placeholder=texts.PH_PROGRESS, required=True,
                           default=item.progress, max_length=3),
            kit.text_input(r, texts.FIELD_LAG_REASON, placeholder=texts.PH_LAG_REASON,
                           default=item.lag_reason or None, max_length=500),
            kit.text_input(a, texts.FIELD_ADJUSTMENT, placeholder=texts.PH_ADJUSTMENT,
                           default=item.adjustment or None, max_length=500),
            kit.submit_button(texts.BTN_SAVE_TASK.format(seq=row.seq), to_name(item.submit)),
        ]))
    more = view.more + max(0, len(view.items) - MAX_FORMS)
    if more:
        elements.append(kit.md(texts.UPDATE_MORE.format(n=more)))
    return kit.card(texts.UPDATE_TITLE.format(title=view.title), template="orange", elements=elements,
                    summary=texts.UPDATE_TITLE.format(title=view.title))
