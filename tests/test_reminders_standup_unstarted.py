"""Regression: the daily standup only asks about tasks that have started. A plan published
just before 09:30 whose tasks start later used to get a standup @mentioning every owner and a
nudge half an hour later, for work nobody could have begun."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Task
from tests.driver import DESIGN_HEAD, TECH_DEV, card_text, card_title, fits
from tests.test_reminders_standup import at, make_case, run_until, tick, titled


def _starts(world, content: str, when) -> None:
    with world.state.factory() as s, s.begin():
        s.scalars(select(Task).where(Task.content == content)).one().start_at = when


def test_standup_leaves_out_tasks_not_started_yet(world):
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18)),
                            (TECH_DEV, "联调测试", at(2026, 12, 11, 18))])
    _starts(world, "联调测试", at(2026, 12, 9, 9))           # starts tomorrow morning
    run_until(world, at(2026, 12, 8, 10, 30), timedelta(minutes=10))
    [card] = titled(world, "今日站会 · 12月8日")
    text = card_text(card["content"])
    assert f"<at id={DESIGN_HEAD}></at>" in text and "页面设计稿" in text
    assert TECH_DEV not in text and "联调测试" not in text
    nudges = [t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]
    assert len(nudges) == 1 and DESIGN_HEAD in nudges[0] and TECH_DEV not in nudges[0]
    run_until(world, at(2026, 12, 9, 9, 30), timedelta(minutes=30))   # next morning it has started
    assert f"<at id={TECH_DEV}></at>" in card_text(titled(world, "今日站会 · 12月9日")[0]["content"])


def test_no_standup_and_no_nudge_when_no_task_has_started(world):
    make_case(world, tasks=[(TECH_DEV, "联调测试", at(2026, 12, 11, 18))])
    _starts(world, "联调测试", at(2026, 12, 9, 9))
    run_until(world, at(2026, 12, 8, 11), timedelta(minutes=10))
    assert titled(world, "今日站会") == [] and titled(world, "进度跟踪表") == []
    assert not [t for t in world.texts() if "今日站会" in t]
    run_until(world, at(2026, 12, 9, 9, 30), timedelta(minutes=30))
    assert len(titled(world, "今日站会 · 12月9日")) == 1


def _plan_published_monday_evening(world):
    """Published Monday 17:00; every task starts Tuesday 09:00."""
    world.clock.set(at(2026, 12, 7, 17, 0))
    make_case(world, entered=at(2026, 12, 7, 17, 0), tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18)),
                                                            (TECH_DEV, "联调测试", at(2026, 12, 11, 18))])
    for content in ("页面设计稿", "联调测试"):
        _starts(world, content, at(2026, 12, 8, 9))


def _standups(world) -> list[tuple[str, str]]:
    return [(card_title(m["content"]), card_text(m["content"])) for m in titled(world, "今日站会")]


def test_tasks_that_started_while_the_bot_was_down_get_that_days_standup(world):
    _plan_published_monday_evening(world)
    tick(world)                                      # Monday 17:00: planned, then down all night
    world.clock.set(at(2026, 12, 8, 9, 50))          # back Tuesday 09:50: the tasks started at 09:00
    tick(world)
    tick(world)
    [(title, text)] = _standups(world)
    assert title == "今日站会 · 12月8日（补发）"
    assert f"<at id={DESIGN_HEAD}></at>" in text and f"<at id={TECH_DEV}></at>" in text
    run_until(world, at(2026, 12, 8, 10, 20), timedelta(minutes=5))   # and it keeps its nudge
    assert len([t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]) == 1


def test_a_case_never_planned_before_the_bot_went_down_still_gets_that_days_standup(world):
    """The plan went out Monday 17:00 and the bot stopped before its first planning tick: the
    standups are planned from the step's start, not from the moment it came back."""
    _plan_published_monday_evening(world)
    world.clock.set(at(2026, 12, 8, 9, 50))
    tick(world)
    tick(world)
    assert [t for t, _ in _standups(world)] == ["今日站会 · 12月8日（补发）"]
