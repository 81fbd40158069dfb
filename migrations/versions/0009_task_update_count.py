"""tasks.update_count: how many progress updates a task has had (the version its update form carries)

Revision ID: 0009_task_update_count
Revises: 0008_tasklist_pending_sync
"""
from alembic import op
import sqlalchemy as sa

revision = "0009_task_update_count"
down_revision = "0008_tasklist_pending_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("update_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE tasks SET update_count = "
               "(SELECT count(*) FROM task_updates WHERE task_updates.task_id = tasks.id)")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("update_count")
