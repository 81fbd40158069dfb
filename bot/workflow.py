"""THE six-step state machine. Pure: the current step, a command and the facts in; the next step
and its on-enter effects out, or the reason the command is refused. Nothing else in the product
writes a case's step: handlers build a command and hand it to `handlers.common.transition`,
which calls `apply` and carries out the effects.

    1 问题共识 ──Check(every head signed the current version)──────────▶ 2 组建小组
    2 组建小组 ──ConfirmTeam(every department has a 接口人)────────────▶ 3 需求确认
    3 需求确认 ──Check(inputs in, conflicts decided, all confirmed)────▶ 4 行动方案
    4 行动方案 ──Publish(the plan has tasks)───────────────────────────▶ 5 执行跟踪
    5 执行跟踪 ──Check(every task done)────────────────────────────────▶ 6 复盘
    5 执行跟踪 ──CloseExecution(the lead, with a reason)───────────────▶ 6 复盘
    6 复盘 ──────Finalise(the report has entries)──────────────────────▶ 7 已结案
    2–6 ───────SendBack(the lead, a reason, an earlier step)───────────▶ 1–5
    1–6 ───────Cancel(the lead, a reason: the case is dropped)─────────▶ 7 已结案
    1–6 ───────CloseEarly(the lead, a reason: ended before step 6)─────▶ 7 已结案
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum


class Step(IntEnum):
    CONSENSUS = 1
    TEAM = 2
    REQUIREMENTS = 3
    PLAN = 4
    EXECUTION = 5
    RETRO = 6
    CLOSED = 7


# ---------------------------------------------------------------- commands
@dataclass(frozen=True)
class Open:
    """`/问题`: a new case enters step 1."""


@dataclass(frozen=True)
class Check:
    """Something the step's guard looks at changed (a signature, a confirmation, a task done):
    move on if the guard now holds, else stay (never an error)."""


@dataclass(frozen=True)
class ConfirmTeam:
    """The lead confirms 《协作小组分工表》."""


@dataclass(frozen=True)
class Publish:
    """The lead publishes 《跨部门协作行动方案》 as baseline version 1."""


@dataclass(frozen=True)
class CloseExecution:
    """The lead ends step 5 before every task is done."""

    reason: str


@dataclass(frozen=True)
class Finalise:
    """The lead finalises 《复盘总结报告》: the case is archived."""


@dataclass(frozen=True)
class SendBack:
    """The lead sends the case back to an earlier step."""

    target: int
    reason: str


@dataclass(frozen=True)
class Cancel:
    """The lead drops the case (opened by mistake, no longer needed): archived as cancelled."""

    reason: str


@dataclass(frozen=True)
class CloseEarly:
    """The lead ends the case before the retrospective (solved another way, merged, …)."""

    reason: str


Command = Open | Check | ConfirmTeam | Publish | CloseExecution | Finalise | SendBack | Cancel | CloseEarly


# ---------------------------------------------------------------- facts and gaps
@dataclass(frozen=True)
class Facts:
    """What the guards look at, computed from the database once per request (repository.facts)."""

    consensus_submitted: bool = True                # step 1: the first version of the table exists
    unsigned_departments: tuple[str, ...] = ()      # step 1: heads who have not signed the current version
    objections: tuple[str, ...] = ()                # step 1: departments objecting to the current version
    departments_without_contact: tuple[str, ...] = ()  # step 2
    inputs_missing: tuple[str, ...] = ()            # step 3: departments that have not submitted
    unresolved_conflicts: tuple[str, ...] = ()      # step 3
    unconfirmed_departments: tuple[str, ...] = ()   # step 3
    requirements_count: int = 0
    task_count: int = 0                             # step 4
    open_tasks: tuple[str, ...] = ()                # step 5
    retro_entry_count: int = 0                      # step 6


class GapKind(Enum):
    """What stands between a step and the next; labels live in bot.texts (GAP_LABELS)."""

    SUBMIT_CONSENSUS = "submit_consensus"
    OBJECTION = "objection"
    HEAD_SIGN = "head_sign"
    CONTACT = "contact"
    TEAM_CONFIRM = "team_confirm"
    INPUT = "input"
    REQUIREMENT = "requirement"
    CONFLICT = "conflict"
    CONFIRM_REQUIREMENTS = "confirm_requirements"
    ADD_TASK = "add_task"
    PUBLISH_PLAN = "publish_plan"
    TASK_OPEN = "task_open"
    RETRO_ENTRY = "retro_entry"
    FINALISE = "finalise"


@dataclass(frozen=True)
class Gap:
    kind: GapKind
    subject: str = ""   # the department, conflict or task it is about, if any


def _each(kind: GapKind, subjects: tuple[str, ...]) -> tuple[Gap, ...]:
    return tuple(Gap(kind, s) for s in subjects)


def _consensus_gaps(f: Facts) -> tuple[Gap, ...]:
    if not f.consensus_submitted:
        return (Gap(GapKind.SUBMIT_CONSENSUS),)
    return _each(GapKind.OBJECTION, f.objections) + _each(GapKind.HEAD_SIGN, f.unsigned_departments)


def _contact_gaps(f: Facts) -> tuple[Gap, ...]:
    return _each(GapKind.CONTACT, f.departments_without_contact)


def _requirements_gaps(f: Facts) -> tuple[Gap, ...]:
    out = _each(GapKind.INPUT, f.inputs_missing)
    if not f.requirements_count and not out:
        out += (Gap(GapKind.REQUIREMENT),)
    out += _each(GapKind.CONFLICT, f.unresolved_conflicts)
    if not out:
        out += _each(GapKind.CONFIRM_REQUIREMENTS, f.unconfirmed_departments)
    return out


def _plan_gaps(f: Facts) -> tuple[Gap, ...]:
    return () if f.task_count else (Gap(GapKind.ADD_TASK),)


def _tasks_gaps(f: Facts) -> tuple[Gap, ...]:
    return _each(GapKind.TASK_OPEN, f.open_tasks)


def _retro_gaps(f: Facts) -> tuple[Gap, ...]:
    return () if f.retro_entry_count else (Gap(GapKind.RETRO_ENTRY),)


# What the case card lists as missing in each step: the guard's gaps, then the decision that
# only a person can take (confirm, publish, finalise).
_DECISION = {Step.TEAM: GapKind.TEAM_CONFIRM, Step.PLAN: GapKind.PUBLISH_PLAN, Step.RETRO: GapKind.FINALISE}
_STEP_GAPS = {Step.CONSENSUS: _consensus_gaps, Step.TEAM: _contact_gaps, Step.REQUIREMENTS: _requirements_gaps,
              Step.PLAN: _plan_gaps, Step.EXECUTION: _tasks_gaps, Step.RETRO: _retro_gaps}


def missing(step: Step, f: Facts) -> tuple[Gap, ...]:
    """What stands between this step and the next, as codes (the case card renders them)."""
    if step not in _STEP_GAPS:
        return ()
    gaps = _STEP_GAPS[step](f)
    decision = _DECISION.get(step)
    return gaps if gaps or decision is None else (Gap(decision),)


# ---------------------------------------------------------------- effects and the table
class Effect(Enum):
    """Work that entering a step brings with it, carried out by handlers.common.transition."""

    ANNOUNCE_STEP = "announce_step"          # the live case card moves on; one line says so
    PREFILL_TEAM = "prefill_team"            # a case from an SOP template gets its roles
    PLAN_INPUT_NUDGE = "plan_input_nudge"    # 接口人 who have not submitted are nudged once
    POST_CASE_CARD = "post_case_card"        # after a send-back: the case card again
    REFRESH_CASE_CARD = "refresh_case_card"  # the case is archived: the live card shows it
    STOP_REMINDERS = "stop_reminders"        # nothing of an archived case is sent any more


@dataclass(frozen=True)
class Edge:
    source: Step
    command: type
    target: Step | None          # None: the command names it (SendBack)
    guard: object = None         # Facts -> tuple[Gap, ...]; None: always


FORWARD_EFFECTS = (Effect.ANNOUNCE_STEP,)
OPEN_STEPS = (Step.CONSENSUS, Step.TEAM, Step.REQUIREMENTS, Step.PLAN, Step.EXECUTION, Step.RETRO)
ON_ENTER: dict[Step, tuple[Effect, ...]] = {
    Step.TEAM: (Effect.PREFILL_TEAM,) + FORWARD_EFFECTS,
    Step.REQUIREMENTS: (Effect.PLAN_INPUT_NUDGE,) + FORWARD_EFFECTS,
    Step.PLAN: FORWARD_EFFECTS,
    Step.EXECUTION: FORWARD_EFFECTS,
    Step.RETRO: FORWARD_EFFECTS,
    Step.CLOSED: (Effect.STOP_REMINDERS, Effect.REFRESH_CASE_CARD),
}

TRANSITIONS: tuple[Edge, ...] = (
    Edge(Step.CONSENSUS, Check, Step.TEAM, _consensus_gaps),
    Edge(Step.TEAM, ConfirmTeam, Step.REQUIREMENTS, _contact_gaps),
    Edge(Step.REQUIREMENTS, Check, Step.PLAN, _requirements_gaps),
    Edge(Step.PLAN, Publish, Step.EXECUTION, _plan_gaps),
    Edge(Step.EXECUTION, Check, Step.RETRO, _tasks_gaps),
    Edge(Step.EXECUTION, CloseExecution, Step.RETRO),
    Edge(Step.RETRO, Finalise, Step.CLOSED, _retro_gaps),
) + tuple(Edge(step, SendBack, None) for step in (Step.TEAM, Step.REQUIREMENTS, Step.PLAN, Step.EXECUTION,
                                                  Step.RETRO)) \
  + tuple(Edge(step, ending, Step.CLOSED) for step in OPEN_STEPS for ending in (Cancel, CloseEarly))

_TABLE: dict[tuple[Step, type], Edge] = {(e.source, e.command): e for e in TRANSITIONS}


class Blocked(Exception):
    """The command fits the step but its guard does not hold yet."""

    def __init__(self, step: Step, missing: tuple[Gap, ...]) -> None:
        super().__init__(step, missing)
        self.step, self.missing = step, missing


class NotAllowed(Exception):
    """The command does not fit the case: wrong step, not the lead, no reason, a bad target."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    step: Step
    effects: tuple[Effect, ...] = field(default_factory=tuple)


