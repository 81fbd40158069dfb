"""chat_members: who is in each group, from the group's member list (person fields accept
members only)

Revision ID: 0005_chat_members
Revises: 0004_domain_codes
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_chat_members"
down_revision = "0004_domain_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("open_id", sa.String(length=64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_key", "chat_id", "open_id"),
    )
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_members_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chat_members_tenant_key"), ["tenant_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_members_tenant_key"))
        batch_op.drop_index(batch_op.f("ix_chat_members_chat_id"))
    op.drop_table("chat_members")
