"""《进度跟踪表》 and the progress-update form. Pure: views in, Card JSON 2.0 out."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import ChangeStatus, Level, RiskStatus, TaskStatus
from cards import kit

MAX_FORMS = 6  # forms per update card (each is 4 fields + a button)


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    seq: int
    content: str
    owner: str            # open_id
    status: TaskStatus
    progress: int
    due: str              # already formatted in the group's time zone
    lag_reason: str = ""
    adjustment: str = ""
    lagging: bool = False
    department: str = ""


@dataclass(frozen=True)
class RiskRow:
    risk: str
    likelihood: Level
    impact: Level
    response: str
    owner: str
    open: bool = True
    risk_id: int = 0


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
    close_risk: ActionValue | None = None   # submit of the 关闭风险 form (None: no form)
    typed: dict[str, str] = field(default_factory=dict)   # the form's values after an error
    baseline_late: tuple[int, ...] = ()   # seqs of tasks later than their baseline (version 1) deadline
    late: bool = False              # the standup's close, sent late after downtime: marked 「（补发）」


def _status_cell(row: TaskRow) -> list[dict[str, str]]:
    cell = kit.tag_option(texts.TASK_STATUS_LABELS[row.status], texts.TASK_STATUS_COLOURS[row.status])
    if row.lagging:
        cell += kit.tag_option(texts.LAGGING_TAG, "red")
    return cell


def _task_label(row: TaskRow) -> str:
    return f"#{row.seq} {row.content}"


def _tasks_table(tasks: list[TaskRow]) -> dict:
    rows = [{"task": _task_label(t), "owner": [t.owner], "status": _status_cell(t), "progress": f"{t.progress}%",
             "due": t.due, "reason": t.lag_reason or "—", "adjust": t.adjustment or "—"} for t in tasks]
    return kit.table([("task", texts.COL_TASK, "text"), ("owner", texts.COL_OWNER, "persons"),
                      ("status", texts.COL_STATUS_T, "options"), ("progress", texts.COL_PROGRESS, "text"),
                      ("due", texts.COL_DUE, "text"), ("reason", texts.COL_LAG_REASON, "text"),
                      ("adjust", texts.COL_ADJUSTMENT, "text")], rows)


def risk_status_cell(open_: bool, impact: Level) -> list[dict[str, str]]:
    """未关闭 orange (plus a red 高影响 tag), 已关闭 green."""
    cell = kit.tag_option(*texts.RISK_STATUS[RiskStatus.OPEN if open_ else RiskStatus.CLOSED])
    if open_ and impact == Level.HIGH:
        cell += kit.tag_option(*texts.RISK_HIGH_TAG)
    return cell


def risks_table(risks: list[RiskRow]) -> dict:
    rows = [{"risk": r.risk, "status": risk_status_cell(r.open, r.impact), "l": texts.LEVEL_LABELS[r.likelihood],
             "i": texts.LEVEL_LABELS[r.impact], "resp": r.response or "—", "owner": [r.owner]} for r in risks]
    return kit.table([("risk", texts.COL_RISK, "text"), ("status", texts.COL_RISK_STATUS, "options"),
                      ("l", texts.COL_LIKELIHOOD, "text"), ("i", texts.COL_IMPACT, "text"),
                      ("resp", texts.COL_RESPONSE, "text"), ("owner", texts.COL_OWNER, "persons")], rows)


def risk_close_form(risks: list[RiskRow], submit: ActionValue, typed: dict[str, str]) -> dict:
    """One small form for all open risks: pick one, an optional note, 关闭风险."""
    options = [(r.risk[:40], str(r.risk_id)) for r in risks]
    return kit.form("risk_close", [
        kit.md(texts.RISK_CLOSE_HEAD),
        kit.select_static("risk", options, placeholder=texts.PH_RISK_PICK, required=True,
                          initial=typed.get("risk") or None),
        kit.text_input("note", texts.FIELD_RISK_NOTE, placeholder=texts.PH_RISK_NOTE,
                       default=typed.get("note") or None, max_length=300),
        kit.submit_button(texts.BTN_CLOSE_RISK, to_name(submit), type="primary")])


def tracking_card(view: TrackingView) -> dict:
    """Lagging tasks first, then the open risks (highlighted), then the other tasks, the chart
    and the closed risks."""
    lagging = [t for t in view.tasks if t.lagging]
    others = [t for t in view.tasks if not t.lagging]
    open_risks = [r for r in view.risks if r.open]
    closed_risks = [r for r in view.risks if not r.open]
    done = sum(1 for t in view.tasks if t.status == TaskStatus.DONE)
    elements: list[dict] = []
    late = {"n": len(view.baseline_late), "seqs": "、".join(f"#{s}" for s in view.baseline_late)}
    if lagging:
        elements.append(kit.md(texts.TRACK_LAGGING_HEAD.format(n=len(lagging))))
        if view.baseline_late:
            elements.append(kit.md(texts.TRACK_BASELINE_LATE.format(**late)))
    elif view.baseline_late:  # on the current plan, but not on the baseline: say both
        plan = texts.TRACK_PLAN_ALL_DONE if view.tasks and done == len(view.tasks) else texts.TRACK_PLAN_ON_TRACK
        elements.append(kit.md(texts.TRACK_VS_BASELINE.format(plan=plan, **late)))
    else:
        elements.append(kit.md(texts.TRACK_ALL_ON_TRACK))
    if lagging:
        elements.append(_tasks_table(lagging))
    if open_risks:
        elements.append(kit.md(texts.TRACK_OPEN_RISKS_HEAD.format(n=len(open_risks))))
        elements.append(risks_table(open_risks))
    if others:
        elements.append(kit.md(texts.TRACK_OTHER_TASKS_HEAD if lagging else texts.TRACK_TASKS_HEAD))
        elements.append(_tasks_table(others))
    if view.tasks:
        names = kit.unique_labels([kit.short(t.content) for t in view.tasks], [f"#{t.seq}" for t in view.tasks])
        data = [{"task": name, "progress": t.progress} for name, t in zip(names, view.tasks)]
        elements.append(kit.chart_hbar(texts.TRACK_CHART_TITLE, data, "task", "progress", value_max=100))
    else:
        elements.append(kit.md(texts.TRACK_NO_TASKS))
    if closed_risks:
        elements.append(kit.md(texts.TRACK_CLOSED_RISKS_HEAD))
        elements.append(risks_table(closed_risks))
    if not view.risks:
        elements.append(kit.md(texts.TRACK_NO_RISKS))
    if open_risks and view.close_risk is not None:  # the presenter offers it in steps 5 and 6
        elements.append(risk_close_form(open_risks, view.close_risk, view.typed))
    if view.buttons and not view.archived:
        elements.append(button_row(view.buttons))
    return kit.card(texts.TRACK_TITLE.format(title=view.title) + (texts.LATE_MARK if view.late else ""),
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
    status: str = ""            # a TaskStatus code
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
                                             due=row.due, status=texts.TASK_STATUS_LABELS[row.status],
                                             progress=row.progress)
        if row.lagging:
            head += texts.UPDATE_TASK_LAGGING
        elements.append(kit.form(f"f{row.task_id}", [
            kit.md(head),
            kit.select_static(s, kit.code_options(texts.TASK_STATUS_LABELS), placeholder=texts.PH_STATUS,
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


# ---------------------------------------------------------------- change requests
@dataclass(frozen=True)
class ChangeFormView:
    case_id: int
    title: str
    mode: str                                   # edit | add | drop
    task_options: tuple[tuple[str, str], ...]   # (label, task id)
    mode_action: str
    submit: ActionValue
    typed: dict[str, str] = field(default_factory=dict)
    warning: str = ""           # what the requester is asked to confirm (shown above the form)
    confirm: str = ""           # fingerprint of the warned request: submitting it again files it


def _labelled(label: str, element: dict) -> list[dict]:
    return [kit.md(f"**{label}**"), element]


def change_form_card(view: ChangeFormView) -> dict:
    """Six fields at most per mode; a new task starts when the lead approves it."""
    t = view.typed
    def val(k: str) -> str | None:
        return t.get(k) or None
    reason = kit.text_input("reason", texts.FIELD_REASON, placeholder=texts.PH_REASON, required=True,
                            default=val("reason"), max_length=500)
    note = kit.text_input("retro_note", texts.FIELD_RETRO_NOTE, placeholder=texts.PH_RETRO_NOTE, multiline=True,
                          default=val("retro_note"), max_length=1000)
    task_pick = kit.select_static("task", view.task_options, placeholder=texts.PH_CHANGE_TASK, required=True,
                                  initial=val("task"))
    if view.mode == "add":
        fields = [kit.text_input("content", texts.FIELD_CONTENT, placeholder=texts.PH_CONTENT, required=True,
                                 default=val("content"), max_length=200),
                  kit.columns([_labelled(texts.LABEL_OWNER, kit.select_person("owner", placeholder=texts.PH_OWNER,
                                                                              required=True, initial=val("owner"))),
                               _labelled(texts.LABEL_DUE, kit.datetime_picker("due", placeholder=texts.PH_DUE,
                                                                              required=True, initial=val("due")))]),
                  kit.text_input("standard", texts.FIELD_STANDARD, placeholder=texts.PH_STANDARD, required=True,
                                 default=val("standard"), max_length=300), reason, note]
    elif view.mode == "drop":
        fields = [task_pick, reason, note]
    else:
        fields = [task_pick,
                  kit.columns([_labelled(texts.FIELD_NEW_START, kit.datetime_picker(
                                   "start", placeholder=texts.FIELD_NEW_START, initial=val("start"))),
                               _labelled(texts.FIELD_NEW_DUE, kit.datetime_picker(
                                   "due", placeholder=texts.FIELD_NEW_DUE, initial=val("due")))]),
                  *_labelled(texts.PH_NEW_OWNER, kit.select_person("owner", placeholder=texts.PH_NEW_OWNER,
                                                                   initial=val("owner"))), reason, note]
    modes = [(texts.BTN_CHANGE_EDIT, "edit"), (texts.BTN_CHANGE_ADD, "add"), (texts.BTN_CHANGE_DROP, "drop")]
    buttons = kit.columns([[kit.button(label, ActionValue(view.mode_action, case_id=view.case_id, extra={"m": m}),
                                       type="primary" if m == view.mode else "default")] for label, m in modes])
    warning = [kit.md(f"<font color='orange'>{texts.WARN_HEAD}{kit.esc(view.warning)}</font>\n"
                      + texts.WARN_CONFIRM_HINT.format(button=texts.BTN_SUBMIT_ANYWAY))] if view.warning else []
    submit = (ActionValue(view.submit.action, case_id=view.submit.case_id, version=view.submit.version,
                          row_id=view.submit.row_id, extra={"ok": view.confirm}) if view.confirm else view.submit)
    form = kit.form(f"change_{view.mode}", [kit.md(f"**{texts.CHANGE_KIND[view.mode]}**")] + fields + warning
                    + [kit.submit_button(texts.BTN_SUBMIT_ANYWAY if view.confirm else texts.BTN_SUBMIT_CHANGE,
                                         to_name(submit))])
    return kit.card(texts.CHANGE_TITLE.format(title=view.title), template="orange",
                    elements=[kit.md(texts.CHANGE_INTRO), buttons, form])


@dataclass(frozen=True)
class ChangeRequestView:
    no: int
    title: str
    requester: str
    lead: str
    kind: str
    lines: tuple[str, ...]      # trusted markup (already escaped) describing the change
    reason: str
    retro_note: str
    status: ChangeStatus
    approve: ActionValue | None = None
    reject: ActionValue | None = None
    new_version: int = 0
    decision_note: str = ""


def _decide_form(name: str, field_name: str, label: str, placeholder: str, button: str, value: ActionValue,
                 button_type: str) -> dict:
    """One decision with its optional note: the input and the button on one row."""
    return kit.form(name, [kit.columns([
        [kit.text_input(field_name, label, placeholder=placeholder, max_length=300)],
        [kit.submit_button(button, to_name(value), type=button_type)]], [3, 1])])


# the header colour; a rejected request is done with, so grey rather than its tag's red
HEADER_BY_CHANGE_STATUS = {ChangeStatus.PENDING: "orange", ChangeStatus.APPROVED: "green",
                           ChangeStatus.REJECTED: "grey"}


def change_request_card(view: ChangeRequestView) -> dict:
    text, colour = texts.CHANGE_STATUS[view.status]
    body = [texts.CHANGE_REQ_HEAD.format(who=kit.at(view.requester), kind=texts.CHANGE_KIND[view.kind],
                                         lead=kit.at(view.lead))]
    body += list(view.lines)
    body.append(texts.CHANGE_REQ_REASON.format(reason=kit.esc(view.reason)))
    if view.retro_note:
        body.append(texts.CHANGE_REQ_RETRO.format(note=kit.esc(view.retro_note)))
    if view.status != ChangeStatus.PENDING:
        body.append(texts.CHANGE_REQ_DECIDED[view.status].format(version=view.new_version))
        if view.decision_note:
            body.append(texts.CHANGE_REQ_NOTE.format(note=kit.esc(view.decision_note)))
    elements = [kit.md("\n".join(body))]
    if view.status == ChangeStatus.PENDING and view.approve and view.reject:
        elements.append(_decide_form("cr_approve", "approve_note", texts.FIELD_APPROVE_NOTE, texts.PH_APPROVE_NOTE,
                                     texts.BTN_APPROVE, view.approve, "primary_filled"))
        elements.append(_decide_form("cr_reject", "reject_note", texts.FIELD_REJECT_NOTE, texts.PH_REJECT_NOTE,
                                     texts.BTN_REJECT, view.reject, "danger"))
    return kit.card(texts.CHANGE_REQ_TITLE.format(no=view.no, title=view.title),
                    template=HEADER_BY_CHANGE_STATUS[view.status],
                    tags=[(text, colour)], elements=elements)


@dataclass(frozen=True)
class PlanDiffView:
    title: str
    version: int
    no: int
    lines: tuple[str, ...]      # trusted markup, one per changed task
    reason: str
    retro_note: str
    notify: tuple[str, ...]     # open_ids of the owners concerned
    decision_note: str = ""
    dependents: tuple[str, ...] = ()   # trusted markup: owners of tasks waiting for a moved one, told so
    requester: str = ""                # open_id of who asked (told here that it was approved), if not the lead


def plan_diff_card(view: PlanDiffView) -> dict:
    body = [texts.DIFF_APPROVED_FOR.format(who=kit.at(view.requester), no=view.no)] if view.requester else []
    body += [texts.DIFF_HEAD] + (list(view.lines) or [texts.DIFF_NONE])
    body.append(texts.CHANGE_REQ_REASON.format(reason=kit.esc(view.reason)))
    if view.retro_note:
        body.append(texts.CHANGE_REQ_RETRO.format(note=kit.esc(view.retro_note)))
    if view.decision_note:
        body.append(texts.CHANGE_REQ_NOTE.format(note=kit.esc(view.decision_note)))
    if view.notify:
        body.append(texts.DIFF_NOTIFY.format(who=" ".join(kit.at(o) for o in view.notify)))
    body += list(view.dependents)
    title = texts.DIFF_TITLE.format(version=view.version, title=view.title)
    return kit.card(title, template="blue", subtitle=texts.DIFF_SUBTITLE.format(no=view.no),
                    elements=[kit.md("\n".join(body))], summary=title)


@dataclass(frozen=True)
class CloseView:
    title: str
    open_tasks: int
    submit: ActionValue
    typed_reason: str = ""


def close_card(view: CloseView) -> dict:
    return kit.card(texts.EXEC_CLOSE_TITLE.format(title=view.title), template="orange", elements=[
        kit.md(texts.EXEC_CLOSE_INTRO.format(n=view.open_tasks)),
        kit.form("exec_close", [
            kit.text_input("reason", texts.FIELD_CLOSE_REASON, placeholder=texts.PH_CLOSE_REASON, required=True,
                           default=view.typed_reason or None, multiline=True, max_length=500),
            kit.submit_button(texts.BTN_CONFIRM_CLOSE, to_name(view.submit), type="danger_filled")])])
