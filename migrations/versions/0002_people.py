"""people: display names per tenant

Revision ID: 0002_people
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_people"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("open_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_key", "open_id"),
    )


def downgrade() -> None:
    op.drop_table("people")
