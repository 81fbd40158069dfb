"""0008 adds feishu_task_sync.tasklist_pending next to existing sync rows and drops only it on
downgrade (SQLite always; PostgreSQL when TEST_DATABASE_URL is set)."""
from __future__ import annotations

from alembic import command
from sqlalchemy import select, text

from bot.models import Case
from tests.casefactory import make_case_at_step4
from tests.migration_scratch import columns, migrated_to, scratch_url_fixture
from tests.test_migration_feishu_sync import NOW

REVISION, PREVIOUS = "0008_tasklist_pending_sync", "0007_feishu_board_sync"
scratch_url = scratch_url_fixture("tasklist_mig")



def test_upgrade_with_rows_and_back(scratch_url):
    with migrated_to(scratch_url, PREVIOUS) as (cfg, engine, factory):
        case_id = make_case_at_step4(factory, now=NOW)
        with factory() as s, s.begin():
            case = s.get(Case, case_id)
            s.execute(text("INSERT INTO feishu_task_sync (tenant_key, chat_id, case_id, enabled, changed_by, "
                           "changed_at, tasklist_guid) VALUES (:t, :c, :id, true, '', :now, 'tl-1')"),
                      {"t": case.tenant_key, "c": case.chat_id, "id": case_id, "now": NOW})
        command.upgrade(cfg, REVISION)
        assert "tasklist_pending" in columns(engine, "feishu_task_sync")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT tasklist_guid, tasklist_pending FROM feishu_task_sync")).all() \
                == [("tl-1", None)]
            conn.execute(text("UPDATE feishu_task_sync SET tasklist_pending = 'x'"))
        command.downgrade(cfg, PREVIOUS)
        assert "tasklist_pending" not in columns(engine, "feishu_task_sync")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT tasklist_guid FROM feishu_task_sync")).all() == [("tl-1",)]
        with factory() as s:
            assert s.scalar(select(Case.id).where(Case.id == case_id)) == case_id
        command.upgrade(cfg, REVISION)
