"""Step 3 cards: 《需求确认清单》 (department inputs, requirements with conflicts first, the
confirmations of the current version) and its forms. Pure: views in, dicts out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import Level
from cards import kit


@dataclass(frozen=True)
class InputLine:
    department: str
    contact_open_id: str | None
    resources: str = ""
    constraints: str = ""
    demands: str = ""
    submitted: bool = False


@dataclass(frozen=True)
class ReqLine:
    department: str
    demand: str
    solution: str
    priority: Level
    adjustment: str
    conflict_with: tuple[str, ...] = ()   # department names; non-empty = a 冲突点
    resolved: bool = False


@dataclass(frozen=True)
class ConfirmLine:
    department: str
    confirmed: bool
    at: datetime | None = None


@dataclass(frozen=True)
class ReqButtons:
    input: ActionValue
    add: ActionValue
    confirm: ActionValue
    resolve: ActionValue | None = None    # only while a conflict waits for the lead


@dataclass(frozen=True)
class ReqView:
    title: str
    version: int
    inputs: tuple[InputLine, ...]
    requirements: tuple[ReqLine, ...]     # already ordered: open conflicts, decided conflicts, others
    confirms: tuple[ConfirmLine, ...]
    archived_at: datetime | None = None
    buttons: ReqButtons | None = None


def _conflict_cell(r: ReqLine) -> str:
    if not r.conflict_with:
        return texts.S_EMPTY
    state = (texts.S3_CONFLICT_DONE if r.resolved else texts.S3_CONFLICT_OPEN)[0]
    return f"{state} · " + texts.S3_CONFLICT_WITH.format(depts="、".join(r.conflict_with))


def requirements_card(view: ReqView) -> dict:
    archived = view.archived_at is not None
    elements = [] if archived else [kit.md(texts.S3_INTRO)]
    elements.append(kit.md(texts.S3_INPUTS_HEAD))
    elements.append(kit.table(
        [("dept", texts.S3_COL_DEPT, "text"), ("contact", texts.S3_COL_CONTACT, "persons"),
         ("res", texts.S3_COL_RESOURCES, "text"), ("lim", texts.S3_COL_CONSTRAINTS, "text"),
         ("ask", texts.S3_COL_DEMANDS, "text"), ("state", texts.S3_COL_STATE, "options")],
        [{"dept": i.department, "contact": [i.contact_open_id] if i.contact_open_id else [],
          "res": i.resources or texts.S_EMPTY, "lim": i.constraints or texts.S_EMPTY,
          "ask": i.demands or texts.S_EMPTY,
          "state": kit.tag_option(*texts.S3_INPUT_STATE["done" if i.submitted else "missing"])}
         for i in view.inputs], page_size=6))
    missing = [i for i in view.inputs if not i.submitted]
    if missing and not archived:
        who = "、".join(f"{kit.esc(i.department)} {kit.at(i.contact_open_id)}" if i.contact_open_id
                       else kit.esc(i.department) for i in missing)
        elements.append(kit.md(texts.S3_INPUTS_MISSING.format(who=who)))
    elements.append(kit.md(texts.S3_REQS_HEAD))
    if view.requirements:
        elements.append(kit.table(
            [("dept", texts.S3_COL_DEPT, "text"), ("demand", texts.S3_COL_DEMAND, "text"),
             ("solution", texts.S3_COL_SOLUTION, "text"), ("prio", texts.S3_COL_PRIORITY, "options"),
             ("conflict", texts.S3_COL_CONFLICT, "text"), ("adjust", texts.S3_COL_ADJUST, "text")],
            [{"dept": r.department, "demand": r.demand, "solution": r.solution or texts.S_EMPTY,
              "prio": kit.tag_option(texts.LEVEL_LABELS[r.priority], texts.S3_PRIORITY_COLOURS[r.priority]),
              "conflict": _conflict_cell(r), "adjust": r.adjustment or texts.S_EMPTY}
             for r in view.requirements]))
    else:
        elements.append(kit.md(texts.S3_NO_REQS))
    elements.append(kit.md(texts.S3_CONFIRM_HEAD))
    elements.append(kit.table(
        [("dept", texts.S3_COL_DEPT, "text"), ("state", texts.S3_COL_STATE, "options"),
         ("when", texts.S3_COL_WHEN, "text")],
        [{"dept": c.department, "state": kit.tag_option(*texts.S3_CONFIRM_STATE["done" if c.confirmed else "pending"]),
          "when": c.at.strftime(texts.S_DATE_FMT) if c.at else texts.S_EMPTY} for c in view.confirms],
        page_size=6))
    if view.archived_at is not None:
        elements.append(kit.md(texts.S3_ARCHIVED_LINE.format(at=view.archived_at.strftime(texts.S_DATE_FMT))))
    if view.buttons is not None:
        b = view.buttons
        row = [[kit.button(texts.S3_BTN_INPUT, b.input)], [kit.button(texts.S3_BTN_ADD, b.add)]]
        if b.resolve is not None:
            row.append([kit.button(texts.S3_BTN_RESOLVE, b.resolve, type="danger")])
        elements.append(kit.columns(row))
        elements.append(kit.button(texts.S3_BTN_CONFIRM, b.confirm, type="primary_filled"))
    open_conflicts = any(r.conflict_with and not r.resolved for r in view.requirements)
    if archived:
        colour, tag = "grey", (texts.S3_TAG_ARCHIVED, "neutral")
    elif open_conflicts:
        colour, tag = "red", (texts.S3_TAG_CONFLICT, "red")
    elif missing:
        colour, tag = "orange", (texts.S3_TAG_COLLECTING, "orange")
    else:
        colour, tag = "orange", (texts.S3_TAG_CONFIRMING, "orange")
    return kit.card(texts.S3_TITLE, template=colour, tags=[tag],
                    subtitle=texts.S3_SUBTITLE.format(title=view.title, version=view.version),
                    elements=elements, summary=f"{texts.S3_TITLE} {view.title}")


# ---------------------------------------------------------------- forms
@dataclass(frozen=True)
class FormView:
    title: str
    submit: ActionValue
    cancel: ActionValue
    error: str = ""
    values: dict[str, object] = field(default_factory=dict)


def _form(view: FormView, name: str, fields: list[dict]) -> dict:
    elements = []
    if view.error:
        elements.append(kit.md(f"<font color='red'>{kit.esc(view.error)}</font>"))
    elements.append(kit.form(name, fields + [kit.submit_button(texts.S3_SAVE, to_name(view.submit))]))
    elements.append(kit.button(texts.S_CANCEL, view.cancel))
    return kit.card(view.title, template="blue", elements=elements)


def _s(values: dict[str, object], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) and value else None


def input_form(view: FormView, depts: tuple[tuple[str, str], ...]) -> dict:
    """depts: (name, id) of the departments the user is 接口人 for."""
    v = view.values
    fields = [
        kit.md(f"**{texts.S3_F_INPUT_DEPT}**"),
        kit.select_static("dept", depts, placeholder=texts.S3_PH_INPUT_DEPT,
                          initial=_s(v, "dept") or (depts[0][1] if len(depts) == 1 else None)),
        kit.text_input("resources", texts.S3_F_RESOURCES, placeholder=texts.S3_PH_RESOURCES, multiline=True,
                       default=_s(v, "resources"), max_length=500),
        kit.text_input("constraints", texts.S3_F_CONSTRAINTS, placeholder=texts.S3_PH_CONSTRAINTS,
                       multiline=True, default=_s(v, "constraints"), max_length=500),
        kit.text_input("demands", texts.S3_F_DEMANDS, placeholder=texts.S3_PH_DEMANDS, multiline=True,
                       default=_s(v, "demands"), max_length=500),
    ]
    return _form(view, "req_input", fields)


def add_form(view: FormView, depts: tuple[tuple[str, str], ...]) -> dict:
    v = view.values
    conflict = v.get("conflict")
    chosen = [c for c in conflict if isinstance(c, str)] if isinstance(conflict, list) else []
    # the kit has no multi-select builder: the same options, as the multi-select component
    multi = {**kit.select_static("conflict", depts, placeholder=texts.S3_PH_CONFLICT), "tag": "multi_select_static"}
    if chosen:
        multi["selected_values"] = chosen
    fields = [
        kit.md(f"**{texts.S3_F_REQ_DEPT}**"),
        kit.select_static("dept", depts, placeholder=texts.S3_PH_INPUT_DEPT, initial=_s(v, "dept")),
        kit.text_input("demand", texts.S3_F_DEMAND, placeholder=texts.S3_PH_DEMAND, default=_s(v, "demand"),
                       max_length=300),
        kit.text_input("solution", texts.S3_F_SOLUTION, placeholder=texts.S3_PH_SOLUTION,
                       default=_s(v, "solution"), max_length=300),
        kit.md(f"**{texts.S3_F_PRIORITY}**"),
        kit.select_static("priority", kit.code_options(texts.LEVEL_LABELS), placeholder=texts.S3_PH_PRIORITY,
                          initial=_s(v, "priority") or Level.MID),
        kit.md(f"**{texts.S3_F_CONFLICT}**"),
        multi,
        kit.text_input("adjustment", texts.S3_F_ADJUST, placeholder=texts.S3_PH_ADJUST,
                       default=_s(v, "adjustment"), max_length=300),
    ]
    return _form(view, "req_add", fields)


def resolve_form(view: FormView, conflicts: tuple[tuple[str, str], ...]) -> dict:
    """conflicts: (label, requirement id) of the open conflicts."""
    v = view.values
    fields = [
        kit.md(f"**{texts.S3_F_RESOLVE_REQ}**"),
        kit.select_static("req", conflicts, placeholder=texts.S3_PH_RESOLVE_REQ,
                          initial=_s(v, "req") or (conflicts[0][1] if conflicts else None)),
        kit.text_input("decision", texts.S3_F_DECISION, placeholder=texts.S3_PH_DECISION, multiline=True,
                       default=_s(v, "decision"), max_length=300),
    ]
    return _form(view, "req_resolve", fields)
