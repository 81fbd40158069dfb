"""0009 adds tasks.update_count, the version a task's update form carries, counted from the
updates already recorded; its downgrade drops only that column (SQLite always; PostgreSQL when
TEST_DATABASE_URL is set)."""
from __future__ import annotations

from alembic import command
from sqlalchemy import text

from tests.casefactory import make_case_at_step4, make_plan_published
from tests.migration_scratch import columns, migrated_to, scratch_url_fixture
from tests.test_migration_feishu_sync import NOW

REVISION, PREVIOUS = "0009_task_update_count", "0008_tasklist_pending_sync"
scratch_url = scratch_url_fixture("update_count_mig")



def test_upgrade_counts_the_updates_already_recorded_and_back(scratch_url):
    with migrated_to(scratch_url, PREVIOUS) as (cfg, engine, factory):
        case_id = make_case_at_step4(factory, now=NOW)
        first, second = make_plan_published(factory, case_id, now=NOW)
        with engine.begin() as conn:
            for task_id, n in ((first, 3), (second, 0)):
                for i in range(n):
                    conn.execute(text(
                        "INSERT INTO task_updates (tenant_key, chat_id, case_id, task_id, actor_open_id, status, "
                        "progress, lag_reason, adjustment, at) SELECT tenant_key, chat_id, case_id, id, owner_open_id, "
                        "'doing', :p, '', '', :now FROM tasks WHERE id = :id"), {"p": 10 * (i + 1), "now": NOW,
                                                                                "id": task_id})
        command.upgrade(cfg, REVISION)
        assert "update_count" in columns(engine, "tasks")
        with engine.begin() as conn:
            assert dict(conn.execute(text("SELECT id, update_count FROM tasks")).all()) == {first: 3, second: 0}
        command.downgrade(cfg, PREVIOUS)
        assert "update_count" not in columns(engine, "tasks")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM task_updates")).scalar() == 3
        command.upgrade(cfg, REVISION)
