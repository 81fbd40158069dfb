"""The one way the bot writes lengths of time: under a day in hours and minutes, never 「0.0 天」."""
from __future__ import annotations

from datetime import timedelta

import pytest

from bot.durations import span


@pytest.mark.parametrize(("length", "written"), [
    (timedelta(0), "0 分钟"),
    (timedelta(seconds=59), "不到 1 分钟"),
    (timedelta(minutes=30), "30 分钟"),              # a task 30 minutes late
    (timedelta(hours=5), "5 小时"),
    (timedelta(hours=23, minutes=40, seconds=59), "23 小时 40 分"),   # cut, never rounded up
    (timedelta(days=1), "1 天"),
    (timedelta(days=2, hours=3, minutes=59), "2 天 3 小时"),
    (timedelta(minutes=-90), "1 小时 30 分"),       # the size of a negative length
    (3600.0, "1 小时"),                              # seconds work too
])
def test_span(length, written):
    assert span(length) == written


def test_precise_keeps_minutes_beyond_a_day():
    assert span(timedelta(days=1, hours=23, minutes=40), precise=True) == "1 天 23 小时 40 分"
    assert span(timedelta(days=1, minutes=5), precise=True) == "1 天 5 分"
