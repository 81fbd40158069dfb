"""The models and the Alembic migrations describe the same schema."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bot import db
from bot.models import Base


def test_models_match_migrations(database_url):
    engine = create_engine(db.normalise_url(database_url))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], diff


def test_group_rows_carry_tenant_and_chat(database_url):
    """S8: every table that belongs to a group has tenant_key and chat_id columns."""
    engine = create_engine(db.normalise_url(database_url))
    insp = inspect(engine)
    tenant_wide = {"templates", "calendar_overrides", "inbox_events", "alembic_version", "people"}
    for table in insp.get_table_names():
        cols = {c["name"] for c in insp.get_columns(table)}
        if table in tenant_wide:
            continue
        assert {"tenant_key", "chat_id"} <= cols, table
    engine.dispose()


def test_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path}/twice.db"
    db.upgrade(url)
    db.upgrade(url)
