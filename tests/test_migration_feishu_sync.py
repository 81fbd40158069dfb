"""0006 adds the 飞书任务 sync tables and 0007 the 多维表格 board tables next to existing cases and
tasks; each drops only its own on downgrade (SQLite always; PostgreSQL when TEST_DATABASE_URL is
set)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.orm import Session

from bot.models import Case, FeishuBoard, FeishuBoardRow, FeishuOverview, FeishuTaskLink, FeishuTaskSync, Task
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.migration_scratch import migrated_to, scratch_url_fixture

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)
scratch_url = scratch_url_fixture("feishu_mig")


@dataclass(frozen=True)
class SyncTables:
    revision: str
    previous: str
    tables: set[str]                  # what the revision adds and its downgrade drops
    kept: set[str]                    # earlier revisions' tables the downgrade must leave
    # rows in the new tables, for a case and one of its tasks (sc: tenant_key, chat_id, case_id)
    seed: Callable[[Session, dict[str, Any], Case, int], None]
    check: Callable[[Session], None]  # the rows read back before the downgrade


def _seed_tasks(s: Session, sc: dict[str, Any], case: Case, task_id: int) -> None:
    # only the columns 0006 has (later revisions add more)
    s.execute(insert(FeishuTaskSync).values(**sc, enabled=True, changed_at=NOW, tasklist_guid="tl-1"))
    s.add(FeishuTaskLink(**sc, task_id=task_id, client_token="ct-1", task_guid="g-1"))


def _check_tasks(s: Session) -> None:
    assert s.scalar(select(func.count()).select_from(FeishuTaskLink)) == 1


def _seed_board(s: Session, sc: dict[str, Any], case: Case, task_id: int) -> None:
    s.add(FeishuBoard(**sc, enabled=True, changed_at=NOW, app_token="bas-1", url="", tables={"task": "tbl-1"}))
    s.add(FeishuBoardRow(**sc, kind="task", item_id=task_id, token="t", record_id="rec-1", pushed={}))
    s.add(FeishuOverview(tenant_key=case.tenant_key, claimed_by_case=case.id, claimed_at=NOW, url=""))


def _check_board(s: Session) -> None:
    assert s.scalar(select(func.count()).select_from(FeishuBoardRow)) == 1
    assert s.scalar(select(FeishuBoard.tables)) == {"task": "tbl-1"}


REVISIONS = [
    pytest.param(SyncTables("0006_feishu_tasks_sync", "0005_chat_members", {"feishu_task_sync", "feishu_task_links"},
                            set(), _seed_tasks, _check_tasks), id="0006-tasks"),
    pytest.param(SyncTables("0007_feishu_board_sync", "0006_posted_cards_cards",
                            {"feishu_boards", "feishu_board_rows", "feishu_overviews"}, {"feishu_task_links"},
                            _seed_board, _check_board), id="0007-board"),
]


@pytest.mark.parametrize("spec", REVISIONS)
def test_upgrade_with_rows_and_back(scratch_url, spec):
    with migrated_to(scratch_url, spec.previous) as (cfg, engine, factory):
        case_id = make_case_at_step4(factory, now=NOW)
        make_plan_published(factory, case_id, now=NOW)
        command.upgrade(cfg, spec.revision)
        with factory() as s, s.begin():
            case = s.get(Case, case_id)
            # the task's id only: a Task object would read columns later revisions add
            task_id = s.scalar(select(Task.id).where(Task.case_id == case_id).order_by(Task.id).limit(1))
            spec.seed(s, dict(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id), case, task_id)
        with factory() as s:
            spec.check(s)
        command.downgrade(cfg, spec.previous)
        tables = set(inspect(engine).get_table_names())
        assert not spec.tables & tables and spec.kept <= tables
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Task).where(Task.case_id == case_id)) == 2
        command.upgrade(cfg, spec.revision)
        assert spec.tables <= set(inspect(engine).get_table_names())
