"""outbox: a priority per row (replies before reminders before hints) and an index for
"is this chat busy"

Revision ID: 0003_outbox_priority
Revises: 0002_people
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_outbox_priority"
down_revision = "0002_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"))
        batch_op.drop_index("ix_outbox_due")
        batch_op.create_index("ix_outbox_due", ["status", "priority", "due_at"], unique=False)
        batch_op.create_index("ix_outbox_chat_status", ["tenant_key", "chat_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_chat_status")
        batch_op.drop_index("ix_outbox_due")
        batch_op.create_index("ix_outbox_due", ["status", "due_at"], unique=False)
        batch_op.drop_column("priority")
