"""One way to write a length of time for people: 「30 分钟」「5 小时 20 分」「2 天 3 小时」.

Under a day it is hours and minutes (a task 30 minutes late is not 「0.0 天」); from a day on,
days and hours (minutes too when `precise`, for the time left before a key node). Parts are cut,
never rounded up, so a time left is never overstated."""
from __future__ import annotations

from datetime import timedelta

from bot import texts

_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def span(length: timedelta | float, *, precise: bool = False) -> str:
    """`length` as a timedelta or seconds; negative lengths are written as their size."""
    seconds = int(abs(length.total_seconds() if isinstance(length, timedelta) else length))
    if seconds < _MINUTE:
        return texts.DUR_NONE if seconds == 0 else texts.DUR_UNDER_MINUTE
    days, rest = divmod(seconds, _DAY)
    hours, rest = divmod(rest, _HOUR)
    minutes = rest // _MINUTE
    parts = []
    if days:
        parts.append(texts.DUR_DAYS.format(n=days))
    if hours:
        parts.append(texts.DUR_HOURS.format(n=hours))
    if minutes and (precise or not days):
        parts.append((texts.DUR_MINUTES_AFTER if parts else texts.DUR_MINUTES).format(n=minutes))
    return " ".join(parts)
