"""Regression: when the planning tick finds a task newly lagging, the live case card turns red
and counts the lag in the same breath as the lead's @mention (it used to stay blue, 滞后 0)."""
from __future__ import annotations

from datetime import timedelta

from bot import texts
from handlers.jobs import plan_tick
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, card_text, fits


def test_tick_lag_alert_patches_the_live_case_card(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now, tasks=[
        TaskSpec("完成用户数据加密接口开发", TECH_DEV, now, now + timedelta(days=2), status="doing", progress=60),
        TaskSpec("协调设计部完成页面适配", DESIGN_HEAD, now, now + timedelta(days=1), status="doing", progress=80)])
    world.say(LEAD, "/进度")
    live = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    assert world.card(live)["header"]["template"] == "blue" and "滞后 0" in card_text(world.card(live))
    world.clock.advance(timedelta(days=1, minutes=1))   # task 2's deadline has passed
    assert plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router) >= 1
    world.drain()
    assert len([t for t in world.texts() if fits(texts.LAG_ALERT, t)]) == 1
    card = world.card(live)
    assert card["header"]["template"] == "red" and "滞后 1" in card_text(card)
    assert "#2 协调设计部完成页面适配" in card_text(card)
    # the next tick changes nothing: no second alert, no extra patch
    patches = len([c for c in world.fake.calls if c.method == "PATCH"])
    world.clock.advance(timedelta(minutes=1))
    plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router)
    world.drain()
    assert len([t for t in world.texts() if fits(texts.LAG_ALERT, t)]) == 1
    assert len([c for c in world.fake.calls if c.method == "PATCH"]) == patches
