"""China's 2026 working-day calendar (holidays, 调休) and tenant overrides."""
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.workdays import WorkCalendar, calendar_for, holiday_name, public_is_workday

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("day, workday", [
    (date(2026, 1, 1), False),    # 元旦
    (date(2026, 1, 2), False),    # 元旦 (substituted)
    (date(2026, 1, 4), True),     # Sunday, 调休 working day
    (date(2026, 2, 14), True),    # Saturday, 调休 working day before Spring Festival
    (date(2026, 2, 16), False),   # 除夕
    (date(2026, 2, 20), False),
    (date(2026, 2, 23), False),   # Monday off (substituted from 02-28)
    (date(2026, 2, 24), True),
    (date(2026, 2, 28), True),    # Saturday, 调休
    (date(2026, 4, 6), False),    # 清明 observed
    (date(2026, 5, 5), False),    # 劳动节
    (date(2026, 5, 9), True),     # Saturday, 调休
    (date(2026, 6, 19), False),   # 端午
    (date(2026, 9, 20), True),    # Sunday, 调休
    (date(2026, 9, 25), False),   # 中秋
    (date(2026, 10, 1), False),   # 国庆
    (date(2026, 10, 7), False),
    (date(2026, 10, 8), True),
    (date(2026, 10, 10), True),   # Saturday, 调休
    (date(2026, 10, 11), False),  # ordinary Sunday
    (date(2026, 12, 8), True),    # ordinary Tuesday
])
def test_china_2026(day, workday):
    assert public_is_workday(day) is workday


def test_2027_is_known():
    # The calendar must not stop at 2026 (chinese-calendar does): 2027-10-01 is National Day.
    assert public_is_workday(date(2027, 10, 1)) is False
    assert holiday_name(date(2027, 10, 1))


def test_overrides_win():
    cal = WorkCalendar({date(2026, 12, 8): False, date(2026, 12, 12): True})
    assert not cal.is_workday(date(2026, 12, 8))
    assert cal.is_workday(date(2026, 12, 12))  # a Saturday the company works
    assert cal.next_workday(date(2026, 12, 8)) == date(2026, 12, 9)


def test_working_hours_shift():
    cal = WorkCalendar()
    fri_night = datetime(2026, 9, 30, 20, 0, tzinfo=SH)  # Wed before National Day
    assert cal.next_in_hours(fri_night, SH) == datetime(2026, 10, 8, 9, 0, tzinfo=SH)
    assert cal.last_in_hours(datetime(2026, 10, 4, 10, 0, tzinfo=SH), SH) == datetime(2026, 9, 30, 18, 0, tzinfo=SH)
    inside = datetime(2026, 2, 14, 10, 0, tzinfo=SH)  # 调休 Saturday counts as working hours
    assert cal.in_hours(inside, SH) and cal.next_in_hours(inside, SH) == inside
    assert cal.workdays_between(date(2026, 9, 30), date(2026, 10, 9)) == 2  # 10-08, 10-09


def test_calendar_for_reads_tenant_rows(world):
    from bot.models import CalendarOverride

    with world.state.factory() as s, s.begin():
        s.add(CalendarOverride(tenant_key="t1", day=date(2026, 12, 9), is_workday=False, note="司庆"))
        s.add(CalendarOverride(tenant_key="t2", day=date(2026, 12, 10), is_workday=False))
    with world.state.factory() as s:
        cal = calendar_for(s, "t1")
    assert not cal.is_workday(date(2026, 12, 9))
    assert cal.is_workday(date(2026, 12, 10))  # another tenant's override does not leak


def test_serving_starts_with_the_public_calendar_loaded(monkeypatch):
    """The first look at the calendar imports the `holidays` countries (about 0.2 s): `collab-bot
    serve` does it before serving, not a person's first click after a start."""
    import sys

    from bot import app, workdays

    monkeypatch.setattr(app, "settle_memory", lambda: None)        # no gc.freeze in the test process
    monkeypatch.setattr(sys, "setswitchinterval", lambda _interval: None)
    workdays._china.cache_clear()
    app.prepare_to_serve()
    loaded = workdays._china.cache_info().currsize
    public_is_workday(datetime.now().date())   # what a lag check asks
    assert loaded == 3 and workdays._china.cache_info().misses == 3


def test_an_override_added_later_takes_effect_within_the_read_interval(world, monkeypatch):
    """Overrides are read once per interval, not in every lag check: one added after a read is
    seen once the interval has passed, and not before (each process keeps its own)."""
    from bot import workdays
    from bot.models import CalendarOverride

    clock = [1000.0]
    monkeypatch.setattr(workdays.time_module, "monotonic", lambda: clock[0])
    with world.state.factory() as s:
        assert calendar_for(s, "t1").is_workday(date(2026, 12, 9))
    with world.state.factory() as s, s.begin():
        s.add(CalendarOverride(tenant_key="t1", day=date(2026, 12, 9), is_workday=False, note="司庆"))
    clock[0] += workdays.OVERRIDES_READ_EVERY_SECONDS - 1
    with world.state.factory() as s:
        assert calendar_for(s, "t1").is_workday(date(2026, 12, 9))   # read a moment ago
    clock[0] += 1
    with world.state.factory() as s:
        assert not calendar_for(s, "t1").is_workday(date(2026, 12, 9))
