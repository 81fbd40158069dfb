"""Builds the live case card from the database and keeps it current.

Step modules register the buttons and summary their step needs on their Router
(`router.buttons(step, …)`, `@router.summary(step)`) and call `refresh(ctx, case)` after any
change: the live card is patched in place (cards.md: one live card per case); `post(ctx, case)`
sends it anew (`/进度`, step changes)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.db import rowcount
from bot.models import Case, Outbox, PostedCard, StepLog
from bot.routing import Ctx, Router
from bot.workflow import Gap, Step, missing
from cards.case import CaseButton, CaseView, case_card, pointer_card, result_card


def gap_labels(gaps: tuple[Gap, ...]) -> tuple[str, ...]:
    """「技术部 负责人签字」… for the state machine's gap codes."""
    return tuple(texts.GAP_LABELS[g.kind.value].format(subject=g.subject) for g in gaps)


def view(ctx: Ctx, case: Case) -> CaseView:
    step = case.step
    gaps = gap_labels(missing(step, repository.facts(ctx.session, case))) if step < Step.CLOSED else ()
    parts = ctx.registry
    assert parts is not None, "the case card needs the composed Router"
    buttons = tuple(CaseButton(label, ActionValue(name, case_id=case.id, version=case.version), primary)
                    for label, name, primary in parts.case_buttons.get(step, ())
                    + tuple(spec for extra in parts.case_extras for spec in extra(ctx, case)))
    summary = parts.case_summaries[step](ctx, case) if step in parts.case_summaries else ""
    state = parts.case_states[step](ctx, case) if step in parts.case_states else ("waiting" if gaps else "done")
    entered = texts.STEP_ENTERED.format(done=texts.OUTPUTS.get(step - 1, ""), step=int(step),
                                        name=texts.STEP_NAMES[step]) if Step.CONSENSUS < step < Step.CLOSED else ""
    return CaseView(case_id=case.id, seq=case.seq, title=case.title, step=step, lead_open_id=case.lead_open_id,
                    missing=gaps, buttons=buttons, state=state, extra_markdown=summary, status=case.status,
                    done=_done_steps(ctx, case) if step >= Step.CLOSED else None, entered=entered)


def _done_steps(ctx: Ctx, case: Case) -> tuple[int, ...]:
    """An archived case's strip: the steps it completed (a case dropped in step 2 completed step 1)."""
    entered = {int(s) for s in ctx.session.scalars(select(StepLog.step).where(
        StepLog.case_id == case.id, StepLog.tenant_key == case.tenant_key))}
    if not entered:
        return ()
    finalised = repository.artifact_state(ctx.session, case, "retro").archived_at is not None
    last = max(entered)
    return tuple(sorted(entered - ({last} if not finalised else set())))


def build(ctx: Ctx, case: Case) -> dict:
    ctx.session.flush()
    return case_card(view(ctx, case))


def post(ctx: Ctx, case: Case) -> None:
    """Send the case card as a new message and make it the live one (older ones then point to it)."""
    ctx.send(outbox.SendCard(build(ctx, case), bind_case_card=case.id, view="case", case_id=case.id))
    request_sync(ctx, case)


def refresh(ctx: Ctx, case: Case) -> None:
    """Bring the case's posted cards up to date (or post a case card if the group has none yet)."""
    if case.card_message_id:
        request_sync(ctx, case)
    else:
        post(ctx, case)


# ---------------------------------------------------------------- cards that stay true
SYNC_KIND = "card_sync"
PATCH_WINDOW = timedelta(days=14)   # Feishu updates a card only within 14 days of sending


# Built once (every click that changes something runs it; building it anew cost more than running it).
_OUTBOX = cast(Table, Outbox.__table__)   # declarative types __table__ as any FromClause
_WAITING_SYNC = select(_OUTBOX.c.id).where(
    _OUTBOX.c.tenant_key == bindparam("w_tenant_key"), _OUTBOX.c.chat_id == bindparam("w_chat_id"),
    _OUTBOX.c.kind == SYNC_KIND, _OUTBOX.c.case_id == bindparam("w_case_id"), _OUTBOX.c.status == "pending",
    _OUTBOX.c.due_at <= bindparam("w_now", type_=_OUTBOX.c.due_at.type)
).limit(1).with_for_update(skip_locked=True).scalar_subquery()
_JOIN_WAITING_SYNC = update(_OUTBOX).where(_OUTBOX.c.id.in_(_WAITING_SYNC), _OUTBOX.c.status == "pending") \
    .values(due_at=_OUTBOX.c.due_at)
_NEW_SYNC = {"kind": SYNC_KIND, "payload": {}, "priority": int(outbox.Priority.BULK), "status": "pending",
             "attempts": 0, "late": False}   # after this event's sends
_ADD_SYNC = insert(_OUTBOX)


def _join_or_add_sync_pg() -> Insert:
    """PostgreSQL: join a waiting sync, else add one, in one statement (a data-modifying CTE)."""
    joined = _JOIN_WAITING_SYNC.returning(_OUTBOX.c.id).cte("joined")
    names = ("tenant_key", "chat_id", "case_id", "fire_key", "due_at", *_NEW_SYNC)
    row = select(*(bindparam(f"n_{n}", type_=_OUTBOX.c[n].type) for n in names)).where(~exists(select(joined.c.id)))
    return insert(_OUTBOX).from_select(list(names), row).add_cte(joined)


_JOIN_OR_ADD_SYNC_PG = _join_or_add_sync_pg()


