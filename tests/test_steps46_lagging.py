from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bot.lagging import LAG_GRACE, LAG_MARGIN, elapsed_percent, is_lagging, lag_reason_required, working_seconds
from bot.workdays import WorkCalendar

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)


@dataclass
class T:
    status: str = "doing"
    progress: int = 0
    start_at: datetime = T0
    due_at: datetime = T0 + timedelta(days=10)
    dropped: bool = False


def test_elapsed_percent_is_clamped():
    assert elapsed_percent(T0, T0 + timedelta(days=10), T0 - timedelta(days=1)) == 0
    assert elapsed_percent(T0, T0 + timedelta(days=10), T0 + timedelta(days=5)) == 50
    assert elapsed_percent(T0, T0 + timedelta(days=10), T0 + timedelta(days=20)) == 100


def test_behind_by_more_than_margin_lags():
    half = T0 + timedelta(days=5)  # 50 % of the time used
    assert not is_lagging(T(progress=50 - LAG_MARGIN), half)      # exactly at the margin: fine
    assert is_lagging(T(progress=50 - LAG_MARGIN - 1), half)      # one point more: lagging
    assert not is_lagging(T(progress=0), T0 - timedelta(hours=1))  # not started yet


def test_deadline_passed_blocked_done_dropped():
    late = T0 + timedelta(days=10, minutes=1)
    assert is_lagging(T(progress=99), late)
    assert not is_lagging(T(status="done", progress=100), late)
    assert is_lagging(T(status="blocked", progress=90), T0)
    assert not is_lagging(T(progress=0, dropped=True), late)


def test_lag_reason_required_uses_reported_values():
    half = T0 + timedelta(days=5)
    task = T(progress=10)
    assert lag_reason_required(task, half)
    assert not lag_reason_required(task, half, progress=40)
    assert lag_reason_required(task, half, status="blocked", progress=40)
    assert not lag_reason_required(task, half, status="done", progress=100)


def test_the_rule_as_written_in_the_module_docstring_holds_everywhere():
    """is_lagging sums each task's working time once; it must still agree with the rule stated
    with elapsed_percent, at every hour across nights, a weekend and the deadline itself, and with
    the calendar's remembered days."""
    cal = WorkCalendar({(T0 + timedelta(days=3)).date(): False})
    start, due = T0 + timedelta(hours=5), T0 + timedelta(days=9, hours=3)
    for hours in range(-24, 24 * 11):
        now = T0 + timedelta(hours=hours)
        for progress in (0, 10, 35, 60, 79, 80, 99):
            task = T(progress=progress, start_at=start, due_at=due)
            total, used = working_seconds(start, due, cal), working_seconds(start, now, cal)
            if now > due:
                expected = True
            elif used < min(LAG_GRACE, total / 2):
                expected = False
            else:
                expected = progress + LAG_MARGIN < elapsed_percent(start, due, now, cal)
            assert is_lagging(task, now, cal) is expected, (now, progress)
    deadline = T(progress=79, start_at=start, due_at=due)
    assert is_lagging(deadline, due, cal) and not is_lagging(T(progress=80, start_at=start, due_at=due), due, cal)
