"""As time passes, the reminders' planning tick @mentions the lead once for each task that newly
lags — without anyone opening 《进度跟踪表》."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Task
from handlers.reminders import plan_tick
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, fits
from tests.racing import plan_ticks_at_once


def _setup(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    tasks = [TaskSpec("完成用户数据加密接口开发", TECH_DEV, now, now + timedelta(days=2), status="doing", progress=60),
             TaskSpec("协调设计部完成页面适配", DESIGN_HEAD, now, now + timedelta(days=1), status="doing", progress=80)]
    return case_id, make_plan_published(world.state.factory, case_id, now=now, tasks=tasks)


def _tick(world):
    plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router)
    world.drain()


def _alerts(world):
    return [t for t in world.texts() if fits(texts.LAG_ALERT, t)]


def test_tick_mentions_the_lead_once_per_newly_lagging_task(world):
    start = world.clock.now()
    _case_id, (t1, t2) = _setup(world)
    _tick(world)
    world.clock.advance(timedelta(hours=12))   # both on track (t2: 50 % of its time, 80 % done)
    _tick(world)
    assert _alerts(world) == []
    world.clock.set(start + timedelta(days=1, minutes=1))   # t2's deadline has passed
    _tick(world)
    assert _alerts(world) == [f'<at user_id="{LEAD}"></at> 任务滞后：#2 协调设计部完成页面适配（负责人 '
                              f'<at user_id="{DESIGN_HEAD}"></at>，进行中 80%，截止 12-09 09:00）']
    world.clock.advance(timedelta(minutes=1))
    _tick(world)
    assert len(_alerts(world)) == 1            # none on the next tick
    # opening the table does not repeat it either
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    assert len(_alerts(world)) == 1
    world.clock.set(start + timedelta(days=2, minutes=1))   # now t1 is late too
    _tick(world)
    alerts = _alerts(world)
    assert len(alerts) == 2 and "#1 完成用户数据加密接口开发" in alerts[1]
    world.clock.advance(timedelta(minutes=1))
    _tick(world)
    assert len(_alerts(world)) == 2
    with world.state.factory() as s:
        assert all(t.lag_notified_at is not None for t in s.scalars(select(Task).where(Task.id.in_([t1, t2]))))


def test_a_recovered_task_may_alert_again(world):
    start = world.clock.now()
    _case_id, (_t1, t2) = _setup(world)
    world.clock.set(start + timedelta(days=1, minutes=1))
    _tick(world)
    assert len(_alerts(world)) == 1
    with world.state.factory() as s, s.begin():   # the deadline was moved (an approved change)
        s.get(Task, t2).due_at = start + timedelta(days=3)
    world.clock.advance(timedelta(minutes=1))
    _tick(world)
    assert len(_alerts(world)) == 1
    with world.state.factory() as s:
        assert s.get(Task, t2).lag_notified_at is None
    world.clock.set(start + timedelta(days=3, minutes=1))
    _tick(world)
    assert sum("#2" in a for a in _alerts(world)) == 2


def test_two_ticks_racing_alert_once(world):
    start = world.clock.now()
    _setup(world)
    world.clock.set(start + timedelta(days=1, minutes=1))
    results = plan_ticks_at_once(world, 3)
    assert [r for r in results if not isinstance(r, BaseException)], results  # somebody planned
    with world.state.factory() as s:
        assert s.scalar(select(Task.lag_notified_at).where(Task.seq == 2)) is not None
    world.drain()
    assert len(_alerts(world)) == 1
    _tick(world)
    assert len(_alerts(world)) == 1
