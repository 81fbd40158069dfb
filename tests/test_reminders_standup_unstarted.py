"""Regression: the daily standup only asks about tasks that have started. A plan published
just before 09:30 whose tasks start later used to get a standup @mentioning every owner and a
nudge half an hour later, for work nobody could have begun."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Task
from tests.driver import DESIGN_HEAD, TECH_DEV, card_text, fits
from tests.test_reminders_standup import at, make_case, run_until, titled


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
