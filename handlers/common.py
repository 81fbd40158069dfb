"""What every step's handlers share: the one way a case changes step (`transition`), and the
small checks and records around it."""
from __future__ import annotations

from bot import repository, workflow
from bot.models import Case
from bot.routing import Ctx
from bot.workflow import Blocked, Check, Command, Effect, Outcome, SendBack, Step
from handlers import case_card
from handlers.case_card import gap_labels

__all__ = ["transition", "gap_labels"]


def transition(ctx: Ctx, case: Case, command: Command, *, reason: str | None = None) -> Outcome | None:
    """Hand `command` to the state machine; record the step change and carry out its effects.

    A `Check` whose guard does not hold yet returns None; any other refusal raises the
    workflow's Blocked or NotAllowed for the caller to word for the person who clicked."""
    ctx.session.flush()
    before = Step(case.step)
    try:
        outcome = workflow.apply(before, command, repository.facts(ctx.session, case),
                                 actor_is_lead=ctx.actor == case.lead_open_id)
    except Blocked:
        if isinstance(command, Check):
            return None
        raise
    back = isinstance(command, SendBack)
    note = command.reason.strip() if back else reason
    repository.enter_step(ctx.session, case, outcome.step, now=ctx.now, reason=note)
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action="step.back" if back else "step.enter",
                     detail=f"→ {int(outcome.step)}：{note}" if back else f"{int(before)} → {int(outcome.step)}",
                     now=ctx.now)
    for effect in outcome.effects:
        _run(ctx, case, effect, before)
    return outcome


def _run(ctx: Ctx, case: Case, effect: Effect, before: Step) -> None:
    if effect is Effect.ANNOUNCE_STEP:
        case_card.announce_step(ctx, case, before)
    elif effect is Effect.POST_CASE_CARD:
        case_card.post(ctx, case)
    elif effect is Effect.REFRESH_CASE_CARD:
        case_card.refresh(ctx, case)
    else:  # effects owned by a step module, registered on its Router
        ctx.effects[effect](ctx, case, before)
