"""Step 1 cards: the form that fills 《问题共识表》 and the table itself with its sign-off rows.
Pure: views in (the handler puts the ActionValues the buttons carry into them), dicts out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import SignoffStatus
from cards import kit

MAX_DEPTS = 6
MIN_ROWS = 2     # department rows a new form shows; more on request (the form's 「还有更多部门」)
MORE_FIELD = "more_depts"
TEXT_FIELDS = ("title", "background", "current_state", "impact", "goal", "expected_outcome")


def dept_fields(n: int) -> tuple[str, str]:
    return f"dept{n}_name", f"dept{n}_head"


@dataclass(frozen=True)
class FormView:
    """The step-1 form; `values` are what to show (a saved version or what the user typed)."""

    title: str                      # the card header (new / edit)
    submit: ActionValue
    cancel: ActionValue | None = None
    values: dict[str, str] = field(default_factory=dict)
    error: str = ""                 # the validation message, shown above the fields
    rows: int = MIN_ROWS            # department rows asked for (more are shown when values fill them)


def shown_rows(view: FormView) -> int:
    filled = [n for n in range(1, MAX_DEPTS + 1) if any(view.values.get(f) for f in dept_fields(n))]
    return min(MAX_DEPTS, max(MIN_ROWS, view.rows, max(filled, default=0)))


def form_card(view: FormView) -> dict:
    v = view.values
    fields = [
        kit.text_input("title", texts.S1_F_TITLE, placeholder=texts.S1_PH_TITLE, default=v.get("title") or None,
                       max_length=60),
        kit.text_input("background", texts.S1_F_BACKGROUND, placeholder=texts.S1_PH_BACKGROUND, multiline=True,
                       default=v.get("background") or None, max_length=500),
        kit.text_input("current_state", texts.S1_F_CURRENT, placeholder=texts.S1_PH_CURRENT, multiline=True,
                       default=v.get("current_state") or None, max_length=500),
        kit.text_input("impact", texts.S1_F_IMPACT, placeholder=texts.S1_PH_IMPACT, multiline=True,
                       default=v.get("impact") or None, max_length=500),
        kit.columns([
            [kit.text_input("goal", texts.S1_F_GOAL, placeholder=texts.S1_PH_GOAL, default=v.get("goal") or None,
                            max_length=300)],
            [kit.md(f"**{texts.S1_F_GOAL_DATE}**"),
             kit.date_picker("goal_date", placeholder=texts.S1_F_GOAL_DATE, initial=_day(v.get("goal_date")))],
        ], weights=[3, 2]),
        kit.text_input("expected_outcome", texts.S1_F_OUTCOME, placeholder=texts.S1_PH_OUTCOME, multiline=True,
                       default=v.get("expected_outcome") or None, max_length=500),
        kit.md(texts.S1_DEPTS_HEAD),
    ]
    rows = shown_rows(view)
    for n in range(1, rows + 1):
        name_f, head_f = dept_fields(n)
        head = v.get(head_f) or None
        fields.append(kit.columns([
            [kit.text_input(name_f, texts.S1_F_DEPT_NAME.format(n=n), placeholder=texts.S1_PH_DEPT_NAME,
                            default=v.get(name_f) or None, max_length=20)],
            [kit.md(" "), kit.select_person(head_f, placeholder=texts.S1_PH_DEPT_HEAD,
                                            initial=head if head and _is_open_id(head) else None)],
        ], weights=[1, 1]))
    if rows < MAX_DEPTS:
        fields.append(kit.checker(MORE_FIELD, texts.S1_MORE_DEPTS))
    submit_label = texts.S1_SUBMIT if view.cancel is None else texts.S1_SAVE_EDIT
    submit = ActionValue(view.submit.action, case_id=view.submit.case_id, version=view.submit.version, row_id=rows)
    fields.append(kit.submit_button(submit_label, to_name(submit)))
    elements = [kit.md(texts.S1_FORM_INTRO)]
    if view.error:
        elements.append(kit.md(f"<font color='red'>{kit.esc(view.error)}</font>"))
    elements.append(kit.form("consensus_form", fields))
    if view.cancel is not None:
        elements.append(kit.button(texts.S_CANCEL, view.cancel))
    return kit.card(view.title, template="blue", elements=elements)


def _day(raw: str | None) -> str | None:
    if raw and len(raw) >= 10 and raw[4] == "-" and raw[7] == "-" and raw[:4].isdigit():
        return raw[:10]
    return None


def _is_open_id(value: str) -> bool:
    try:
        kit.at(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SignRow:
    department: str
    head_open_id: str
    status: str                     # a SignoffStatus code, or "pending" (no answer yet)
    at: datetime | None = None      # in the group's time zone
    reason: str = ""


@dataclass(frozen=True)
class TableView:
    title: str
    version: int
    background: str
    current_state: str
    impact: str
    goal: str
    goal_date: date | None
    expected_outcome: str
    rows: tuple[SignRow, ...]
    change_summary: str = ""
    had_signatures_before: bool = False   # this version reset earlier signatures
    agreed: bool = False                  # every head signed this version
    sign: ActionValue | None = None       # None: read-only (another step, or agreed)
    edit: ActionValue | None = None
    object_submit: ActionValue | None = None


def table_card(view: TableView) -> dict:
    objected = any(r.status == SignoffStatus.OBJECTED for r in view.rows)
    problem = "\n".join([
        texts.S1_SEC_PROBLEM,
        texts.S1_LINE_BACKGROUND.format(text=kit.esc(view.background)),
        texts.S1_LINE_CURRENT.format(text=kit.esc(view.current_state)),
        texts.S1_LINE_IMPACT.format(text=kit.esc(view.impact)),
    ])
    goal = "\n".join([
        texts.S1_LINE_GOAL.format(text=kit.esc(view.goal),
                                  date=view.goal_date.strftime(texts.S_DAY_FMT) if view.goal_date else texts.S_EMPTY),
        texts.S1_LINE_OUTCOME.format(text=kit.esc(view.expected_outcome)),
    ])
    elements = [kit.md(problem), kit.md(goal)]
    if view.change_summary and view.version > 1:
        elements.append(kit.md(texts.S1_LINE_CHANGES.format(version=view.version,
                                                            changes=kit.esc(view.change_summary))))
    rows = [{"dept": r.department, "head": [r.head_open_id],
             "status": kit.tag_option(*texts.S1_STATUS[r.status]),
             "when": r.at.strftime(texts.S_DATE_FMT) if r.at else texts.S_EMPTY,
             "reason": r.reason or texts.S_EMPTY} for r in view.rows]
    elements.append(kit.table([("dept", texts.S1_COL_DEPT, "text"), ("head", texts.S1_COL_HEAD, "persons"),
                               ("status", texts.S1_COL_STATUS, "options"), ("when", texts.S1_COL_WHEN, "text"),
                               ("reason", texts.S1_COL_REASON, "text")], rows, page_size=6))
    if view.agreed:
        elements.append(kit.md(texts.S1_AGREED_LINE))
    elif objected:
        elements.append(kit.md(texts.S1_OBJECTED_LINE))
    buttons = []
    if view.sign is not None:
        buttons.append([kit.button(texts.S1_BTN_SIGN, view.sign, type="primary_filled")])
    if view.edit is not None:
        buttons.append([kit.button(texts.S1_BTN_EDIT, view.edit)])
    if buttons:
        elements.append(kit.columns(buttons))
    if view.object_submit is not None:
        elements.append(kit.form("consensus_object", [
            kit.text_input("reason", texts.S1_OBJECT_LABEL, placeholder=texts.S1_OBJECT_PH, max_length=300),
            kit.submit_button(texts.S1_BTN_OBJECT, to_name(view.object_submit), type="danger"),
        ]))
    if view.agreed:
        colour, tag = "green", (texts.S1_TAG_AGREED, "green")
    elif objected:
        colour, tag = "red", (texts.S1_TAG_OBJECTED, "red")
    else:
        colour, tag = "orange", (texts.S1_TAG_WAITING, "orange")
    return kit.card(texts.S1_TABLE_TITLE, template=colour, tags=[tag],
                    subtitle=texts.S1_TABLE_SUBTITLE.format(title=view.title, version=view.version),
                    elements=elements, summary=f"{texts.S1_TABLE_TITLE} {view.title}")
