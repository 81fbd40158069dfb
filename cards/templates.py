"""/模板: the tenant's SOP templates. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from bot import texts
from cards import kit


@dataclass(frozen=True)
class TemplateRow:
    name: str
    departments: str
    tasks: int
    days: float
    saved: str


def templates_card(rows: list[TemplateRow]) -> dict:
    if not rows:
        return kit.card(texts.TEMPLATES_TITLE, template="blue", elements=[kit.md(texts.TEMPLATES_EMPTY)])
    data = [{"name": f"《{r.name}》", "depts": r.departments, "tasks": r.tasks, "days": r.days, "at": r.saved}
            for r in rows]
    table = kit.table([("name", texts.COL_TEMPLATE, "text"), ("depts", texts.COL_TEMPLATE_DEPTS, "text"),
                       ("tasks", texts.COL_TEMPLATE_TASKS, "number"), ("days", texts.COL_TEMPLATE_DAYS, "number"),
                       ("at", texts.COL_TEMPLATE_AT, "text")], data)
    return kit.card(texts.TEMPLATES_TITLE, template="blue", elements=[table, kit.md(texts.TEMPLATES_HINT)])
