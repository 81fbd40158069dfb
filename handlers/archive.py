"""Archived cases stay readable: `/进度 #N` shows any case of the group (`/进度` the active one), and a click on an
archived case's old card (a form, a 签字 button, a 站会 reply) shows what that button was about,
read-only, instead of refusing. Every read-only view carries buttons to the case's other contents.

The step a button belongs to is the step of the module whose Router registered its action, and each
step's output is drawn by the card its module registered (`Router.action_steps`, `Router.output_cards`)."""
from __future__ import annotations

from sqlalchemy import select

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus
from bot.envelope import CardAction, MessageEvent
from bot.ids import number
from bot.models import Case, StepLog
from bot.routing import CallbackAnswer, Ctx, Router, UserError
from cards.general import ArchiveNav, archived_copy
from handlers import case_card
from handlers.pick import case_by_seq

router = Router()

ARCHIVE_VIEW = "archive.view"   # extra {"s": step}: that step's output; none: the case card


def _output_card(ctx: Ctx, case: Case, step: int, outputs: tuple[int, ...]) -> dict | None:
    """`step`'s output as its own card builds it, or None if the case has none."""
    draw = ctx.registry.output_cards.get(step) if ctx.registry is not None and step in outputs else None
    return draw(ctx, case, case.closed_at or ctx.now) if draw is not None else None


def _outputs(ctx: Ctx, case: Case) -> tuple[int, ...]:
    """The steps the case reached that have an output (a case cancelled in step 2 has two)."""
    reached = set(ctx.session.scalars(select(StepLog.step).where(StepLog.case_id == case.id,
                                                                 StepLog.tenant_key == case.tenant_key)))
    exporters = ctx.registry.exporters if ctx.registry is not None else {}
    return tuple(step for step, fn in sorted(exporters.items())
                 if step in reached and fn(ctx.session, case, ctx.tz) is not None)


def archived_card(ctx: Ctx, case: Case, step: int = 0) -> dict:
    """The archived case's `step` output (0 or none: its case card), read-only, with the way to the rest."""
    outputs = _outputs(ctx, case)
    shown = _output_card(ctx, case, step, outputs) if step else None
    nav = ArchiveNav(case=ActionValue(ARCHIVE_VIEW, case_id=case.id),
                     outputs=tuple((s, ActionValue(ARCHIVE_VIEW, case_id=case.id, extra={"s": str(s)}))
                                   for s in outputs),
                     showing=step if shown is not None else 0)
    return archived_copy(shown if shown is not None else case_card.build(ctx, case), case.seq, nav)


@router.read_only_view
def read_only(ctx: Ctx, value: ActionValue) -> dict | None:
    """For dispatch: a refused click on an archived case's card shows that step's content."""
    case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                               case_id=value.case_id or 0)
    if case is None or case.status == CaseStatus.ACTIVE:
        return None
    steps = ctx.registry.action_steps if ctx.registry is not None else {}
    return archived_card(ctx, case, steps.get(value.action, 0))


@router.action(ARCHIVE_VIEW)
def show(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                               case_id=value.case_id or 0)
    if case is None:
        raise UserError(texts.CASE_NOT_FOUND)
    if case.status == CaseStatus.ACTIVE:  # never offered on a live case; its live card is the truth
        return CallbackAnswer(card=case_card.build(ctx, case))
    step = str((value.extra or {}).get("s") or "0")
    return CallbackAnswer(card=archived_card(ctx, case, number(step) or 0))


@router.command(texts.CMD_PROGRESS)
def progress(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    """`/进度`: the active case's card; `/进度 #N`: any case of the group, an archived one read-only."""
    if not args.strip():
        case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
        if case is None:
            raise UserError(texts.NO_ACTIVE_CASE)
    elif (case := case_by_seq(ctx, args)) is None:
        raise UserError(texts.PROGRESS_USAGE)
    if case.status == CaseStatus.ACTIVE:
        case_card.post(ctx, case)
    else:
        ctx.send(outbox.SendCard(archived_card(ctx, case)))
