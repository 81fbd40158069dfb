"""feishu_task_sync, feishu_task_links: a case's tasks as Feishu Tasks (Task v2), in sync

Revision ID: 0006_feishu_tasks_sync
Revises: 0005_chat_members
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_feishu_tasks_sync"
down_revision = "0005_chat_members"
branch_labels = None
depends_on = None


def _scope() -> list[sa.Column]:
    return [sa.Column("tenant_key", sa.String(length=64), nullable=False),
            sa.Column("chat_id", sa.String(length=64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "feishu_task_sync",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tasklist_guid", sa.String(length=100), nullable=True),
        sa.Column("problem", sa.String(length=200), nullable=True),
        sa.Column("problem_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        *_scope(),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    op.create_table(
        "feishu_task_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("task_guid", sa.String(length=100), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("pushed_hash", sa.String(length=64), nullable=False),
        sa.Column("pushed_members", sa.JSON(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("remote_completed", sa.Boolean(), nullable=False),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        *_scope(),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id"),
    )
    for table in ("feishu_task_sync", "feishu_task_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_chat_id"), ["chat_id"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_key"), ["tenant_key"], unique=False)
    with op.batch_alter_table("feishu_task_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feishu_task_links_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feishu_task_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feishu_task_links_case_id"))
    for table in ("feishu_task_links", "feishu_task_sync"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_tenant_key"))
            batch_op.drop_index(batch_op.f(f"ix_{table}_chat_id"))
        op.drop_table(table)
