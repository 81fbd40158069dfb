"""PostgreSQL closes the pool's connections under the bot (a server restart, a proxy dropping idle
connections): the next click is still answered and recorded once. A connection that sat idle is
tested before use and replaced; one in use a moment ago is not tested (a round trip in every
click), and the click that meets the dead connection runs again on a new one."""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import event, func, select

from bot import db
from bot.models import Case, TaskUpdate
from bot.repository import tasks_of, updates_of
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.conftest import PG_URL
from tests.driver import LEAD, FeishuWorld

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only")


def _drop_every_connection_of_the_database() -> int:
    with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


@pytest.mark.parametrize("idle", [True, False], ids=["idle connections", "connections in use"])
def test_a_click_after_the_server_dropped_the_connections_is_answered_once(database_url, clock, monkeypatch, idle):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0 if idle else 1e9)
    world = FeishuWorld(database_url, clock)
    try:
        case_id = make_case_at_step4(world.state.factory, now=clock.now())
        make_plan_published(world.state.factory, case_id, now=clock.now())
        world.say(LEAD, "/进度")
        card = world.last_card(title_contains="新品推广页面延迟")["message_id"]
        with world.state.factory() as s:
            task = tasks_of(s, s.get(Case, case_id))[0]
            owner, task_id, version = task.owner_open_id, task.id, updates_of(s, task.id)
        errors: list[bool] = []
        event.listen(world.state.engine, "handle_error", lambda ctx: errors.append(ctx.invalidate_pool_on_disconnect))
        assert _drop_every_connection_of_the_database() >= 1
        answer = world.click(owner, card, form={f"s{task_id}": "doing", f"p{task_id}": "40"},
                             name=f"track.update~{case_id}~{version}~{task_id}")
        assert answer.get("toast", {}).get("type") == "success", answer
        with world.state.factory() as s:
            assert s.scalar(select(func.count()).select_from(TaskUpdate).where(TaskUpdate.task_id == task_id)) == 1
            assert tasks_of(s, s.get(Case, case_id))[0].progress == 40
        if idle:
            assert errors == []          # every dead connection was found by its test and replaced
        else:
            assert errors, "no statement met a dropped connection: the test did not test the retry"
    finally:
        world.close()
