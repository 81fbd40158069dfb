"""feishu_boards, feishu_board_rows, feishu_overviews: a case's 多维表格 board and the tenant's overview

Revision ID: 0007_feishu_board_sync
Revises: 0006_posted_cards_cards
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_feishu_board_sync"
down_revision = "0006_posted_cards_cards"
branch_labels = None
depends_on = None


def _scope() -> list[sa.Column]:
    return [sa.Column("tenant_key", sa.String(length=64), nullable=False),
            sa.Column("chat_id", sa.String(length=64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "feishu_boards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("app_token", sa.String(length=100), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("problem", sa.String(length=200), nullable=True),
        sa.Column("problem_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        *_scope(),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    op.create_table(
        "feishu_board_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=100), nullable=True),
        sa.Column("pushed_hash", sa.String(length=64), nullable=False),
        sa.Column("pushed", sa.JSON(), nullable=False),
        sa.Column("remote_modified_ms", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        *_scope(),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "kind", "item_id"),
    )
    op.create_table(
        "feishu_overviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("claimed_by_case", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("app_token", sa.String(length=100), nullable=True),
        sa.Column("table_id", sa.String(length=100), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_key"),
    )
    for table in ("feishu_boards", "feishu_board_rows"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_chat_id"), ["chat_id"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_key"), ["tenant_key"], unique=False)
    with op.batch_alter_table("feishu_board_rows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feishu_board_rows_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feishu_board_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feishu_board_rows_case_id"))
    for table in ("feishu_board_rows", "feishu_boards"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_tenant_key"))
            batch_op.drop_index(batch_op.f(f"ix_{table}_chat_id"))
        op.drop_table(table)
    op.drop_table("feishu_overviews")
