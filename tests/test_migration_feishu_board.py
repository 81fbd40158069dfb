"""0007 adds the 多维表格 board tables next to existing cases and tasks, and drops only them on
downgrade (SQLite always; PostgreSQL when TEST_DATABASE_URL is set)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bot import db
from bot.models import Case, FeishuBoard, FeishuBoardRow, FeishuOverview, Task
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.conftest import PG_URL

REVISION, PREVIOUS = "0007_feishu_board_sync", "0006_posted_cards_cards"
TABLES = {"feishu_boards", "feishu_board_rows", "feishu_overviews"}
NOW = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/board.db"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    import psycopg

    name = f"{make_url(PG_URL).database}_board_mig"   # next to this run's own database
    admin = db.normalise_url(PG_URL).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(db.normalise_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_upgrade_with_rows_and_back(scratch_url):
    cfg = db.alembic_config(scratch_url)
    command.upgrade(cfg, PREVIOUS)
    engine = create_engine(db.normalise_url(scratch_url))
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        case_id = make_case_at_step4(factory, now=NOW)
        make_plan_published(factory, case_id, now=NOW)
        command.upgrade(cfg, REVISION)
        with factory() as s, s.begin():
            case = s.get(Case, case_id)
            task = s.scalars(select(Task).where(Task.case_id == case_id)).first()
            sc = dict(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id)
            s.add(FeishuBoard(**sc, enabled=True, changed_at=NOW, app_token="bas-1", url="", tables={"task": "tbl-1"}))
            s.add(FeishuBoardRow(**sc, kind="task", item_id=task.id, token="t", record_id="rec-1", pushed={}))
            s.add(FeishuOverview(tenant_key=case.tenant_key, claimed_by_case=case_id, claimed_at=NOW, url=""))
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(FeishuBoardRow)) == 1
            assert s.scalar(select(FeishuBoard.tables)) == {"task": "tbl-1"}
        command.downgrade(cfg, PREVIOUS)
        tables = set(inspect(engine).get_table_names())
        assert not TABLES & tables and "feishu_task_links" in tables
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Task).where(Task.case_id == case_id)) == 2
        command.upgrade(cfg, REVISION)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
