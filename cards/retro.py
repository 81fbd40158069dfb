"""Step 6: the retrospective collection card and 《复盘总结报告》. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import ChangeStatus, RetroKind
from bot.durations import span
from cards import kit


@dataclass(frozen=True)
class Entry:
    kind: RetroKind
    content: str
    author: str
    entry_id: int = 0


@dataclass(frozen=True)
class RetroActions:
    """Action names for editing entries (constants of handlers.retro)."""
    edit: str       # row_id = entry → the form switches to editing it; no row → back to adding
    delete: str     # row_id = entry


@dataclass(frozen=True)
class RetroView:
    title: str
    entries: tuple[Entry, ...]
    missing: tuple[str, ...]        # open_ids of members who have not written anything
    submit: ActionValue
    finalise: ActionValue
    typed: dict[str, str] = field(default_factory=dict)
    actions: RetroActions | None = None
    editing: Entry | None = None    # the entry shown in the form (submit then saves it)
    fill: ActionValue | None = None  # the shared card's button that opens a member's private form


PANEL_ROWS = 20  # entries listed in the edit panel (newest first); keeps the card small


def _edit_panel(view: RetroView, a: RetroActions) -> dict:
    case_id = view.submit.case_id
    newest = sorted(view.entries, key=lambda e: -e.entry_id)
    rows: list[dict] = []
    for e in newest[:PANEL_ROWS]:
        line = texts.RETRO_PANEL_LINE.format(kind=texts.RETRO_KIND_LABELS[e.kind], content=kit.esc(e.content[:60]),
                                             author=kit.at(e.author))
        rows.append(kit.columns([[kit.md(line)],
                                 [kit.button(texts.BTN_RETRO_EDIT, ActionValue(a.edit, case_id=case_id,
                                                                              row_id=e.entry_id))],
                                 [kit.button(texts.BTN_RETRO_DELETE, ActionValue(a.delete, case_id=case_id,
                                                                                row_id=e.entry_id),
                                             type="danger", confirm=texts.RETRO_DELETE_CONFIRM)]], [4, 1, 1]))
    if len(newest) > PANEL_ROWS:
        rows.append(kit.md(texts.RETRO_PANEL_MORE.format(n=PANEL_ROWS)))
    return kit.collapsible(texts.RETRO_EDIT_PANEL, rows, expanded=view.editing is not None)


def _entries_table(entries: tuple[Entry, ...]) -> dict:
    order = {k: i for i, k in enumerate(RetroKind)}
    rows = [{"kind": texts.RETRO_KIND_LABELS[e.kind], "content": e.content, "author": [e.author]}
            for e in sorted(entries, key=lambda e: order[e.kind])]
    return kit.table([("kind", texts.COL_KIND, "text"), ("content", texts.COL_CONTENT, "text"),
                      ("author", texts.COL_AUTHOR, "persons")], rows)


def add_field(kind: RetroKind) -> str:
    return f"add_{kind}"


def _add_form(view: RetroView) -> dict:
    """One multiline box per kind, one entry per line: a member says everything in one submit."""
    fields: list[dict] = [kit.md(texts.RETRO_MULTI_HINT)]
    for kind in RetroKind:
        name = add_field(kind)
        fields.append(kit.text_input(name, texts.RETRO_KIND_LABELS[kind], placeholder=texts.RETRO_MULTI_PH[kind],
                                     multiline=True, default=view.typed.get(name) or None, max_length=1000))
    return kit.form("retro_entry", fields + [kit.submit_button(texts.BTN_RETRO_ADD, to_name(view.submit))])


def _edit_form(view: RetroView, ed: Entry) -> dict:
    kind = view.typed.get("kind") or ed.kind
    content = view.typed.get("content") or ed.content
    submit = ActionValue(view.submit.action, case_id=view.submit.case_id, row_id=ed.entry_id)
    return kit.form("retro_entry", [
        kit.md(texts.RETRO_FORM_EDIT),
        kit.select_static("kind", kit.code_options(texts.RETRO_KIND_LABELS), placeholder=texts.PH_RETRO_KIND,
                          required=True, initial=kind or None),
        kit.text_input("content", texts.FIELD_RETRO_CONTENT, placeholder=texts.PH_RETRO_CONTENT, required=True,
                       multiline=True, default=content or None, max_length=1000),
        kit.submit_button(texts.BTN_RETRO_SAVE, to_name(submit))])


def retro_card(view: RetroView) -> dict:
    """The card the group shares: what everyone wrote and who is missing. It holds no form
    (cards.md 9): 「填写复盘」 opens the form for the clicker only, so nobody's typing is wiped."""
    elements = [kit.md(texts.RETRO_INTRO)]
    elements.append(_entries_table(view.entries) if view.entries else kit.md(texts.RETRO_EMPTY))
    elements.append(kit.md(texts.RETRO_MISSING.format(who=" ".join(kit.at(o) for o in view.missing))
                           if view.missing else texts.RETRO_ALL_IN))
    if view.actions is not None and view.entries:
        elements.append(_edit_panel(view, view.actions))
    buttons = [kit.button(texts.BTN_RETRO_FINALISE, view.finalise, type="primary_filled",
                          confirm=texts.RETRO_FINALISE_CONFIRM)]
    if view.fill is not None:
        buttons.insert(0, kit.button(texts.BTN_RETRO_FILL, view.fill, type="primary"))
    elements.append(kit.columns([[b] for b in buttons]))
    title = texts.RETRO_TITLE.format(title=view.title)
    return kit.card(title, template="orange", elements=elements, summary=title)


