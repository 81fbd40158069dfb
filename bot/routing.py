"""Routes: slash commands, card actions and events to handler functions.

Handlers are plain synchronous functions (database work and pure card builds only — no
network); what they want sent is recorded as outbox operations on the context and goes out
after the transaction commits. Card-action handlers return a CallbackAnswer that is sent back
inline in the HTTP response (Feishu's 3-second window).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.envelope import CardAction, MessageEvent
from bot.outbox import Bundle, Op, Renderer
from bot.workflow import Effect, Step


class UserError(Exception):
    """A clear answer for the user (a toast or a short message); nothing is changed."""

    def __init__(self, message: str, *, card: dict[str, Any] | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.message, self.card, self.kind = message, card, kind


class CaseArchived(UserError):
    """The case a click acts on is archived: dispatch answers with the content the button belongs
    to, read-only (Router.read_only), and only falls back to this refusal when there is none."""


@dataclass
class Ctx:
    """What a handler may use: this event's transaction, the time, who acts, where, and a
    place to put outbound sends. No globals, no network."""

    session: Session
    now: datetime
    tz: ZoneInfo
    tenant_key: str
    chat_id: str
    actor: str               # the operator's / sender's open_id (the only identity we trust)
    event_id: str
    bot_open_id: str = ""
    ops: list[Op] = field(default_factory=list)
    registry: "Router | None" = None   # the composed Router: effects, case-card parts, exporters
    # whether the handler changed anything in the database so far (unknown: assume it did)
    wrote: Callable[[], bool] = lambda: True

    def send(self, op: Op) -> None:
        self.ops.append(op)


@dataclass(frozen=True)
class CallbackAnswer:
    toast: str | None = None
    toast_type: str = "success"   # info | success | warning | error
    card: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.toast:
            out["toast"] = {"type": self.toast_type, "content": self.toast}
        if self.card is not None:
            out["card"] = {"type": "raw", "data": self.card}
        return out


@dataclass(frozen=True)
class Versioned:
    """What a button acts on, for the one stale-click check (bot.dispatch): the version the card
    showed must still be current, else the clicker gets the current card and nothing happens.
    Buttons that only open a form or show something need none: they never act on what they showed."""

    step: Step                                    # checked while the case is in this step; after
    #                                               it, the handler says what became of it
    current: Callable[[Session, Any, Any], int]   # (session, case, ActionValue) -> the version now
    card: Callable[[Ctx, Any, Any], dict]         # (ctx, case, ActionValue) -> the current card


CommandHandler = Callable[[Ctx, MessageEvent, str], None]
ActionHandler = Callable[[Ctx, CardAction, Any], CallbackAnswer]
EventHandler = Callable[[Ctx, Any], None]
EffectHandler = Callable[[Ctx, Any, Step], None]   # (ctx, case, the step it left)
CaseButtonSpec = tuple[str, str, bool]              # (label, action name, primary)


OutputCard = Callable[[Ctx, Any, datetime], "dict[str, Any] | None"]   # (ctx, case, as of) -> the step's output


class Router:
    def __init__(self, step: Step | None = None) -> None:
        self.step = step   # a step module's Router: the step its actions belong to
        self.commands: dict[str, CommandHandler] = {}
        self.actions: dict[str, ActionHandler] = {}
        self.action_steps: dict[str, Step] = {}   # action -> the step whose module registered it
        self.events: dict[str, EventHandler] = {}
        self.effects: dict[Effect, EffectHandler] = {}   # on-enter work of the state machine
        # what the live case card shows in each step, and how /导出 writes each step's output
        self.case_buttons: dict[Step, tuple[CaseButtonSpec, ...]] = {}
        self.case_summaries: dict[Step, Callable[[Ctx, Any], str]] = {}
        self.case_states: dict[Step, Callable[[Ctx, Any], str]] = {}
        self.exporters: dict[Step, Callable[..., "str | None"]] = {}
        self.output_cards: dict[Step, OutputCard] = {}   # each step's output as its card (archived cases)
        self.renderers: dict[str, Renderer] = {}   # outbox row kind -> what to send at delivery
        self.versioned: dict[str, Versioned] = {}  # action -> the version its button must carry
        self.policy: Any = None   # the reminder policy from the settings, set by the composition root
        # (ctx, ActionValue) -> the read-only card shown for a click on an archived case's card
        self.read_only: Callable[[Ctx, Any], "dict[str, Any] | None"] | None = None
        # extra case-card buttons that depend on the case, not only its step (飞书任务 sync on/off)
        self.case_extras: list[Callable[[Ctx, Any], tuple[CaseButtonSpec, ...]]] = []
        self.feishu_tasks: str = "off"   # settings.feishu_tasks, set by the composition root
        self.feishu_board: str = "off"   # settings.feishu_board, likewise
        # posted card view name -> (ctx, case) -> the card it should show now (kept true by sync)
        self.card_views: dict[str, Callable[[Ctx, Any], dict[str, Any] | None]] = {}
        # every card action's answer passes here (private forms end as a line; shared cards sync)
        self.answer_hook: Callable[[Ctx, CardAction, CallbackAnswer], CallbackAnswer] | None = None
        self.bundle: Bundle | None = None   # reminders due together for a group: one message
        # clicks to rehearse at a start, in transactions rolled back (Dispatcher.rehearse)
        self.rehearsals: list[Callable[[Session], list[CardAction]]] = []

    def command(self, *names: str) -> Callable[[CommandHandler], CommandHandler]:
        def deco(fn: CommandHandler) -> CommandHandler:
            for name in names:
                if name in self.commands:
                    raise ValueError(f"command {name} registered twice")
                self.commands[name] = fn
            return fn
        return deco

    def action(self, *names: str, versioned: Versioned | None = None
               ) -> Callable[[ActionHandler], ActionHandler]:
        def deco(fn: ActionHandler) -> ActionHandler:
            for name in names:
                if name in self.actions:
                    raise ValueError(f"action {name} registered twice")
                self.actions[name] = fn
                if self.step is not None:
                    self.action_steps[name] = self.step
                if versioned is not None:
                    self.versioned[name] = versioned
            return fn
        return deco

    def event(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        def deco(fn: EventHandler) -> EventHandler:
            self.events[event_type] = fn
            return fn
        return deco

    def effect(self, effect: Effect) -> Callable[[EffectHandler], EffectHandler]:
        def deco(fn: EffectHandler) -> EffectHandler:
            if effect in self.effects:
                raise ValueError(f"effect {effect} registered twice")
            self.effects[effect] = fn
            return fn
        return deco

    def buttons(self, step: Step, *buttons: CaseButtonSpec) -> None:
        """The case card's buttons while the case is in `step`: (label, action name, primary)."""
        self.case_buttons[step] = buttons

    def summary(self, step: Step) -> Callable[[Callable[[Ctx, Any], str]], Callable[[Ctx, Any], str]]:
        return self._register(self.case_summaries, step)

    def state(self, step: Step) -> Callable[[Callable[[Ctx, Any], str]], Callable[[Ctx, Any], str]]:
        return self._register(self.case_states, step)

    def card_view(self, name: str) -> Callable[[Callable[[Ctx, Any], dict[str, Any] | None]],
                                               Callable[[Ctx, Any], dict[str, Any] | None]]:
        """How a posted card of `name` is drawn from the current state (cards.md principle 10);
        None: leave the card as it is for now."""
        return self._register(self.card_views, name)

    def renderer(self, kind: str) -> Callable[[Renderer], Renderer]:
        return self._register(self.renderers, kind)

    def exporter(self, step: Step) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._register(self.exporters, step)

    def output_card(self, step: Step) -> Callable[[OutputCard], OutputCard]:
        """How `step`'s output (《问题共识表》 … 《复盘总结报告》) is drawn as a card; None: the case has none."""
        return self._register(self.output_cards, step)

    def read_only_view(self, fn: Callable[[Ctx, Any], "dict[str, Any] | None"]
                       ) -> Callable[[Ctx, Any], "dict[str, Any] | None"]:
        if self.read_only is not None:
            raise ValueError("read-only view registered twice")
        self.read_only = fn
        return fn

    @staticmethod
    def _register(table: dict, key: Any) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            if key in table:
                raise ValueError(f"{key} registered twice")
            table[key] = fn
            return fn
        return deco

    def include(self, other: "Router") -> None:
        tables: tuple[tuple[dict[Any, Any], dict[Any, Any]], ...] = (
            (self.commands, other.commands), (self.actions, other.actions),
            (self.events, other.events), (self.effects, other.effects),
            (self.case_buttons, other.case_buttons), (self.case_summaries, other.case_summaries),
            (self.case_states, other.case_states), (self.exporters, other.exporters),
            (self.renderers, other.renderers), (self.versioned, other.versioned),
            (self.card_views, other.card_views), (self.action_steps, other.action_steps),
            (self.output_cards, other.output_cards))
        for table, theirs in tables:
            for key, fn in theirs.items():
                if key in table:
                    raise ValueError(f"{key} registered twice")
                table[key] = fn
        if other.read_only is not None:
            self.read_only_view(other.read_only)
        self.case_extras.extend(other.case_extras)
        self.rehearsals.extend(other.rehearsals)


def split_command(text: str) -> tuple[str, str] | None:
    """'/问题 新品推广页面延迟' -> ('/问题', '新品推广页面延迟'); chatter -> None."""
    stripped = text.strip()
    # Mentions were turned into "@名字"; a command may follow them ("@协作助手 /问题 …").
    while stripped.startswith("@"):
        parts = stripped.split(maxsplit=1)
        stripped = parts[1] if len(parts) > 1 else ""
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, rest = stripped.partition(" ")
    return head.lower() if head.isascii() else head, rest.strip()
