"""A scratch database for a migration test: a SQLite file always; a PostgreSQL database of its own
next to this run's when TEST_DATABASE_URL is set (the shared test database is truncated by other
tests, and a migration test moves the schema up and down)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from tests.conftest import PG_URL


def scratch_url_fixture(name: str):
    """A `scratch_url` fixture run once on SQLite and once on PostgreSQL (skipped without it);
    `name` tells its database apart from other tests' scratch databases."""

    @pytest.fixture(params=["sqlite", "postgresql"])
    def scratch_url(request, tmp_path) -> Iterator[str]:
        if request.param == "sqlite":
            yield f"sqlite:///{tmp_path}/{name}.db"
            return
        if not PG_URL:
            pytest.skip("TEST_DATABASE_URL is not set")
        import psycopg

        database = f"{make_url(PG_URL).database}_{name}"   # next to this run's own database
        admin = db.normalise_url(PG_URL).replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
        try:
            yield make_url(db.normalise_url(PG_URL)).set(database=database).render_as_string(hide_password=False)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    return scratch_url


@contextmanager
def migrated_to(url: str, revision: str) -> Iterator[tuple[Config, Engine, sessionmaker[Session]]]:
    """The scratch database upgraded to `revision`, with its alembic config, engine and sessions."""
    cfg = db.alembic_config(url)
    command.upgrade(cfg, revision)
    engine = create_engine(db.normalise_url(url))
    try:
        yield cfg, engine, sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()


def columns(engine: Engine, table: str) -> set[str]:
    """The names of `table`'s columns as the database has them now."""
    return {c["name"] for c in inspect(engine).get_columns(table)}
