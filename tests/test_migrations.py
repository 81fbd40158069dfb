"""The models and the Alembic migrations describe the same schema."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
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
    tenant_wide = {"templates", "calendar_overrides", "inbox_events", "alembic_version", "people",
                   "feishu_overviews"}   # the tenant's 《协作问题总览》: one per tenant, not per group
    for table in insp.get_table_names():
        cols = {c["name"] for c in insp.get_columns(table)}
        if table in tenant_wide:
            continue
        assert {"tenant_key", "chat_id"} <= cols, table
    engine.dispose()


def _revision(url: str) -> tuple[str, ...]:
    engine = create_engine(db.normalise_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()


def test_migrations_have_exactly_one_head():
    heads = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations branch into several heads {heads}: merge them"


def test_upgraded_database_is_at_head(database_url):
    """The test database (SQLite or PostgreSQL) was upgraded to the one head, not short of it."""
    script = ScriptDirectory.from_config(db.alembic_config(database_url))
    assert _revision(database_url) == (script.get_current_head(),)


def test_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path}/twice.db"
    head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
    db.upgrade(url)
    assert _revision(url) == (head,)
    db.upgrade(url)
    assert _revision(url) == (head,)