def retro_form(view: RetroView) -> dict:
    """One member's private form: several entries at once, or the edit of one of their own."""
    ed = view.editing
    elements = [_edit_form(view, ed) if ed else _add_form(view)]
    if ed is not None and view.actions is not None:
        elements.append(kit.columns([[kit.button(texts.BTN_RETRO_CANCEL, ActionValue(
            view.actions.edit, case_id=view.submit.case_id))]]))
    title = texts.RETRO_FORM_TITLE.format(title=view.title)
    return kit.card(title, template="orange", elements=elements, summary=title)


@dataclass(frozen=True)
class PlanActualRow:
    task: str
    owner: str
    planned_start: str
    planned_due: str
    actual_done: str
    result: str


@dataclass(frozen=True)
class ChangeRow:
    no: int
    change: str
    reason: str
    status: ChangeStatus


@dataclass(frozen=True)
class ReportView:
    title: str
    seq: int
    when: str
    on_time: int
    total: int
    total_seconds: float                   # the case from opening to closing
    version: int
    plan_rows: tuple[PlanActualRow, ...]
    step_times: tuple[tuple[str, float], ...]   # (step, seconds spent in it)
    sign_lines: tuple[str, ...]            # trusted markup
    changes: tuple[ChangeRow, ...]
    entries: tuple[Entry, ...]
    close_reason: str = ""
    timeline: kit.Timeline | None = None   # planned (baseline) against actual, as a chart
    save_template: ActionValue | None = None
    template_name: str = ""


def rate(on_time: int, total: int) -> str:
    return f"{round(on_time * 100 / total)}%" if total else "—"


def report_card(view: ReportView) -> dict:
    approved = sum(1 for c in view.changes if c.status == ChangeStatus.APPROVED)
    rejected = sum(1 for c in view.changes if c.status == ChangeStatus.REJECTED)
    els = [kit.md(texts.REPORT_OVERVIEW.format(rate=rate(view.on_time, view.total), on_time=view.on_time,
                                               total=view.total, changes=len(view.changes), approved=approved,
                                               rejected=rejected, version=view.version,
                                               elapsed=span(view.total_seconds)))]
    if view.close_reason:
        els.append(kit.md(texts.REPORT_CLOSE_REASON.format(reason=kit.esc(view.close_reason))))
    els.append(kit.md(texts.REPORT_PLAN_HEAD))
    els.append(kit.table([("task", texts.COL_TASK, "text"), ("owner", texts.COL_OWNER, "persons"),
                          ("ps", texts.COL_PLANNED_START, "text"), ("pd", texts.COL_PLANNED_DUE, "text"),
                          ("done", texts.COL_ACTUAL_DONE, "text"), ("result", texts.COL_RESULT, "text")],
                         [{"task": r.task, "owner": [r.owner], "ps": r.planned_start, "pd": r.planned_due,
                           "done": r.actual_done, "result": r.result} for r in view.plan_rows]))
    if view.timeline is not None:
        els.append(kit.chart_timeline(view.timeline))
    els.append(kit.md(texts.REPORT_STEPS_HEAD))
    els.append(kit.table([("step", texts.COL_STEP_NAME, "text"), ("time", texts.COL_STEP_TIME, "text")],
                         [{"step": s, "time": span(d)} for s, d in view.step_times]))
    els.append(kit.md(texts.REPORT_SIGN_HEAD + "\n" + "\n".join(view.sign_lines)))
    els.append(kit.md(texts.REPORT_CHANGES_HEAD))
    if view.changes:
        els.append(kit.table([("no", texts.COL_CHANGE_NO, "text"), ("change", texts.COL_CHANGE, "text"),
                              ("reason", texts.COL_REASON, "text"), ("status", texts.COL_RESULT, "options")],
                             [{"no": f"#{c.no}", "change": c.change, "reason": c.reason,
                               "status": kit.tag_option(*texts.CHANGE_STATUS[c.status])} for c in view.changes]))
    else:
        els.append(kit.md(texts.REPORT_NO_CHANGES))
    for kind in RetroKind:
        lines = [texts.REPORT_ENTRY.format(content=kit.esc(e.content), author=kit.at(e.author))
                 for e in view.entries if e.kind == kind] or [texts.REPORT_NO_ENTRY]
        els.append(kit.md(texts.REPORT_ENTRIES_HEAD.format(kind=texts.RETRO_KIND_LABELS[kind]) + "\n"
                          + "\n".join(lines)))
    if view.save_template is not None:
        els.append(kit.hr())
        els.append(kit.form("save_template", [
            kit.md(texts.TEMPLATE_FORM_HEAD),
            kit.text_input("name", texts.FIELD_TEMPLATE_NAME, placeholder=texts.PH_TEMPLATE_NAME, required=True,
                           default=view.template_name or None, max_length=60),
            kit.submit_button(texts.BTN_SAVE_TEMPLATE, to_name(view.save_template))]))
    title = texts.REPORT_TITLE.format(title=view.title)
    return kit.card(title, template="green", subtitle=texts.REPORT_SUBTITLE.format(seq=view.seq, when=view.when),
                    elements=els, summary=title)
