"""Help, welcome, the case card on demand, the audit log, the case list and sending back
(cancelling and closing early: handlers.ending)."""
from __future__ import annotations

from datetime import timedelta

from bot import outbox, repository, texts
from bot.envelope import BotAddedEvent, BotRemovedEvent, MessageEvent
from bot.ids import number
from bot.routing import Ctx, Router, UserError
from bot.workflow import NotAllowed, SendBack, Step
from cards.general import CaseRow, LogLine, audit_card, cases_card, help_card, welcome_card
from handlers.common import too_long, transition

router = Router()


def require_case(ctx: Ctx):
    case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if case is None:
        raise UserError(texts.NO_ACTIVE_CASE)
    return case


@router.command(*texts.CMD_HELP)
def show_help(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    ctx.send(outbox.SendCard(help_card()))


HINT_EVERY = timedelta(hours=1)


@router.event("bot.addressed")
def addressed(ctx: Ctx, event: MessageEvent) -> None:
    """Once per person per group per hour, behind real replies: sent for every bare @mention,
    the hint was more than half of everything the bot sent."""
    hint = texts.ADDRESSED_HINT if event.chat_type == "group" else texts.P2P_HINT
    outbox.enqueue_throttled(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, kind="hint",
                             who=ctx.actor, now=ctx.now, every=HINT_EVERY, op=outbox.SendText(hint))


@router.event("im.chat.member.bot.added_v1")
def bot_added(ctx: Ctx, event: BotAddedEvent) -> None:
    repository.ensure_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, now=ctx.now,
                           name=event.chat_name)
    ctx.send(outbox.SendCard(welcome_card()))
    ctx.send(outbox.SyncMembers())


@router.event("im.chat.member.bot.deleted_v1")
def bot_removed(ctx: Ctx, _event: BotRemovedEvent) -> None:
    chat = repository.ensure_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, now=ctx.now)
    chat.active = False


@router.command(texts.CMD_LOG)
def audit_log(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    case = require_case(ctx)
    entries = repository.audit_entries(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                                       case_id=case.id)
    lines = [LogLine(at=e.at.astimezone(ctx.tz), actor_open_id=e.actor_open_id, action=e.action, detail=e.detail)
             for e in entries]
    ctx.send(outbox.SendCard(audit_card(case.title, lines)))


@router.command(texts.CMD_CASES)
def list_cases(ctx: Ctx, _event: MessageEvent, _args: str) -> None:
    rows = [CaseRow(seq=c.seq, title=c.title, step=c.step, status=c.status, lead_open_id=c.lead_open_id)
            for c in repository.cases_of_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)]
    ctx.send(outbox.SendCard(cases_card(rows)))


BACK_REASON_LIMIT = 500   # as every other reason the lead gives


@router.command(texts.CMD_BACK)
def go_back(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    case = require_case(ctx)
    target, _, reason = args.partition(" ")
    step = number(target) if len(target) <= 2 else None
    if step is None:
        raise UserError(texts.BACK_USAGE)
    if case.step == Step.CONSENSUS:
        raise UserError(texts.BACK_NOTHING_EARLIER)
    if problem := too_long(reason.strip(), texts.FIELD_BACK_REASON, BACK_REASON_LIMIT):
        raise UserError(problem)
    try:
        transition(ctx, case, SendBack(step, reason), say=lambda outcome: outbox.SendText(
            texts.BACK_DONE.format(step=texts.STEP_NAMES[outcome.step], reason=reason.strip())))
    except NotAllowed as exc:
        if ctx.actor != case.lead_open_id:
            raise UserError(texts.NOT_LEAD) from exc
        if not reason.strip():
            raise UserError(texts.BACK_USAGE) from exc
        raise UserError(texts.BACK_BAD_STEP.format(max=case.step - 1)) from exc