def request_sync(ctx: Ctx, case: Case | int) -> None:
    """After this event commits, patch every card of the case whose state moved. The sync draws
    the cards when it is delivered and patches only those that changed, so a burst of clicks
    costs one patch per changed card per sync; a sync with nothing to change sends nothing.
    Takes the case or its id (the renderer checks the case belongs to this group)."""
    if not isinstance(case, int) and case.id is None:
        ctx.session.flush()   # a case added in this transaction gets its id
    case_id = case if isinstance(case, int) else case.id
    asked: set[int] = ctx.session.info.setdefault("card_sync_asked", set())   # once per case per event
    if case_id in asked:
        return
    asked.add(case_id)
    # A sync of the case that is due and not claimed yet draws the cards after this event commits:
    # join it instead of adding another (a burst of clicks costs one redraw). The UPDATE holds that
    # row until this transaction ends — PostgreSQL's claim skips locked rows, SQLite has one
    # writer — so it cannot be drawn before this event's changes are visible. A row already
    # claimed, or held by another event still running (skipped, never waited for), is not
    # matched, and this event gets its own. The fire_key holds the event id, which the inbox claims
    # once, so it cannot collide. Claimed after the event's own sends (lower priority), so a card it
    # posts is already recorded when the older ones shrink. Run on the connection, not the ORM: the
    # statements touch no object the session holds, and an ORM statement would flush the click's
    # changes early, a second flush in its transaction.
    where = {"w_tenant_key": ctx.tenant_key, "w_chat_id": ctx.chat_id, "w_case_id": case_id, "w_now": ctx.now}
    new = dict(tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, case_id=case_id, due_at=ctx.now,
               fire_key=f"{case_id}@{ctx.event_id}"[:96], **_NEW_SYNC)
    conn = ctx.session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(_JOIN_OR_ADD_SYNC_PG, dict(where, **{f"n_{k}": v for k, v in new.items()}))
    elif not rowcount(conn.execute(_JOIN_WAITING_SYNC, where)):
        conn.execute(_ADD_SYNC, [new])


def private_view(case: Case | None) -> str:
    """A private form remembers the step it belongs to: once the case has moved on it is removed."""
    return f"form{int(case.step)}" if case is not None else "form"


def _left_behind(case: Case, card: PostedCard) -> bool:
    step = card.view[4:]
    return card.view.startswith("form") and step.isdigit() and int(step) != int(case.step)


def answered(ctx: Ctx, posted: PostedCard, card: dict) -> None:
    """A callback's answer redrew this shared card: it shows `card` now (no patch needed)."""
    posted.digest, posted.patched_at = outbox.card_digest(card), ctx.now


def result_line(line: str) -> dict:
    return result_card(line)


def sync_ops(ctx: Ctx, case: Case) -> list[outbox.Op]:
    """The patches that make every card still in the chat for `case` true: the newest card of
    each view is redrawn from the state (patched only if it changed); older ones of the same
    view shrink to a pointer to it; private forms of a step the case has left are removed. Cards
    past Feishu's 14-day window are left alone."""
    registry = ctx.registry
    assert registry is not None, "syncing cards needs the composed Router"
    posted = list(ctx.session.scalars(select(PostedCard).where(
        PostedCard.case_id == case.id, PostedCard.tenant_key == case.tenant_key,
        PostedCard.chat_id == case.chat_id, PostedCard.private_for.is_(None),
        PostedCard.superseded.is_(False), PostedCard.sent_at > ctx.now - PATCH_WINDOW)
        .order_by(PostedCard.id)))
    newest: dict[str, PostedCard] = {}
    for card in posted:
        newest[card.view] = card
    ops: list[outbox.Op] = [outbox.DeletePrivate(c.message_id) for c in ctx.session.scalars(select(PostedCard).where(
        PostedCard.case_id == case.id, PostedCard.tenant_key == case.tenant_key, PostedCard.chat_id == case.chat_id,
        PostedCard.private_for.is_not(None), PostedCard.superseded.is_(False))) if _left_behind(case, c)]
    drawn: dict[str, dict | None] = {}
    for card in posted:
        name = texts.CARD_VIEW_NAMES.get(card.view, card.view)
        if newest[card.view] is not card:
            when = newest[card.view].sent_at.astimezone(ctx.tz).strftime(texts.DATETIME_FMT)
            ops.append(outbox.PatchCard(card.message_id, pointer_card(name, when), supersede=True))
            continue
        build = registry.card_views.get(card.view)
        if build is None:
            continue
        if card.view not in drawn:
            drawn[card.view] = build(ctx, case)
        now_shows = drawn[card.view]
        if now_shows is not None and outbox.card_digest(now_shows) != card.digest:
            ops.append(outbox.PatchCard(card.message_id, now_shows))
    return ops


def sync_renderer(registry: Router, tz_of: Callable[[Case], ZoneInfo]) -> outbox.Renderer:
    """The outbox renderer of SYNC_KIND rows, over the composed Router's card views."""
    def render(session: Session, row: Outbox, now: datetime, _context: object) -> list[outbox.Op] | None:
        case = session.scalar(select(Case).where(Case.id == row.case_id, Case.tenant_key == row.tenant_key,
                                                 Case.chat_id == row.chat_id))
        if case is None:
            return None
        ctx = Ctx(session=session, now=now, tz=tz_of(case), tenant_key=case.tenant_key, chat_id=case.chat_id,
                  actor="", event_id=f"sync-{row.id}", registry=registry)
        return sync_ops(ctx, case) or None
    return render


def announce_step(ctx: Ctx, case: Case, _done_step: int) -> None:
    """A step finished: the card for the new step says so at its top (one message, not two) and
    the previous case cards shrink to a pointer to it."""
    post(ctx, case)
