"""What an open_id looks like. Person fields are checked with this when a form is parsed, so a
value that is not a person never reaches the database or a mention."""
from __future__ import annotations

import re

OPEN_ID = re.compile(r"^ou_[A-Za-z0-9_-]{1,64}$")


def is_open_id(value: object) -> bool:
    return isinstance(value, str) and OPEN_ID.fullmatch(value) is not None


def text_mention(open_id: str) -> str:
    """The @-mention of a *text* message (cards use cards.kit.at); "" for anything not an open_id,
    so no `user_id="all"` or markup can ride in."""
    return f'<at user_id="{open_id}"></at>' if is_open_id(open_id) else ""
