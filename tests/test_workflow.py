"""The six-step state machine on its own: pure facts in, the next step or what is missing out."""
from __future__ import annotations

import pytest

from bot import texts, workflow
from bot.workflow import Blocked, Facts, NotAllowed, Step, advance, missing, send_back

READY = {  # the facts that let each step move on
    Step.CONSENSUS: Facts(),
    Step.TEAM: Facts(team_confirmed=True),
    Step.REQUIREMENTS: Facts(requirements_count=2),
    Step.PLAN: Facts(plan_published=True),
    Step.EXECUTION: Facts(),
    Step.RETRO: Facts(retro_finalised=True),
}


def test_steps_follow_the_method_in_order():
    step = Step.CONSENSUS
    seen = [step]
    while step < Step.CLOSED:
        step = advance(step, READY[step])
        seen.append(step)
    assert seen == list(Step)
    with pytest.raises(NotAllowed):
        advance(Step.CLOSED, Facts())


@pytest.mark.parametrize("step,facts,expect", [
    (Step.CONSENSUS, Facts(consensus_submitted=False), [texts.GAP_SUBMIT_CONSENSUS]),
    (Step.CONSENSUS, Facts(unsigned_departments=("技术部",), objections=("设计部",)),
     ["设计部 " + texts.GAP_OBJECTION, "技术部 " + texts.GAP_HEAD_SIGN]),
    (Step.TEAM, Facts(departments_without_contact=("技术部",)), ["技术部 " + texts.GAP_CONTACT]),
    (Step.TEAM, Facts(), [texts.GAP_TEAM_CONFIRM]),
    (Step.REQUIREMENTS, Facts(), [texts.GAP_REQUIREMENT]),
    (Step.REQUIREMENTS, Facts(requirements_count=1, unresolved_conflicts=("加密",),
                              unconfirmed_departments=("市场部",)), ["加密 " + texts.GAP_CONFLICT]),
    (Step.REQUIREMENTS, Facts(requirements_count=1, unconfirmed_departments=("市场部",)),
     ["市场部 " + texts.GAP_CONFIRM_REQ]),
    (Step.PLAN, Facts(), [texts.GAP_PUBLISH_PLAN]),
    (Step.EXECUTION, Facts(open_tasks=("接口开发",)), ["接口开发 " + texts.GAP_TASK_OPEN]),
    (Step.EXECUTION, Facts(open_tasks=("接口开发",), execution_closed=True), []),
    (Step.RETRO, Facts(), [texts.GAP_RETRO]),
])
def test_guards_say_what_is_missing(step, facts, expect):
    assert list(missing(step, facts)) == expect
    if expect:
        with pytest.raises(Blocked) as blocked:
            advance(step, facts)
        assert list(blocked.value.missing) == expect
    else:
        assert advance(step, facts) == step + 1


def test_send_back_needs_the_lead_a_reason_and_an_earlier_step():
    assert send_back(Step.PLAN, 2, actor_is_lead=True, reason="技术方案变化") == Step.TEAM
    for kwargs in ({"actor_is_lead": False, "reason": "x"}, {"actor_is_lead": True, "reason": "  "}):
        with pytest.raises(NotAllowed):
            send_back(Step.PLAN, 2, **kwargs)
    for target in (4, 5, 0):
        with pytest.raises(NotAllowed):
            send_back(Step.PLAN, target, actor_is_lead=True, reason="x")
    with pytest.raises(NotAllowed):
        send_back(Step.CLOSED, 3, actor_is_lead=True, reason="x")


def test_diagram_names_every_step():
    """The docstring's diagram stays in step with the enum (architecture house rule)."""
    doc = workflow.__doc__ or ""
    drawn = [(line.split("──")[0].strip(), line.split("▶")[1].strip())
             for line in doc.splitlines() if "▶" in line]
    name = {s: f"{s.value} {texts.STEP_SHORT[s.value]}" for s in Step}
    assert drawn == [(name[s], name[Step(s + 1)]) for s in Step if s < Step.CLOSED]
