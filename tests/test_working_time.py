"""Lag and due times count working time (09:00–18:00 on working days, the standups' calendar):
nobody lags overnight, over a weekend or a holiday."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.lagging import elapsed_percent, is_lagging, working_seconds
from bot.workdays import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
H = 3600


def sh(*a) -> datetime:
    return datetime(*a, tzinfo=SH)


@dataclass
class T:
    start_at: datetime
    due_at: datetime
    progress: int = 0
    status: str = "doing"
    dropped: bool = False


def test_working_seconds_skip_nights_weekends_and_holidays():
    assert working_seconds(sh(2026, 12, 8, 17), sh(2026, 12, 9, 10)) == 2 * H      # Tue 17:00 → Wed 10:00
    assert working_seconds(sh(2026, 12, 11, 18), sh(2026, 12, 14, 9)) == 0         # Fri evening → Mon 09:00
    assert working_seconds(sh(2026, 12, 11, 12), sh(2026, 12, 14, 12)) == 9 * H    # over a weekend
    assert working_seconds(sh(2026, 9, 30, 9), sh(2026, 10, 8, 9)) == 9 * H        # National Day week
    assert working_seconds(sh(2026, 12, 9, 10), sh(2026, 12, 9, 9)) == 0


def test_a_tenant_override_counts_too():
    off = WorkCalendar({sh(2026, 12, 9).date(): False})
    assert working_seconds(sh(2026, 12, 8, 9), sh(2026, 12, 10, 9), off) == 9 * H


def test_nobody_lags_overnight():
    # Tue 14:00 → Fri 18:00: 76 clock hours, 31 working hours; the first standup Wed 09:31, 0 % done
    task = T(sh(2026, 12, 8, 14), sh(2026, 12, 11, 18))
    assert round(elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 9, 9, 31))) == 15   # clock: 25 %
    assert not is_lagging(task, sh(2026, 12, 9, 9, 31))
    assert elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 9, 8, 59)) == \
        elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 8, 18))   # the night added nothing
    assert not is_lagging(task, sh(2026, 12, 9, 12))         # 7 of 31 working hours: 23 %, but not a day yet
    assert is_lagging(task, sh(2026, 12, 9, 14))             # a working day (9 h) at 0 %: 29 % > 0 % + 20


def test_the_first_standup_after_an_afternoon_start_flags_nobody():
    """The reported case: started 14:00, due 52 clock hours later; at 09:31 the next morning
    19.5 clock hours (37.5 %) but 4.5 working hours (20.5 % of 22) have passed — still nobody
    lags: the owner has not had a standup to report at yet."""
    task = T(sh(2026, 12, 7, 14), sh(2026, 12, 9, 18))
    assert round(elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 8, 9, 31)), 1) == 20.5
    assert not is_lagging(task, sh(2026, 12, 8, 9, 31))
    assert not is_lagging(task, sh(2026, 12, 8, 13, 59))
    assert is_lagging(task, sh(2026, 12, 8, 14, 0))          # a working day at 0 % of a 22-hour task
    short = T(sh(2026, 12, 8, 9), sh(2026, 12, 8, 13))      # a 4-hour task: half its time is the grace
    assert not is_lagging(short, sh(2026, 12, 8, 10, 59))
    assert is_lagging(short, sh(2026, 12, 8, 11, 0))


def test_nobody_lags_over_a_weekend():
    task = T(sh(2026, 12, 11, 9), sh(2026, 12, 15, 18), progress=20)   # Fri → Tue, 27 working hours
    friday_evening = elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 11, 18))
    assert friday_evening == elapsed_percent(task.start_at, task.due_at, sh(2026, 12, 14, 8, 50))
    assert not is_lagging(task, sh(2026, 12, 13, 11))                  # Sunday 11:00
    assert is_lagging(task, sh(2026, 12, 15, 9) + timedelta(hours=1))


def test_past_the_deadline_always_lags_and_a_task_outside_hours_only_by_its_deadline():
    night = T(sh(2026, 12, 8, 19), sh(2026, 12, 8, 23))
    assert not is_lagging(night, sh(2026, 12, 8, 22))
    assert is_lagging(night, sh(2026, 12, 8, 23, 1))


def test_progress_checks_before_a_key_node_land_on_working_hours():
    from datetime import datetime as dt
    from zoneinfo import ZoneInfo as Zone

    from bot.reminders import keynode_check_slot
    from bot.workdays import WorkCalendar

    tz, cal = Zone("Asia/Shanghai"), WorkCalendar()
    # Monday 10:00 node: not Sunday 10:00 but Friday 10:00
    assert keynode_check_slot(dt(2026, 12, 14, 10, 0, tzinfo=tz), 24, cal, tz) == dt(2026, 12, 11, 10, 0, tzinfo=tz)
    # Thursday 10:00 node: Wednesday 10:00, as before
    assert keynode_check_slot(dt(2026, 12, 10, 10, 0, tzinfo=tz), 24, cal, tz) == dt(2026, 12, 9, 10, 0, tzinfo=tz)
    # Tuesday 07:00 node: Monday 09:00, not Monday 07:00
    assert keynode_check_slot(dt(2026, 12, 8, 7, 0, tzinfo=tz), 24, cal, tz) == dt(2026, 12, 7, 9, 0, tzinfo=tz)
    # two hours before a Monday 09:30 node: that morning at 09:00, not 07:30
    assert keynode_check_slot(dt(2026, 12, 14, 9, 30, tzinfo=tz), 2, cal, tz) == dt(2026, 12, 14, 9, 0, tzinfo=tz)
    # one hour before a Monday 09:00 node: the last working moment before it, Friday 18:00
    assert keynode_check_slot(dt(2026, 12, 14, 9, 0, tzinfo=tz), 1, cal, tz) == dt(2026, 12, 11, 18, 0, tzinfo=tz)


def test_a_key_node_check_states_the_working_time_left_too():
    """Friday 10:00 for a Monday 10:00 node: three days on the clock, nine working hours; Friday
    18:00 for a Monday 09:00 node: no working time at all before it."""
    from cards.reminders import KeyNodeView, keynode_card
    from tests.driver import card_text

    def text(now: datetime, node: datetime) -> str:
        view = KeyNodeView(case_id=1, node_id=1, node_name="上线", node_at="12-14 10:00", hours_before=24,
                           left_seconds=int((node - now).total_seconds()), lead_open_id="ou_lead", open_tasks=(),
                           work_left_seconds=int(working_seconds(now, node)))
        return card_text(keynode_card(view))

    assert "（还剩 3 天，其中工作时间 9 小时）" in text(sh(2026, 12, 11, 10), sh(2026, 12, 14, 10))
    assert "（还剩 2 天 15 小时，之前已没有工作时间）" in text(sh(2026, 12, 11, 18), sh(2026, 12, 14, 9))
    assert "（还剩 2 小时，其中工作时间 1 小时）" in text(sh(2026, 12, 14, 8), sh(2026, 12, 14, 10))
    assert "（还剩 2 小时）" in text(sh(2026, 12, 14, 14), sh(2026, 12, 14, 16))   # all of it working time
