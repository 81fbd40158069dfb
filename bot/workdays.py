"""China's working-day calendar, plus a tenant's own exceptions.

The public calendar comes from the maintained `holidays` package (`holidays.China`): statutory
holidays, the substituted days off and the 调休 make-up working days on weekends
(`weekend_workdays`, e.g. Saturday 2026-02-14). The State Council publishes next year's
schedule around November and `holidays` ships it in its next monthly release, so keeping the
bot right means upgrading that package once a year (README). A tenant's `CalendarOverride`
rows (company holiday, extra working day) win over the public calendar.

Working hours (09:00–18:00 local on working days) decide when non-urgent reminders may go out.
"""
from __future__ import annotations

import threading
import time as time_module
import weakref
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from bot.models import CalendarOverride

WORK_START = time(9, 0)
WORK_END = time(18, 0)
_SEARCH_DAYS = 60  # longer than any Chinese holiday block (Spring Festival ≤ 9 days)


@lru_cache(maxsize=64)
def _china(year: int) -> holidays.HolidayBase:
    return holidays.China(years=year)


def load_public_calendar(today: date) -> None:
    """Load the public calendar of the years around `today` now. The first look at it imports
    the `holidays` package's countries (about 0.2 s of CPU): done at a person's first click after a
    start, it made every click arriving meanwhile wait behind it."""
    for year in (today.year - 1, today.year, today.year + 1):
        _china(year)


def public_is_workday(day: date) -> bool:
    """China's public calendar: Mon–Fri minus holidays, plus 调休 weekend working days."""
    return bool(_china(day.year).is_working_day(day))


def holiday_name(day: date) -> str | None:
    return _china(day.year).get(day)


class WorkCalendar:
    """The public calendar with a tenant's overrides ({day: is_workday})."""

    def __init__(self, overrides: dict[date, bool] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self._public: dict[date, bool] = {}   # a lag check walks every day of each task's span

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        known = self._public.get(day)
        if known is None:
            if len(self._public) > 4096:   # the module's calendar lives as long as the process
                self._public.clear()
            known = self._public[day] = public_is_workday(day)
        return known

    def next_workday(self, day: date, *, inclusive: bool = True) -> date:
        d = day if inclusive else day + timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.is_workday(d):
                return d
            d += timedelta(days=1)
        return d  # a tenant marked two months off: give up searching, never loop forever

    def workdays_after(self, start: date, days: int) -> list[date]:
        """The working days in the `days` calendar days starting at `start` (inclusive)."""
        return [start + timedelta(days=i) for i in range(days) if self.is_workday(start + timedelta(days=i))]

    def workdays_between(self, first: date, last: date) -> int:
        """Working days d with first < d <= last (0 when last <= first)."""
        n, d = 0, first + timedelta(days=1)
        while d <= last:
            n += self.is_workday(d)
            d += timedelta(days=1)
        return n

    # ------------------------------------------------------------ working hours
    def in_hours(self, when: datetime, tz: ZoneInfo) -> bool:
        local = when.astimezone(tz)
        return self.is_workday(local.date()) and WORK_START <= local.time() <= WORK_END

    def next_in_hours(self, when: datetime, tz: ZoneInfo) -> datetime:
        """`when` if inside working hours, else the next working morning's start."""
        if self.in_hours(when, tz):
            return when
        local = when.astimezone(tz)
        day = local.date()
        if self.is_workday(day) and local.time() < WORK_START:
            return datetime.combine(day, WORK_START, tz)
        return datetime.combine(self.next_workday(day, inclusive=False), WORK_START, tz)

    def last_in_hours(self, when: datetime, tz: ZoneInfo) -> datetime:
        """`when` if inside working hours, else the end of the previous working window."""
        if self.in_hours(when, tz):
            return when
        local = when.astimezone(tz)
        day = local.date()
        if self.is_workday(day) and local.time() > WORK_END:
            return datetime.combine(day, WORK_END, tz)
        d = day - timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.is_workday(d):
                break
            d -= timedelta(days=1)
        return datetime.combine(d, WORK_END, tz)


# built once: every lag check (most clicks and commands of step 5) reads the tenant's overrides
_OVERRIDES = select(CalendarOverride.day, CalendarOverride.is_workday).where(
    CalendarOverride.tenant_key == bindparam("tenant_key"))

# A tenant's overrides are rows an operator adds by hand a few times a year, and the bot never
# writes them: each process reads a tenant's once a minute, not in every lag check (a statement in
# every click of step 5). An override added takes effect within OVERRIDES_READ_EVERY_SECONDS.
OVERRIDES_READ_EVERY_SECONDS = 60.0
_read: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, WorkCalendar]]] = weakref.WeakKeyDictionary()
_read_lock = threading.Lock()


def calendar_for(session: Session, tenant_key: str) -> WorkCalendar:
    engine = session.get_bind()
    now = time_module.monotonic()
    with _read_lock:
        read = _read.setdefault(cast(Engine, engine), {}).get(tenant_key)
    if read is not None and now - read[0] < OVERRIDES_READ_EVERY_SECONDS:
        return read[1]
    # no autoflush: nothing pending can change this read, and a flush here would be a second one
    # in the transaction (a click's commit flushes anyway)
    rows = session.execute(_OVERRIDES, {"tenant_key": tenant_key},
                           execution_options={"autoflush": False}).all()
    cal = WorkCalendar({day: bool(flag) for day, flag in rows})
    with _read_lock:
        _read.setdefault(cast(Engine, engine), {})[tenant_key] = (now, cal)
    return cal
