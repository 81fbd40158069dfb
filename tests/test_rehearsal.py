"""The clicks' process rehearses a step-5 case's clicks when it starts (Dispatcher.rehearse): the
handlers run to the end, writes included, and nothing of it is kept, sent or announced."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine.interfaces import CacheStats

from bot.app import rehearse_clicks
from bot.envelope import parse_event
from bot.models import Base, Case
from bot.repository import tasks_of, updates_of
from feishu_fake import events as ev
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import APP_ID, CHAT, LEAD, TENANT, VERIFICATION_TOKEN, FeishuWorld


def _counts(world) -> dict[str, int]:
    with world.state.factory() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _world_with_a_case_in_step_5(database_url, clock) -> FeishuWorld:
    world = FeishuWorld(database_url, clock)
    try:
        case_id = make_case_at_step4(world.state.factory, now=clock.now())
        make_plan_published(world.state.factory, case_id, now=clock.now())
        world.say(LEAD, "/进度")
        world.drain()
    except BaseException:
        world.close()
        raise
    return world


def test_rehearsed_clicks_run_their_writes_and_leave_nothing(database_url, clock):
    world = _world_with_a_case_in_step_5(database_url, clock)
    try:
        before, calls_before = _counts(world), len(world.fake.calls)
        dispatcher = world.state.dispatcher
        kicked: list[int] = []
        dispatcher.on_outbox = lambda: kicked.append(1)
        statements: list[str] = []
        listener = lambda _c, _cur, statement, *_a: statements.append(statement.split()[0] + " " + statement.split()[1])  # noqa: E731
        event.listen(world.state.engine, "before_cursor_execute", listener)
        try:
            assert dispatcher.rehearse() == 3   # 进度跟踪表, the update form, a progress update
        finally:
            event.remove(world.state.engine, "before_cursor_execute", listener)
        assert "UPDATE tasks" in statements and "INSERT INTO" in statements   # the update ran through
        world.drain()
        assert _counts(world) == before
        assert len(world.fake.calls) == calls_before and kicked == []
    finally:
        world.close()


def test_without_a_case_in_step_5_there_is_nothing_to_rehearse(database_url, clock):
    world = FeishuWorld(database_url, clock)
    try:
        assert world.state.dispatcher.rehearse() == 0
    finally:
        world.close()


def test_each_callback_thread_is_rehearsed_on_a_connection_of_its_own(database_url, clock):
    """On PostgreSQL four callback threads: after the start each has run the clicks once, at the
    same time, so the pool holds four connections that have served them (one thread on SQLite)."""
    world = _world_with_a_case_in_step_5(database_url, clock)
    try:
        threads = world.state.lanes.callback_threads
        assert threads == (1 if world.state.engine.dialect.name == "sqlite" else 4)
        world.state.engine.dispose()   # the start's pool: empty
        assert asyncio.run(rehearse_clicks(world.state)) == 3 * threads
        assert world.state.engine.pool.checkedin() >= threads
    finally:
        world.close()


@pytest.mark.parametrize("later", ["an hour later", "past the deadline"])
def test_after_the_rehearsal_a_real_progress_update_compiles_nothing(database_url, clock, later):
    """The first real update after a start usually changes other fields than the rehearsal's (a
    lag reason and an adjustment typed too): it still runs only statements the rehearsal compiled,
    so 20 first updates at once do not compile theirs side by side. Past the deadline the task
    lags, and an update without a lag reason would be refused: the rehearsal's gives one."""
    world = _world_with_a_case_in_step_5(database_url, clock)
    try:
        card = world.last_card(title_contains="新品推广页面延迟")["message_id"]
        with world.state.factory() as s:
            case = s.scalars(select(Case)).one()
            task = tasks_of(s, case)[0]
            owner, case_id, task_id, due = task.owner_open_id, case.id, task.id, task.due_at
        clock.set(clock.now() + timedelta(hours=1) if later == "an hour later" else due + timedelta(days=1))
        world.state.engine.clear_compiled_cache()
        assert world.state.dispatcher.rehearse() == 3
        with world.state.factory() as s:
            version = updates_of(s, task_id)
        compiled: list[str] = []

        def listener(_conn, _cursor, statement, _params, context, _many):
            if context.cache_hit is CacheStats.CACHE_MISS:
                compiled.append(statement.split("(")[0][:60])
        form = {f"s{task_id}": "doing", f"p{task_id}": "35", f"r{task_id}": "接口联调比预期慢",
                f"a{task_id}": "增加一名前端支援"}
        raw = ev.card_action_event(chat_id=CHAT, message_id=card, operator_open_id=owner, form_value=form,
                                   name=f"track.update~{case_id}~{version}~{task_id}",
                                   create_ms=int(clock.now().timestamp() * 1000), app_id=APP_ID, tenant_key=TENANT,
                                   token=VERIFICATION_TOKEN)
        event.listen(world.state.engine, "before_cursor_execute", listener)
        try:
            answer = world.state.dispatcher.callback(raw, parse_event(raw))
        finally:
            event.remove(world.state.engine, "before_cursor_execute", listener)
        assert getattr(answer, "toast_type", "") == "success", answer
        assert compiled == [], compiled
    finally:
        world.close()
