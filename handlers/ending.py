"""Ending a case before its six steps are done, so a group is never stuck with one: the lead
cancels it (`/取消 原因`, opened by mistake, no longer needed) or closes it early (`/结案 原因`,
solved another way), from any step, or from the case card's 「结束问题」 (a private form with the
reason and a confirmation dialog). While step 1 is unsigned the opener may end it too. Both are
audited, stop every reminder of the case (the state machine's STOP_REMINDERS), archive it
read-only and free the group for the next `/问题`."""
from __future__ import annotations

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.domain import CaseStatus, SignoffStatus
from bot.envelope import CardAction, MessageEvent
from bot.models import Case
from bot.routing import CallbackAnswer, CaseButtonSpec, Ctx, Router, UserError
from bot.workflow import Cancel, CloseEarly, NotAllowed, Step
from cards.case import EndView, end_card
from handlers import people
from handlers.case_card import result_line
from handlers.common import first_too_long, form_text, inert, load_case, open_form, transition

router = Router()

REASON_LIMIT = 500
END_OPEN = "case.end_open"      # the case card's 「结束问题」: the lead's private form
END_CONFIRM = "case.end"        # its submit: cancel or close early, with the reason


def may_end(ctx: Ctx, case: Case) -> bool:
    """The lead; or, while nobody has signed step 1 yet, whoever opened the case."""
    if ctx.actor == case.lead_open_id:
        return True
    if case.step != Step.CONSENSUS or ctx.actor != case.opener_open_id:
        return False
    cv = repository.current_consensus(ctx.session, case)
    signed = repository.signoffs(ctx.session, case, artifact="consensus", version=cv.version) if cv else {}
    return not any(s.status == SignoffStatus.SIGNED for s in signed.values())


def _refuse_not_allowed(ctx: Ctx, case: Case) -> UserError:
    return UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))


def end(ctx: Ctx, case: Case, command: Cancel | CloseEarly) -> None:
    """Cancel or close `case` with the command's reason (checked by the caller), announced in the group."""
    announcement = texts.CASE_CANCELLED if isinstance(command, Cancel) else texts.CASE_CLOSED_EARLY
    transition(ctx, case, command, actor_is_lead=True, say=lambda _outcome: outbox.SendText(announcement.format(
        title=inert(case.title), seq=case.seq, reason=inert(command.reason))))


def _require_case(ctx: Ctx) -> Case:
    case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if case is None:
        raise UserError(texts.NO_ACTIVE_CASE)
    return case


def _by_command(ctx: Ctx, command: Cancel | CloseEarly, usage: str) -> None:
    case = _require_case(ctx)
    if not may_end(ctx, case):
        raise _refuse_not_allowed(ctx, case)
    if not command.reason:
        raise UserError(usage)
    if problem := first_too_long({"reason": command.reason}, {"reason": (texts.FIELD_END_REASON, REASON_LIMIT)}):
        raise UserError(problem)
    try:
        end(ctx, case, command)
    except NotAllowed as exc:   # a case already at its end (cannot happen for the active case)
        raise UserError(usage) from exc


@router.command(texts.CMD_CANCEL)
def cancel_case(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    _by_command(ctx, Cancel(args.strip()), texts.CANCEL_USAGE)


@router.command(texts.CMD_CLOSE)
def close_case(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    _by_command(ctx, CloseEarly(args.strip()), texts.CLOSE_USAGE)


# ---------------------------------------------------------------- the case card's 「结束问题」
def _buttons(_ctx: Ctx, case: Case) -> tuple[CaseButtonSpec, ...]:
    if case.status != CaseStatus.ACTIVE or not Step.CONSENSUS <= case.step < Step.CLOSED:
        return ()
    return ((texts.BTN_END_CASE, END_OPEN, False),)


router.case_extras.append(_buttons)


def _form(case: Case, reason: str = "", how: str | None = None) -> dict:
    return end_card(EndView(title=case.title, submit=ActionValue(END_CONFIRM, case_id=case.id), typed_reason=reason,
                            typed_how=how, reason_limit=REASON_LIMIT))


@router.action(END_OPEN)
def open_end_form(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.status != CaseStatus.ACTIVE:
        return CallbackAnswer(toast=texts.END_ALREADY, toast_type="info")
    if not may_end(ctx, case):
        raise _refuse_not_allowed(ctx, case)
    return open_form(ctx, event, _form(case), case)


@router.action(END_CONFIRM)
def confirm_end(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.status != CaseStatus.ACTIVE:    # someone ended it first, or a second click
        return CallbackAnswer(toast=texts.END_ALREADY, toast_type="info", card=result_line(texts.END_ALREADY))
    if not may_end(ctx, case):
        raise _refuse_not_allowed(ctx, case)
    form = event.form_value or {}
    reason, how = form_text(form, "reason"), form_text(form, "how")
    if how not in texts.END_HOW:
        raise UserError(texts.END_NEED_HOW, card=_form(case, reason))
    if not reason:
        raise UserError(texts.END_NEED_REASON, card=_form(case, how=how))
    if problem := first_too_long({"reason": reason}, {"reason": (texts.FIELD_END_REASON, REASON_LIMIT)}):
        raise UserError(problem, card=_form(case, reason, how))
    cancel = how == "cancel"
    end(ctx, case, Cancel(reason) if cancel else CloseEarly(reason))
    done = (texts.END_DONE_CANCELLED if cancel else texts.END_DONE_CLOSED).format(title=case.title)
    return CallbackAnswer(toast=done, card=result_line(done))

