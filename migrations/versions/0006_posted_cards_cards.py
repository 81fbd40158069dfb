"""posted_cards: every card the bot posted for a case and what it shows, so it can be kept true

Revision ID: 0006_posted_cards_cards
Revises: 0005_chat_members
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_posted_cards_cards"
down_revision = "0006_feishu_tasks_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "posted_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("view", sa.String(length=32), nullable=False),
        sa.Column("private_for", sa.String(length=64), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.create_index("ix_posted_cards_case", ["case_id", "superseded"], unique=False)
        batch_op.create_index(batch_op.f("ix_posted_cards_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_posted_cards_tenant_key"), ["tenant_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_posted_cards_tenant_key"))
        batch_op.drop_index(batch_op.f("ix_posted_cards_chat_id"))
        batch_op.drop_index("ix_posted_cards_case")
    op.drop_table("posted_cards")
