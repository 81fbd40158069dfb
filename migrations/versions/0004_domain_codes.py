"""domain codes: task status, priority / risk levels and retrospective kinds stored as codes
instead of their Chinese labels (data only; the codes fit the existing columns)

Revision ID: 0004_domain_codes
Revises: 0003_outbox_priority
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = "0004_domain_codes"
down_revision = "0003_outbox_priority"
branch_labels = None
depends_on = None

# Frozen copies of bot.domain / bot.texts as of this revision: label → code.
TASK_STATUS = {"未开始": "todo", "进行中": "doing", "已完成": "done", "受阻": "blocked"}
LEVEL = {"高": "high", "中": "mid", "低": "low"}
RETRO_KIND = {"成果": "outcome", "成功经验": "success", "不足之处": "weakness", "改进方向": "improve"}

COLUMNS = (("tasks", "status", TASK_STATUS), ("task_updates", "status", TASK_STATUS),
           ("requirements", "priority", LEVEL), ("risks", "likelihood", LEVEL), ("risks", "impact", LEVEL),
           ("retro_entries", "kind", RETRO_KIND))
# JSON copies of risks: plan snapshots (plan_versions.snapshot) and SOP templates (templates.body)
DOCUMENTS = (("plan_versions", "snapshot"), ("templates", "body"))


def _columns(direction: str) -> None:
    for table, column, labels in COLUMNS:
        mapping = labels if direction == "up" else {code: label for label, code in labels.items()}
        t = sa.table(table, sa.column(column, sa.String))
        for old, new in mapping.items():
            op.execute(t.update().where(t.c[column] == old).values({column: new}))


def _risks(doc: object, mapping: dict[str, str]) -> object:
    if not isinstance(doc, dict) or not isinstance(doc.get("risks"), list):
        return doc
    risks = [dict(r, **{k: mapping.get(r[k], r[k]) for k in ("likelihood", "impact") if isinstance(r.get(k), str)})
             if isinstance(r, dict) else r for r in doc["risks"]]
    return {**doc, "risks": risks}


def _documents(direction: str) -> None:
    mapping = LEVEL if direction == "up" else {code: label for label, code in LEVEL.items()}
    conn = op.get_bind()
    for table, column in DOCUMENTS:
        t = sa.table(table, sa.column("id", sa.Integer), sa.column(column, sa.JSON))
        for row_id, doc in conn.execute(sa.select(t.c.id, t.c[column])).all():
            new = _risks(doc, mapping)
            if new != doc:
                conn.execute(t.update().where(t.c.id == row_id).values({column: new}))


def upgrade() -> None:
    _columns("up")
    _documents("up")


def downgrade() -> None:
    _columns("down")
    _documents("down")
