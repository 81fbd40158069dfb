"""The lead's on/off button of a Feishu sync on the case card, and the hook step modules call after
a change (`touch`): the same wiring for 飞书任务 (handlers.feishu_tasks) and the 多维表格 board
(handlers.feishu_board), told apart by their SyncFeature, action names and texts.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot import outbox, sync_common
from bot.actions import ActionValue
from bot.domain import CaseStatus
from bot.envelope import CardAction
from bot.models import Case
from bot.routing import CallbackAnswer, CaseButtonSpec, Ctx, Router, UserError
from bot.sync_common import SyncFeature, SyncRow
from bot.workflow import Step
from handlers import case_card
from handlers.common import audit, load_active_case, not_lead

OFFERED_IN = (Step.PLAN, Step.EXECUTION)


@dataclass(frozen=True)
class ToggleTexts:
    """What the button and its answers say (all from bot.texts)."""

    button_on: str
    button_off: str
    not_offered: str          # pressed outside the plan and execution steps, or with the sync off
    already_on: str
    already_off: str
    on: str                   # turned on before step 5: it starts when the plan is published
    on_now: str               # turned on in step 5: syncing now
    off: str
    audit_on: str
    audit_off: str


class CaseSyncToggle:
    """Registers the button and its two actions on `router`; `audit_code` names the audit actions
    ("<code>.on" / "<code>.off")."""

    def __init__(self, router: Router, feature: SyncFeature, *, on_action: str, off_action: str,
                 audit_code: str, says: ToggleTexts) -> None:
        self.feature, self.on_action, self.off_action = feature, on_action, off_action
        self.audit_code, self.says = audit_code, says
        router.case_extras.append(self.buttons)
        router.action(on_action)(self.turn_on)
        router.action(off_action)(self.turn_off)

    def mode(self, ctx: Ctx) -> str:
        return getattr(ctx.registry, self.feature.setting) if ctx.registry is not None else "off"

    def row_of(self, ctx: Ctx, case: Case) -> SyncRow | None:
        return sync_common.case_row(ctx.session, self.feature, case)

    def is_on(self, ctx: Ctx, case: Case) -> bool:
        mode = self.mode(ctx)
        return mode != "off" and sync_common.is_on(mode, self.row_of(ctx, case))

    def touch(self, ctx: Ctx, case: Case) -> None:
        """After a change the sync carries: bring Feishu in line (queued with the change)."""
        if case.step < Step.EXECUTION or self.mode(ctx) == "off":
            return
        row = self.row_of(ctx, case)
        if row is None and self.mode(ctx) == "default":
            row = self._set(ctx, case, True)
        if row is not None and row.enabled and not row.problem:
            ctx.send(outbox.SyncFeishu(self.feature.target, case.id))

    def _set(self, ctx: Ctx, case: Case, on: bool) -> SyncRow:
        return sync_common.set_on(ctx.session, self.feature, case, on, ctx.actor, ctx.now)

    def buttons(self, ctx: Ctx, case: Case) -> tuple[CaseButtonSpec, ...]:
        if self.mode(ctx) == "off" or case.step not in OFFERED_IN or case.status != CaseStatus.ACTIVE:
            return ()
        if self.is_on(ctx, case):
            return ((self.says.button_off, self.off_action, False),)
        return ((self.says.button_on, self.on_action, False),)

    def toggle(self, ctx: Ctx, value: ActionValue, on: bool) -> CallbackAnswer:
        case = load_active_case(ctx, value.case_id)
        if ctx.actor != case.lead_open_id:
            raise not_lead(ctx, case)
        if self.mode(ctx) == "off" or case.step not in OFFERED_IN:
            raise UserError(self.says.not_offered, kind="info")
        if self.is_on(ctx, case) == on:
            return CallbackAnswer(toast=self.says.already_on if on else self.says.already_off, toast_type="info",
                                  card=case_card.build(ctx, case))
        self._set(ctx, case, on)
        audit(ctx, case, f"{self.audit_code}.{'on' if on else 'off'}",
              self.says.audit_on if on else self.says.audit_off)
        toast = self.says.off
        if on:
            toast = self.says.on_now if case.step >= Step.EXECUTION else self.says.on
            self.touch(ctx, case)
        return CallbackAnswer(toast=toast, card=case_card.build(ctx, case))

    def turn_on(self, ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
        return self.toggle(ctx, value, True)

    def turn_off(self, ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
        return self.toggle(ctx, value, False)
