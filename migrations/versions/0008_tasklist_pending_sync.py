"""feishu_task_sync.tasklist_pending: the name of a tasklist create in flight

Revision ID: 0008_tasklist_pending_sync
Revises: 0007_feishu_board_sync
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_tasklist_pending_sync"
down_revision = "0007_feishu_board_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feishu_task_sync") as batch:
        batch.add_column(sa.Column("tasklist_pending", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feishu_task_sync") as batch:
        batch.drop_column("tasklist_pending")
