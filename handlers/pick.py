"""Which case a command names: 「#N」 is the group's N-th case, whatever its state."""
from __future__ import annotations

from bot import repository, texts
from bot.ids import number
from bot.models import Case
from bot.routing import Ctx, UserError


def case_by_seq(ctx: Ctx, token: str) -> Case | None:
    """The group's case 「#N」 (also ＃N); None when `token` is not of that form."""
    token = token.strip()
    seq = number(token[1:]) if token[:1] in ("#", "＃") and len(token) <= 8 else None
    if seq is None:
        return None
    case = next((c for c in repository.cases_of_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
                 if c.seq == seq), None)
    if case is None:
        raise UserError(texts.CASE_SEQ_NOT_FOUND.format(seq=seq))
    return case
