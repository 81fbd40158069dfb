"""/模板: the tenant's SOP templates; the note on the plan card of a case pre-filled from one.
Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from bot import texts
from bot.durations import span
from cards import kit


@dataclass(frozen=True)
class TemplateRow:
    name: str
    departments: str
    tasks: int
    length_seconds: float    # from the first task's start to the last deadline
    saved: str


def templates_card(rows: list[TemplateRow]) -> dict:
    if not rows:
        return kit.card(texts.TEMPLATES_TITLE, template="blue", elements=[kit.md(texts.TEMPLATES_EMPTY)])
    data = [{"name": f"《{r.name}》", "depts": r.departments, "tasks": r.tasks, "span": span(r.length_seconds),
             "at": r.saved}
            for r in rows]
    table = kit.table([("name", texts.COL_TEMPLATE, "text"), ("depts", texts.COL_TEMPLATE_DEPTS, "text"),
                       ("tasks", texts.COL_TEMPLATE_TASKS, "number"), ("span", texts.COL_TEMPLATE_SPAN, "text"),
                       ("at", texts.COL_TEMPLATE_AT, "text")], data)
    return kit.card(texts.TEMPLATES_TITLE, template="blue", elements=[table, kit.md(texts.TEMPLATES_HINT)])


@dataclass(frozen=True)
class ReviewItem:
    """Something copied from a template the lead should check: a date written in the text
    ("date"), an owner the template suggested ("kept"), or one standing in for the template's
    owner ("filled") or for an owner the template did not record ("unknown")."""
    kind: Literal["date", "kept", "filled", "unknown"]
    on: Literal["task", "risk", "node"]
    label: str                     # the task's content, the risk, the node's name (user text)
    seq: int = 0                   # the task's number
    found: tuple[str, ...] = ()    # the dates found
    name: str = ""                 # the owner now assigned
    was: str = ""                  # the template's owner
    role: str = ""                 # what the stand-in is: 「技术部接口人」


def _what(i: ReviewItem) -> str:
    if i.on == "task":
        return texts.TEMPLATE_REVIEW_TASK.format(seq=i.seq, content=kit.esc(i.label))
    if i.on == "risk":
        return texts.TEMPLATE_REVIEW_RISK.format(risk=kit.esc(i.label))
    return texts.TEMPLATE_REVIEW_NODE.format(name=kit.esc(i.label))


def review_lines(items: Sequence[ReviewItem]) -> list[str]:
    lines, kept = [], []
    for i in items:
        what = _what(i)
        if i.kind == "date":
            lines.append(texts.TEMPLATE_REVIEW_DATE.format(what=what, found="".join(f"「{kit.esc(f)}」"
                                                                                  for f in i.found)))
        elif i.kind == "kept":
            kept.append(texts.TEMPLATE_REVIEW_KEPT_ITEM.format(what=what, name=kit.esc(i.name)))
        elif i.kind == "filled":
            lines.append(texts.TEMPLATE_REVIEW_FILLED.format(what=what, was=kit.esc(i.was), role=kit.esc(i.role),
                                                             name=kit.esc(i.name)))
        else:
            lines.append(texts.TEMPLATE_REVIEW_UNKNOWN.format(what=what, role=kit.esc(i.role), name=kit.esc(i.name)))
    if kept:
        lines.append(texts.TEMPLATE_REVIEW_KEPT.format(items="、".join(kept)))
    return lines


def with_review(card: dict, items: Sequence[ReviewItem]) -> dict:
    """`card` (the plan's drafting card) with the review note after its intro; unchanged without items."""
    if not items:
        return card
    elements = list(card["body"]["elements"])
    elements.insert(min(1, len(elements)), kit.md("\n".join([texts.TEMPLATE_REVIEW_HEAD, *review_lines(items)])))
    return {**card, "body": {**card["body"], "elements": elements}}
