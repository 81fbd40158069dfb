"""What an open_id looks like, and what a number typed or sent back to us may be. Person fields
are checked with this when a form is parsed, so a value that is not a person never reaches the
database or a mention."""
from __future__ import annotations

import re

OPEN_ID = re.compile(r"^ou_[A-Za-z0-9_-]{1,64}$")
MAX_ID = 2 ** 31 - 1  # ids and versions are INTEGER columns; a larger one is not ours
_DIGITS = re.compile(r"[0-9]{1,12}")


def is_open_id(value: object) -> bool:
    return isinstance(value, str) and OPEN_ID.fullmatch(value) is not None


def number(value: object, *, top: int = MAX_ID) -> int | None:
    """A non-negative whole number of at most `top`, written in ASCII digits; else None.
    `str.isdigit()` is not enough: it accepts 「²」, which `int()` refuses, and any length,
    which SQLite refuses to bind."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return None
    n = int(value)
    return n if n <= top else None
