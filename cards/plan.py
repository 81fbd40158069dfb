"""《跨部门协作行动方案》: the drafting card (tables + one short form at a time) and the
published 会议纪要. Pure: views in, Card JSON 2.0 out."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import Level
from cards import kit
from cards.tracking import RiskRow, risks_table

LEVELS = kit.code_options(texts.LEVEL_LABELS)


@dataclass(frozen=True)
class PlanTask:
    task_id: int
    seq: int
    content: str
    owner: str
    start: str
    due: str
    standard: str
    resources: str = ""
    depends: str = ""        # "#2" or ""
    lagging: bool = False    # only ever true once the plan is being carried out


@dataclass(frozen=True)
class PlanRisk:
    risk_id: int
    risk: str
    likelihood: Level
    impact: Level
    response: str
    owner: str
    open: bool = True


@dataclass(frozen=True)
class PlanNode:
    node_id: int
    name: str
    at: str
    meeting: str             # time of the 进度确认会


@dataclass(frozen=True)
class PlanActions:
    """Action names the drafting card emits (constants of handlers.plan)."""
    mode: str
    add_task: str
    add_risk: str
    add_node: str
    edit_task: str
    delete_task: str
    delete_risk: str
    delete_node: str
    carry: str
    publish: str
    set_depends: str = ""    # the second, optional step: which task waits for which


@dataclass(frozen=True)
class PlanView:
    case_id: int
    case_version: int
    title: str
    tasks: tuple[PlanTask, ...]
    risks: tuple[PlanRisk, ...]
    nodes: tuple[PlanNode, ...]
    meeting_hours: int = 24
    actions: PlanActions | None = None      # None → read-only (published)
    mode: str = "task"                       # which form is shown: task | risk | node | depends
    editing: PlanTask | None = None          # the task being edited in the task form
    typed: dict[str, str] = field(default_factory=dict)   # what the user typed (after an error)
    carry_count: int = 0
    published_version: int = 0
    warning: str = ""                        # what the form asks the user to confirm (shown above it)
    confirm: str = ""                        # fingerprint of the warned values: submitting them again saves
    suggested_start: str = ""                # "YYYY-MM-DD HH:MM" pre-filled in new task rows


TASK_ROWS = 3   # new tasks one plan form takes at once


def row_key(key: str, n: int) -> str:
    """Field name of task row n: row 1 keeps the plain names (an edit form is row 1)."""
    return key if n == 1 else f"{key}_{n}"


def _tasks_table(tasks: tuple[PlanTask, ...]) -> dict:
    rows = [{"task": f"#{t.seq} {t.content}" + (f" · {texts.LAGGING_TAG}" if t.lagging else ""),
             "owner": [t.owner], "start": t.start, "due": t.due,
             "standard": t.standard or "—", "res": t.resources or "—", "dep": t.depends or "—"} for t in tasks]
    return kit.table([("task", texts.COL_TASK, "text"), ("owner", texts.COL_OWNER, "persons"),
                      ("start", texts.COL_START, "text"), ("due", texts.COL_DUE, "text"),
                      ("standard", texts.COL_STANDARD, "text"), ("res", texts.COL_RESOURCES, "text"),
                      ("dep", texts.COL_DEPENDS, "text")], rows)


def _risks_table(risks: tuple[PlanRisk, ...]) -> dict:
    return risks_table([RiskRow(risk=r.risk, likelihood=r.likelihood, impact=r.impact, response=r.response,
                                owner=r.owner, open=r.open, risk_id=r.risk_id) for r in risks])


def _nodes_table(nodes: tuple[PlanNode, ...]) -> dict:
    rows = [{"name": n.name, "at": n.at, "meeting": n.meeting} for n in nodes]
    return kit.table([("name", texts.COL_NODE, "text"), ("at", texts.COL_NODE_AT, "text"),
                      ("meeting", texts.COL_MEETING, "text")], rows)


def _sections(view: PlanView) -> list[dict]:
    """Lagging tasks first, then the open risks (highlighted), then the other tasks, the key
    nodes and the closed risks."""
    lagging = tuple(t for t in view.tasks if t.lagging)
    others = tuple(t for t in view.tasks if not t.lagging)
    open_risks = tuple(r for r in view.risks if r.open)
    closed = tuple(r for r in view.risks if not r.open)
    out: list[dict] = []
    if lagging:
        out += [kit.md(texts.PLAN_LAGGING_HEAD.format(n=len(lagging))), _tasks_table(lagging)]
    if open_risks:
        out += [kit.md(texts.PLAN_RISKS_HEAD), _risks_table(open_risks)]
    out.append(kit.md(texts.PLAN_TASKS_HEAD))
    out.append(_tasks_table(others) if others else kit.md(texts.PLAN_NONE))
    out.append(kit.md(texts.PLAN_NODES_HEAD.format(hours=view.meeting_hours)))
    out.append(_nodes_table(view.nodes) if view.nodes else kit.md(texts.PLAN_NONE))
    if not view.risks:
        out += [kit.md(texts.PLAN_RISKS_HEAD), kit.md(texts.PLAN_NONE)]
    if closed:
        out += [kit.md(texts.TRACK_CLOSED_RISKS_HEAD), _risks_table(closed)]
    return out


def _value(view: PlanView, action: str, row_id: int | None = None, **extra: str) -> ActionValue:
    return ActionValue(action, case_id=view.case_id, version=view.case_version, row_id=row_id, extra=extra)


def _edit_panel(view: PlanView, a: PlanActions) -> dict:
    rows: list[dict] = []
    for t in view.tasks:
        rows.append(kit.columns([[kit.md(f"#{t.seq} {kit.esc(t.content)}")],
                                 [kit.button(texts.BTN_EDIT.format(seq=t.seq), _value(view, a.edit_task, t.task_id))],
                                 [kit.button(texts.BTN_DELETE, _value(view, a.delete_task, t.task_id),
                                             type="danger", confirm=(texts.PLAN_DELETE_TASK_CONFIRM[0],
                                                                     texts.PLAN_DELETE_TASK_CONFIRM[1].format(
                                                                         seq=t.seq, content=t.content[:40])))]],
                                [3, 1, 1]))
    for r in view.risks:
        rows.append(kit.columns([[kit.md(f"{texts.COL_RISK}：{kit.esc(r.risk)}")],
                                 [kit.button(texts.BTN_DELETE, _value(view, a.delete_risk, r.risk_id), type="danger",
                                             confirm=texts.PLAN_DELETE_RISK_CONFIRM)]],
                                [4, 1]))
    for n in view.nodes:
        rows.append(kit.columns([[kit.md(f"{texts.COL_NODE}：{kit.esc(n.name)} {n.at}")],
                                 [kit.button(texts.BTN_DELETE, _value(view, a.delete_node, n.node_id), type="danger",
                                             confirm=texts.PLAN_DELETE_NODE_CONFIRM)]],
                                [4, 1]))
    return kit.collapsible(texts.PLAN_EDIT_PANEL, rows)


def _labelled(label: str, element: dict) -> list[dict]:
    """A picker has no label of its own: a bold line above it says what it is."""
    return [kit.md(f"**{label}**"), element]


def _task_fields(view: PlanView, n: int, ed: PlanTask | None) -> list[dict]:
    typed = view.typed

    def pick(key: str, stored: str | None) -> str | None:
        return typed.get(row_key(key, n)) or stored or None
    required = ed is not None  # new rows may stay empty; the handler checks a row once anything is in it
    suggested = view.suggested_start if ed is None else None
    return [
        kit.text_input(row_key("content", n), texts.FIELD_CONTENT, placeholder=texts.PH_CONTENT, required=required,
                       default=pick("content", ed.content if ed else None), max_length=200),
        kit.columns([
            _labelled(texts.LABEL_OWNER, kit.select_person(row_key("owner", n), placeholder=texts.PH_OWNER,
                                                           required=required,
                                                           initial=pick("owner", ed.owner if ed else None))),
            _labelled(texts.LABEL_START, kit.datetime_picker(row_key("start", n), placeholder=texts.PH_START,
                                                             required=required,
                                                             initial=pick("start", suggested))),
            _labelled(texts.LABEL_DUE, kit.datetime_picker(row_key("due", n), placeholder=texts.PH_DUE,
                                                           required=required, initial=pick("due", None)))]),
        kit.columns([
            [kit.text_input(row_key("standard", n), texts.FIELD_STANDARD, placeholder=texts.PH_STANDARD,
                            required=required, default=pick("standard", ed.standard if ed else None),
                            max_length=300)],
            [kit.text_input(row_key("resources", n), texts.FIELD_RESOURCES, placeholder=texts.PH_RESOURCES,
                            default=pick("resources", ed.resources if ed else None), max_length=300)]]),
    ]


def _warning(view: PlanView, button: str) -> list[dict]:
    if not view.warning:
        return []
    return [kit.md(f"<font color='orange'>{texts.WARN_HEAD}{kit.esc(view.warning)}</font>\n"
                   + texts.WARN_CONFIRM_HINT.format(button=button))]


def _submit(view: PlanView, action: str, label: str, row_id: int | None = None) -> dict:
    extra = {"ok": view.confirm} if view.confirm else {}
    return kit.submit_button(texts.BTN_SAVE_ANYWAY if view.confirm else label,
                             to_name(_value(view, action, row_id, **extra)))


def _task_form(view: PlanView, a: PlanActions) -> dict:
    """An edit shows one task; adding shows TASK_ROWS rows (each row: what, who, when, standard)."""
    ed = view.editing
    if ed is not None:
        fields = [kit.md(texts.PLAN_FORM_TASK_EDIT.format(seq=ed.seq))] + _task_fields(view, 1, ed)
        label = texts.BTN_SAVE_EDIT
    else:
        fields = [kit.md(texts.PLAN_FORM_TASKS.format(n=TASK_ROWS))]
        for n in range(1, TASK_ROWS + 1):
            fields += [kit.md(texts.PLAN_ROW_HEAD.format(n=n))] + _task_fields(view, n, None)
        label = texts.BTN_ADD_TASK
    fields = _warning(view, texts.BTN_SAVE_ANYWAY) + fields
    fields.append(_submit(view, a.add_task, label, ed.task_id if ed else None))
    return kit.form("plan_task", fields)


def _depends_form(view: PlanView, a: PlanActions) -> dict:
    t = view.typed
    options = [(f"#{x.seq} {x.content}"[:40], str(x.task_id)) for x in view.tasks]
    return kit.form("plan_depends", [
        kit.md(texts.PLAN_FORM_DEPENDS),
        kit.columns([[kit.select_static("task", options, placeholder=texts.PH_DEPENDS_TASK, required=True,
                                        initial=t.get("task") or None)],
                     [kit.select_static("depends", [(texts.NO_DEPENDENCY, "0")] + options,
                                        placeholder=texts.PH_DEPENDS, required=True,
                                        initial=t.get("depends") or None)]]),
        kit.submit_button(texts.BTN_SAVE_DEPENDS, to_name(_value(view, a.set_depends))),
    ])


def _risk_form(view: PlanView, a: PlanActions) -> dict:
    t = view.typed
    return kit.form("plan_risk", [
        kit.md(texts.PLAN_FORM_RISK),
        kit.text_input("risk", texts.FIELD_RISK, placeholder=texts.PH_RISK, required=True,
                       default=t.get("risk") or None, max_length=300),
        kit.columns([[kit.select_static("likelihood", LEVELS, placeholder=texts.FIELD_LIKELIHOOD, required=True,
                                        initial=t.get("likelihood") or None)],
                     [kit.select_static("impact", LEVELS, placeholder=texts.FIELD_IMPACT, required=True,
                                        initial=t.get("impact") or None)]]),
        kit.text_input("response", texts.FIELD_RESPONSE, placeholder=texts.PH_RESPONSE, required=True,
                       default=t.get("response") or None, max_length=300),
        kit.select_person("owner", placeholder=texts.PH_OWNER, required=True, initial=t.get("owner") or None),
        kit.submit_button(texts.BTN_ADD_RISK, to_name(_value(view, a.add_risk))),
    ])


def _node_form(view: PlanView, a: PlanActions) -> dict:
    t = view.typed
    return kit.form("plan_node", [
        kit.md(texts.PLAN_FORM_NODE),
        kit.text_input("name", texts.FIELD_NODE_NAME, placeholder=texts.PH_NODE_NAME, required=True,
                       default=t.get("name") or None, max_length=60),
        *_labelled(texts.FIELD_NODE_AT, kit.datetime_picker("at", placeholder=texts.PH_NODE_AT, required=True,
                                                            initial=t.get("at") or None)),
        *_warning(view, texts.BTN_SAVE_ANYWAY),
        _submit(view, a.add_node, texts.BTN_ADD_NODE),
    ])


def _can_link(view: PlanView, a: PlanActions) -> bool:
    return len(view.tasks) > 1 and bool(a.set_depends)


def _mode_buttons(view: PlanView, a: PlanActions) -> list[dict]:
    """「＋任务」「＋风险」「＋关键节点」「设置依赖」: each opens that form for the clicker only."""
    buttons = [kit.button(texts.BTN_MODE_TASK, _value(view, a.mode, m="task")),
               kit.button(texts.BTN_MODE_RISK, _value(view, a.mode, m="risk")),
               kit.button(texts.BTN_MODE_NODE, _value(view, a.mode, m="node"))]
    if _can_link(view, a):
        buttons.append(kit.button(texts.BTN_MODE_DEPENDS, _value(view, a.mode, m="depends")))
    return buttons


def plan_form(view: PlanView) -> dict:
    """One person's private plan form (仅对你可见): the form of `view.mode`, and the buttons that
    switch it in place. It stays open after a submit for the next task, risk or node."""
    a = view.actions
    assert a is not None, "a plan form needs the drafting actions"
    mode = "task" if view.mode == "depends" and not _can_link(view, a) else view.mode
    form = {"task": _task_form, "risk": _risk_form, "node": _node_form, "depends": _depends_form}.get(mode, _task_form)
    elements = [form(view, a), kit.columns([[b] for b in _mode_buttons(view, a)])]
    title = texts.PLAN_FORM_TITLE.format(title=view.title)
    return kit.card(title, template="orange", elements=elements, summary=title)


def plan_card(view: PlanView) -> dict:
    """The plan the group shares: tasks, risks, key nodes and the buttons. It holds no form
    (cards.md 9): the buttons open the forms for the clicker only, so nobody's typing is wiped."""
    title = texts.PLAN_TITLE.format(title=view.title)
    a = view.actions
    if a is None:
        return kit.card(title, template="green", subtitle=texts.PLAN_SUBTITLE_PUBLISHED.format(
            version=view.published_version), elements=[kit.md(texts.PLAN_PUBLISHED_NOTE.format(
                version=view.published_version))] + _sections(view), summary=title)
    elements = [kit.md(texts.PLAN_INTRO)] + _sections(view)
    if view.tasks or view.risks or view.nodes:
        elements.append(_edit_panel(view, a))
    elements.append(kit.hr())
    buttons = _mode_buttons(view, a)
    if view.carry_count:
        buttons.append(kit.button(texts.BTN_CARRY.format(n=view.carry_count), _value(view, a.carry)))
    buttons.append(kit.button(texts.BTN_PUBLISH, _value(view, a.publish), type="primary_filled",
                              confirm=texts.PUBLISH_CONFIRM))
    elements.append(kit.columns([[b] for b in buttons]))
    subtitle = texts.PLAN_SUBTITLE_DRAFT.format(tasks=len(view.tasks), risks=len(view.risks), nodes=len(view.nodes))
    return kit.card(title, template="orange", subtitle=subtitle, elements=elements, summary=title)


