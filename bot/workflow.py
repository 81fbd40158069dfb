"""THE six-step state machine. Pure: facts in, next step (or the reasons it is blocked) out.
Handlers never set `case.step` themselves; they call `advance` or `send_back`.

    1 问题共识 ──(every head signed the current version)──────────────▶ 2 组建小组
    2 组建小组 ──(every department has a 接口人, the lead confirmed)──▶ 3 需求确认
    3 需求确认 ──(inputs in, conflicts decided, all confirmed)───────▶ 4 行动方案
    4 行动方案 ──(the plan is published: baseline version 1)─────────▶ 5 执行跟踪
    5 执行跟踪 ──(every task done, or the lead closed execution)─────▶ 6 复盘
    6 复盘 ──────(the lead finalised the report)──────────────────────▶ 7 已结案
    any step ◀──(send_back: the lead, with a reason, to an earlier step)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from bot import texts


class Step(IntEnum):
    CONSENSUS = 1
    TEAM = 2
    REQUIREMENTS = 3
    PLAN = 4
    EXECUTION = 5
    RETRO = 6
    CLOSED = 7


@dataclass(frozen=True)
class Facts:
    """What the guards look at, computed from the database by the repository."""

    consensus_submitted: bool = True                # step 1: the first version of the table exists
    unsigned_departments: tuple[str, ...] = ()      # step 1: heads who have not signed the current version
    objections: tuple[str, ...] = ()                # step 1: departments objecting to the current version
    departments_without_contact: tuple[str, ...] = ()  # step 2
    team_confirmed: bool = False                    # step 2: the lead confirmed the table
    inputs_missing: tuple[str, ...] = ()            # step 3: departments that have not submitted
    unresolved_conflicts: tuple[str, ...] = ()      # step 3
    unconfirmed_departments: tuple[str, ...] = ()   # step 3
    requirements_count: int = 0
    plan_published: bool = False                    # step 4
    open_tasks: tuple[str, ...] = ()                # step 5
    execution_closed: bool = False                  # step 5: the lead closed execution with a reason
    retro_finalised: bool = False                   # step 6


@dataclass(frozen=True)
class Blocked(Exception):
    step: Step
    missing: tuple[str, ...] = field(default_factory=tuple)


class NotAllowed(Exception):
    pass


def _names(items: tuple[str, ...], what: str) -> tuple[str, ...]:
    return tuple(f"{name} {what}" for name in items)  # e.g. "技术部 负责人签字"


def missing(step: Step, f: Facts) -> tuple[str, ...]:
    """Human-readable list of what stands between this step and the next."""
    if step == Step.CONSENSUS:
        if not f.consensus_submitted:
            return (texts.GAP_SUBMIT_CONSENSUS,)
        return _names(f.objections, texts.GAP_OBJECTION) + _names(f.unsigned_departments, texts.GAP_HEAD_SIGN)
    if step == Step.TEAM:
        out = _names(f.departments_without_contact, texts.GAP_CONTACT)
        return out + (() if f.team_confirmed or out else (texts.GAP_TEAM_CONFIRM,))
    if step == Step.REQUIREMENTS:
        out = _names(f.inputs_missing, texts.GAP_INPUT)
        if not f.requirements_count and not out:
            out += (texts.GAP_REQUIREMENT,)
        out += _names(f.unresolved_conflicts, texts.GAP_CONFLICT)
        if not out:
            out += _names(f.unconfirmed_departments, texts.GAP_CONFIRM_REQ)
        return out
    if step == Step.PLAN:
        return () if f.plan_published else (texts.GAP_PUBLISH_PLAN,)
    if step == Step.EXECUTION:
        if f.execution_closed:
            return ()
        return _names(f.open_tasks, texts.GAP_TASK_OPEN)
    if step == Step.RETRO:
        return () if f.retro_finalised else (texts.GAP_RETRO,)
    return ()


def advance(step: Step, f: Facts) -> Step:
    """The only way forward: returns the next step, or raises Blocked with what is missing."""
    if step >= Step.CLOSED:
        raise NotAllowed("closed")
    gaps = missing(step, f)
    if gaps:
        raise Blocked(step, gaps)
    return Step(step + 1)


def send_back(step: Step, target: int, *, actor_is_lead: bool, reason: str) -> Step:
    """The lead can send the case back to an earlier step; a reason is required."""
    if not actor_is_lead:
        raise NotAllowed("lead only")
    if not reason.strip():
        raise NotAllowed("reason required")
    if step >= Step.CLOSED or not 1 <= target < step:
        raise NotAllowed("target must be an earlier step")
    return Step(target)