def apply(step: Step | None, command: Command, facts: Facts, *, actor_is_lead: bool) -> Outcome:
    """The next step and what entering it brings, or Blocked / NotAllowed. Pure.

    `step` is None for a case that does not exist yet (Open)."""
    if isinstance(command, Open):
        if step is not None:
            raise NotAllowed("already open")
        return Outcome(Step.CONSENSUS)
    if step is None:
        raise NotAllowed("no case")
    edge = _TABLE.get((step, type(command)))
    if edge is None:
        raise NotAllowed("not in this step")
    if isinstance(command, (ConfirmTeam, Publish, CloseExecution, Finalise, SendBack, Cancel, CloseEarly)) \
            and not actor_is_lead:
        raise NotAllowed("lead only")
    if isinstance(command, (CloseExecution, SendBack, Cancel, CloseEarly)) and not command.reason.strip():
        raise NotAllowed("reason required")
    if isinstance(command, SendBack):
        if not 1 <= command.target < step:
            raise NotAllowed("target must be an earlier step")
        return Outcome(Step(command.target), (Effect.POST_CASE_CARD,))
    gaps = edge.guard(facts) if callable(edge.guard) else ()
    if gaps:
        raise Blocked(step, gaps)
    assert edge.target is not None
    return Outcome(edge.target, ON_ENTER.get(edge.target, ()))