@dataclass(frozen=True)
class MinutesView:
    title: str
    version: int
    when: str
    tasks: tuple[PlanTask, ...]
    risks: tuple[PlanRisk, ...]
    nodes: tuple[PlanNode, ...]
    meeting_hours: int = 24
    timeline: kit.Timeline | None = None    # the tasks and key nodes as a chart


def minutes_card(view: MinutesView) -> dict:
    """The published plan as 会议纪要: every owner @mentioned with their tasks."""
    by_owner: dict[str, list[str]] = {}
    for t in view.tasks:
        by_owner.setdefault(t.owner, []).append(f"#{t.seq} {kit.esc(t.content)}（{t.due}）")
    lines = [texts.MINUTES_OWNER_LINE.format(owner=kit.at(o), tasks="、".join(ts)) for o, ts in by_owner.items()]
    pv = PlanView(case_id=0, case_version=0, title=view.title, tasks=view.tasks, risks=view.risks, nodes=view.nodes,
                  meeting_hours=view.meeting_hours)
    elements = [kit.md(texts.MINUTES_OWNERS_HEAD + "\n" + "\n".join(lines))] + _sections(pv)
    if view.timeline is not None:
        elements.append(kit.chart_timeline(view.timeline))
    title = texts.MINUTES_TITLE.format(title=view.title)
    return kit.card(title, template="green", subtitle=texts.MINUTES_SUBTITLE.format(version=view.version,
                                                                                     when=view.when),
                    elements=elements, summary=title)
