"""Builds the live case card from the database and keeps it current.

Step modules register the buttons and summary their step needs on their Router
(`router.buttons(step, …)`, `@router.summary(step)`) and call `refresh(ctx, case)` after any
change: the live card is patched in place (cards.md: one live card per case); `post(ctx, case)`
sends it anew (`/进度`, step changes)."""
from __future__ import annotations

from sqlalchemy import select

from bot import outbox, repository, texts
from bot.actions import ActionValue
from bot.models import Case, StepLog
from bot.routing import Ctx
from bot.workflow import Gap, Step, missing
from cards.case import CaseButton, CaseView, case_card


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
    return CaseView(case_id=case.id, seq=case.seq, title=case.title, step=step, lead_open_id=case.lead_open_id,
                    missing=gaps, buttons=buttons, state=state, extra_markdown=summary, status=case.status,
                    done=_done_steps(ctx, case) if step >= Step.CLOSED else None)


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
    """Send the case card as a new message and make it the live one."""
    ctx.send(outbox.SendCard(build(ctx, case), bind_case_card=case.id))


def refresh(ctx: Ctx, case: Case) -> None:
    """Patch the live card in place (or post one if the group has none yet)."""
    if case.card_message_id:
        ctx.send(outbox.PatchCard(case.card_message_id, build(ctx, case)))
    else:
        post(ctx, case)


def announce_step(ctx: Ctx, case: Case, done_step: int) -> None:
    """A step finished: say so in the group and post the card for the new step."""
    ctx.send(outbox.SendText(texts.STEP_ENTERED.format(done=texts.OUTPUTS.get(done_step, ""), step=case.step,
                                                       name=texts.STEP_NAMES[case.step])))
    post(ctx, case)
