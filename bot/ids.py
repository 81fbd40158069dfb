"""What an open_id looks like. Person fields are checked with this when a form is parsed, so a
value that is not a person never reaches the database or a mention."""
from __future__ import annotations

import re

OPEN_ID = re.compile(r"^ou_[A-Za-z0-9_-]{1,64}$")


def is_open_id(value: object) -> bool:
    return isinstance(value, str) and OPEN_ID.fullmatch(value) is not None
