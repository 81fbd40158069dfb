"""Step 2 cards: 《协作小组分工表》 and its small forms (departments, a member, an action item,
handing over the lead). Pure: views in (with the ActionValues the buttons carry), dicts out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import DeptKind
from cards import kit


@dataclass(frozen=True)
class DeptLine:
    id: int
    name: str
    kind: DeptKind
    head_open_id: str
    contact_open_id: str | None = None


@dataclass(frozen=True)
class MemberLine:
    open_id: str
    department: str
    role: str
    duty: str
    member_id: int = 0


@dataclass(frozen=True)
class ItemLine:
    content: str
    owner_open_id: str
    due: date | None
    item_id: int = 0


@dataclass(frozen=True)
class TeamButtons:
    depts: ActionValue
    member: ActionValue
    item: ActionValue
    lead: ActionValue
    confirm: ActionValue
    remove_member: ActionValue | None = None   # row_id is filled in per member
    remove_item: ActionValue | None = None     # row_id is filled in per item


@dataclass(frozen=True)
class TeamView:
    title: str
    lead_open_id: str
    depts: tuple[DeptLine, ...]
    members: tuple[MemberLine, ...] = ()
    items: tuple[ItemLine, ...] = ()
    confirmed_at: datetime | None = None   # in the group's time zone
    buttons: TeamButtons | None = None     # None: read-only
    # Roles an SOP template suggests and nobody holds yet: (department, role, duty)
    suggested_roles: tuple[tuple[str, str, str], ...] = ()


def team_card(view: TeamView) -> dict:
    elements = [kit.md(texts.S2_LEAD_LINE.format(lead=kit.at(view.lead_open_id)))]
    if view.confirmed_at is None:
        elements.append(kit.md(texts.S2_INTRO))
    dept_rows = [{"dept": d.name, "kind": kit.tag_option(*texts.S2_KINDS.get(d.kind, texts.S2_KIND_UNSET)),
                  "head": [d.head_open_id],
                  "contact": [d.contact_open_id] if d.contact_open_id else []}
                 for d in view.depts]
    elements.append(kit.table([("dept", texts.S2_COL_DEPT, "text"), ("kind", texts.S2_COL_KIND, "options"),
                               ("head", texts.S2_COL_HEAD, "persons"),
                               ("contact", texts.S2_COL_CONTACT, "persons")],
                              dept_rows, page_size=6))
    missing = [d.name for d in view.depts if not d.contact_open_id]
    if missing:
        elements.append(kit.md(f"**{texts.MISSING_PREFIX}**" + "、".join(
            kit.esc(n) + texts.S2_COL_CONTACT for n in missing)))
    if view.members:
        elements.append(kit.table([("who", texts.S2_COL_MEMBER, "persons"), ("dept", texts.S2_COL_DEPT, "text"),
                                   ("role", texts.S2_COL_ROLE, "text"), ("duty", texts.S2_COL_DUTY, "text")],
                                  [{"who": [m.open_id], "dept": m.department, "role": m.role, "duty": m.duty}
                                   for m in view.members]))
    else:
        elements.append(kit.md(texts.S2_NO_MEMBERS))
    if view.suggested_roles and view.confirmed_at is None:
        elements.append(kit.md(texts.S2_TEMPLATE_ROLES + "\n" + "\n".join(
            texts.S2_TEMPLATE_ROLE_LINE.format(dept=kit.esc(d), role=kit.esc(r), duty=kit.esc(u) or "—")
            for d, r, u in view.suggested_roles)))
    if view.items:
        elements.append(kit.table([("item", texts.S2_COL_ITEM, "text"), ("owner", texts.S2_COL_OWNER, "persons"),
                                   ("due", texts.S2_COL_DUE, "text")],
                                  [{"item": i.content, "owner": [i.owner_open_id],
                                    "due": i.due.strftime(texts.S_DAY_FMT) if i.due else texts.S_EMPTY}
                                   for i in view.items]))
    else:
        elements.append(kit.md(texts.S2_NO_ITEMS))
    if view.confirmed_at is not None:
        elements.append(kit.md(texts.S2_CONFIRMED_LINE))
    b0 = view.buttons
    if b0 is not None and ((view.members and b0.remove_member) or (view.items and b0.remove_item)):
        elements.append(_remove_panel(view, b0))
    if view.buttons is not None:
        b = view.buttons
        elements.append(kit.columns([[kit.button(texts.S2_BTN_DEPTS, b.depts)],
                                     [kit.button(texts.S2_BTN_MEMBER, b.member)],
                                     [kit.button(texts.S2_BTN_ITEM, b.item)]]))
        elements.append(kit.columns([[kit.button(texts.S2_BTN_LEAD, b.lead)],
                                     [kit.button(texts.S2_BTN_CONFIRM, b.confirm, type="primary_filled")]]))
    done = view.confirmed_at is not None
    return kit.card(texts.S2_TITLE, template="green" if done else "orange",
                    tags=[(texts.S2_TAG_CONFIRMED, "green") if done else (texts.S2_TAG_DRAFT, "orange")],
                    subtitle=texts.S2_SUBTITLE.format(title=view.title), elements=elements,
                    summary=f"{texts.S2_TITLE} {view.title}")


def _with_row(value: ActionValue, row_id: int) -> ActionValue:
    return ActionValue(value.action, case_id=value.case_id, version=value.version, row_id=row_id)


def _remove_panel(view: TeamView, b: TeamButtons) -> dict:
    rows = []
    if b.remove_member is not None:
        for m in view.members:
            rows.append(kit.columns([[kit.md(f"{kit.at(m.open_id)}（{kit.esc(m.department)}，{kit.esc(m.role)}）")],
                                     [kit.button(texts.S2_BTN_REMOVE, _with_row(b.remove_member, m.member_id),
                                                 type="danger", confirm=texts.S2_REMOVE_MEMBER_CONFIRM)]], [4, 1]))
    if b.remove_item is not None:
        for i in view.items:
            rows.append(kit.columns([[kit.md(f"{texts.S2_COL_ITEM}：{kit.esc(i.content)}")],
                                     [kit.button(texts.S2_BTN_REMOVE, _with_row(b.remove_item, i.item_id),
                                                 type="danger", confirm=texts.S2_REMOVE_ITEM_CONFIRM)]], [4, 1]))
    return kit.collapsible(texts.S2_EDIT_PANEL, rows)


# ---------------------------------------------------------------- forms
@dataclass(frozen=True)
class FormView:
    title: str
    submit: ActionValue
    cancel: ActionValue
    error: str = ""
    values: dict[str, str] = field(default_factory=dict)


def _form(view: FormView, name: str, fields: list[dict], label: str) -> dict:
    elements = []
    if view.error:
        elements.append(kit.md(f"<font color='red'>{kit.esc(view.error)}</font>"))
    elements.append(kit.form(name, fields + [kit.submit_button(label, to_name(view.submit))]))
    elements.append(kit.button(texts.S_CANCEL, view.cancel))
    return kit.card(view.title, template="blue", elements=elements)


def _person(value: str | None) -> str | None:
    """An initial person only if it is a well-formed open_id (a typed value may be anything)."""
    if not value:
        return None
    try:
        kit.at(value)
    except ValueError:
        return None
    return value


KIND_OPTIONS = tuple((label, key) for key, (label, _c) in texts.S2_KINDS.items())


def depts_form(view: FormView, depts: tuple[DeptLine, ...]) -> dict:
    v = view.values
    fields = [kit.md(texts.S2_CONTACT_HINT)]
    for d in depts:
        kind_f, contact_f = f"kind_{d.id}", f"contact_{d.id}"
        fields.append(kit.md(f"**{kit.esc(d.name)}**"))
        fields.append(kit.columns([
            [kit.select_static(kind_f, KIND_OPTIONS, placeholder=texts.S2_PH_KIND,
                               initial=v.get(kind_f) or (d.kind if d.kind in texts.S2_KINDS else None))],
            [kit.select_person(contact_f, placeholder=texts.S2_PH_CONTACT.format(dept=d.name),
                               initial=_person(v.get(contact_f, d.contact_open_id or d.head_open_id)))],
        ]))
    return _form(view, "team_depts", fields, texts.S2_SAVE)


def member_form(view: FormView, depts: tuple[DeptLine, ...]) -> dict:
    v = view.values
    fields = [
        kit.md(f"**{texts.S2_F_MEMBER}**"),
        kit.select_person("member", placeholder=texts.S2_PH_MEMBER, initial=_person(v.get("member"))),
        kit.md(f"**{texts.S2_F_MEMBER_DEPT_OPT}**"),
        kit.select_static("dept", [(d.name, str(d.id)) for d in depts], placeholder=texts.S2_PH_MEMBER_DEPT,
                          initial=v.get("dept") or None),
        kit.text_input("role", texts.S2_F_ROLE, placeholder=texts.S2_PH_ROLE, default=v.get("role") or None,
                       max_length=30),
        kit.text_input("duty", texts.S2_F_DUTY, placeholder=texts.S2_PH_DUTY, multiline=True,
                       default=v.get("duty") or None, max_length=300),
    ]
    return _form(view, "team_member", fields, texts.S2_SAVE)


def item_form(view: FormView) -> dict:
    v = view.values
    day = v.get("due", "")
    fields = [
        kit.text_input("content", texts.S2_F_ITEM, placeholder=texts.S2_PH_ITEM, default=v.get("content") or None,
                       max_length=200),
        kit.md(f"**{texts.S2_F_OWNER}**"),
        kit.select_person("owner", placeholder=texts.S2_PH_OWNER, initial=_person(v.get("owner"))),
        kit.md(f"**{texts.S2_F_DUE}**"),
        kit.date_picker("due", placeholder=texts.S2_PH_DUE,
                        initial=day[:10] if len(day) >= 10 and day[4] == "-" else None),
    ]
    return _form(view, "team_item", fields, texts.S2_SAVE)


def lead_form(view: FormView) -> dict:
    fields = [kit.md(f"**{texts.S2_F_NEW_LEAD}**"),
              kit.select_person("lead", placeholder=texts.S2_PH_NEW_LEAD, initial=_person(view.values.get("lead")))]
    return _form(view, "team_lead", fields, texts.S2_SAVE)
