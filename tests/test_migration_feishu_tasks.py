"""0006 adds the 飞书任务 sync tables next to existing cases and tasks, and drops only them on downgrade
(SQLite always; PostgreSQL when TEST_DATABASE_URL is set)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, func, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bot import db
from bot.models import Case, FeishuTaskLink, FeishuTaskSync, Task
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.conftest import PG_URL

REVISION, PREVIOUS = "0006_feishu_tasks_sync", "0005_chat_members"
NOW = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ftasks.db"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    import psycopg

    name = f"{make_url(PG_URL).database}_ftasks_mig"   # next to this run's own database
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
            # only the columns 0006 has (later revisions add more)
            s.execute(insert(FeishuTaskSync).values(**sc, enabled=True, changed_at=NOW, tasklist_guid="tl-1"))
            s.add(FeishuTaskLink(**sc, task_id=task.id, client_token="ct-1", task_guid="g-1"))
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(FeishuTaskLink)) == 1
        command.downgrade(cfg, PREVIOUS)
        tables = set(inspect(engine).get_table_names())
        assert not {"feishu_task_sync", "feishu_task_links"} & tables
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Task).where(Task.case_id == case_id)) == 2
        command.upgrade(cfg, REVISION)
        assert {"feishu_task_sync", "feishu_task_links"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
