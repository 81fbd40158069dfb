"""People's display names in toasts and exports (names learned from the group's member list
and from mentions: bot.repository.names). Every helper falls back when a name is unknown."""
from __future__ import annotations

from typing import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import repository, texts
from bot.models import Case, Member
from bot.repository import department_of


def name(session: Session, tenant_key: str, open_id: str | None) -> str:
    """The display name, "" when unknown."""
    return repository.name_of(session, tenant_key=tenant_key, open_id=open_id) if open_id else ""


def who(session: Session, tenant_key: str, open_id: str | None, role: str) -> str:
    """A role as a toast names it: 「技术部负责人李娜」 when the name is known, else 「技术部负责人」."""
    known = name(session, tenant_key, open_id)
    return texts.PERSON_WITH_ROLE.format(role=role, name=known) if known else role


def with_name(session: Session, tenant_key: str, open_id: str | None, what: str) -> str:
    """What someone acted for, followed by their name: 「技术部 李娜」, else 「技术部」."""
    known = name(session, tenant_key, open_id)
    return texts.DEPT_WITH_PERSON.format(dept=what, name=known) if known else what


def only_lead(session: Session, tenant_key: str, lead_open_id: str | None, fallback: str) -> str:
    """The refusal for a lead-only action, naming the lead when known."""
    known = name(session, tenant_key, lead_open_id)
    return texts.LEAD_ONLY_NAMED.format(name=known) if known else fallback


def namer(session: Session, tenant_key: str, open_ids: Iterable[str | None]) -> Callable[[str | None], str]:
    """For exports: open_id -> display name, the open_id itself when unknown, "" for none."""
    known = repository.names(session, tenant_key=tenant_key, open_ids=[i for i in open_ids if i])
    return lambda open_id: known.get(open_id or "", open_id or "")


def person_desc(session: Session, case: Case, open_id: str) -> str:
    """Who someone is in this case, in words a toast can show (toasts cannot render mentions)."""
    member = session.scalar(select(Member).where(Member.case_id == case.id, Member.open_id == open_id,
                                                 Member.tenant_key == case.tenant_key, Member.chat_id == case.chat_id))
    dept = department_of(session, case, open_id)
    if member is not None and member.role:
        role = texts.PERSON_ROLE.format(dept=dept.name if dept else "", role=member.role)
    elif dept is not None:
        role = texts.PERSON_ROLE.format(dept=dept.name, role=texts.HEAD_WORD)
    else:
        return name(session, case.tenant_key, open_id) or texts.RISK_OWNER_FALLBACK
    return who(session, case.tenant_key, open_id, role)
