"""The six-step state machine on its own: every edge of the table, every refused command, the
gaps it reports, and the docstring diagram checked against the table's edges."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from bot import texts, workflow
from bot.workflow import (
    OPEN_STEPS,
    TRANSITIONS,
    Blocked,
    Cancel,
    Check,
    CloseEarly,
    CloseExecution,
    ConfirmTeam,
    Effect,
    Facts,
    Finalise,
    Gap,
    GapKind,
    NotAllowed,
    Open,
    Outcome,
    Publish,
    SendBack,
    Step,
    apply,
    missing,
)

READY = {  # facts under which each step's guard holds
    Step.CONSENSUS: Facts(),
    Step.TEAM: Facts(),
    Step.REQUIREMENTS: Facts(requirements_count=2),
    Step.PLAN: Facts(task_count=3),
    Step.EXECUTION: Facts(task_count=3),
    Step.RETRO: Facts(retro_entry_count=1),
}
NOT_READY = {  # facts under which each guarded edge is blocked, and what it reports
    (Step.CONSENSUS, Check): (Facts(unsigned_departments=("技术部",)), (Gap(GapKind.HEAD_SIGN, "技术部"),)),
    (Step.TEAM, ConfirmTeam): (Facts(departments_without_contact=("设计部",)), (Gap(GapKind.CONTACT, "设计部"),)),
    (Step.REQUIREMENTS, Check): (Facts(), (Gap(GapKind.REQUIREMENT),)),
    (Step.PLAN, Publish): (Facts(), (Gap(GapKind.ADD_TASK),)),
    (Step.EXECUTION, Check): (Facts(open_tasks=("接口开发",)), (Gap(GapKind.TASK_OPEN, "接口开发"),)),
    (Step.RETRO, Finalise): (Facts(), (Gap(GapKind.RETRO_ENTRY),)),
}
COMMANDS = [Check(), ConfirmTeam(), Publish(), CloseExecution("提前结束"), Finalise(), SendBack(1, "重新对齐"),
            Cancel("发错了"), CloseEarly("问题已由供应商解决")]
EXPECTED_EDGES = {
    (Step.CONSENSUS, Check): Step.TEAM,
    (Step.TEAM, ConfirmTeam): Step.REQUIREMENTS,
    (Step.REQUIREMENTS, Check): Step.PLAN,
    (Step.PLAN, Publish): Step.EXECUTION,
    (Step.EXECUTION, Check): Step.RETRO,
    (Step.EXECUTION, CloseExecution): Step.RETRO,
    (Step.RETRO, Finalise): Step.CLOSED,
    **{(s, SendBack): Step.CONSENSUS for s in (Step.TEAM, Step.REQUIREMENTS, Step.PLAN, Step.EXECUTION, Step.RETRO)},
    **{(s, Cancel): Step.CLOSED for s in OPEN_STEPS},
    **{(s, CloseEarly): Step.CLOSED for s in OPEN_STEPS},
}


def test_open_starts_in_step_one_and_only_once():
    assert apply(None, Open(), Facts(), actor_is_lead=True) == Outcome(Step.CONSENSUS)
    with pytest.raises(NotAllowed):
        apply(Step.CONSENSUS, Open(), Facts(), actor_is_lead=True)


@pytest.mark.parametrize("step, command", list(itertools.product(list(Step), COMMANDS)),
                         ids=lambda x: getattr(x, "name", type(x).__name__))
def test_every_step_and_command(step, command):
    """The whole table: each (step, command) either follows its edge or is refused."""
    key = (step, type(command))
    facts = READY.get(step, Facts())
    if key not in EXPECTED_EDGES:
        with pytest.raises(NotAllowed) as refused:
            apply(step, command, facts, actor_is_lead=True)
        assert refused.value.reason == "not in this step"
        return
    outcome = apply(step, command, facts, actor_is_lead=True)
    assert outcome.step == EXPECTED_EDGES[key]
    if isinstance(command, SendBack):
        assert outcome.effects == (Effect.POST_CASE_CARD,)
    else:
        assert outcome.effects == workflow.ON_ENTER[outcome.step]


def test_the_table_has_exactly_the_expected_edges():
    table = {(e.source, e.command): e.target for e in TRANSITIONS}
    assert set(table) == set(EXPECTED_EDGES)
    assert all(table[k] in (EXPECTED_EDGES[k], None) for k in table)


@pytest.mark.parametrize("key", list(NOT_READY), ids=lambda k: f"{k[0].name}-{k[1].__name__}")
def test_guarded_edges_are_blocked_with_what_is_missing(key):
    step, command_type = key
    facts, gaps = NOT_READY[key]
    command = next(c for c in COMMANDS if type(c) is command_type)
    with pytest.raises(Blocked) as blocked:
        apply(step, command, facts, actor_is_lead=True)
    assert blocked.value.missing == gaps


@pytest.mark.parametrize("command", [ConfirmTeam(), Publish(), CloseExecution("x"), Finalise(), SendBack(1, "x"),
                                     Cancel("x"), CloseEarly("x")])
def test_decisions_are_the_leads(command):
    step = next(s for (s, c) in EXPECTED_EDGES if c is type(command))
    with pytest.raises(NotAllowed) as refused:
        apply(step, command, READY[step], actor_is_lead=False)
    assert refused.value.reason == "lead only"


def test_a_check_by_anyone_moves_on():
    assert apply(Step.CONSENSUS, Check(), Facts(), actor_is_lead=False).step == Step.TEAM


@pytest.mark.parametrize("command", [CloseExecution("  "), SendBack(2, ""), Cancel(" "), CloseEarly("")])
def test_closing_and_sending_back_need_a_reason(command):
    with pytest.raises(NotAllowed) as refused:
        apply(Step.EXECUTION, command, READY[Step.EXECUTION], actor_is_lead=True)
    assert refused.value.reason == "reason required"


@pytest.mark.parametrize("target", [0, 4, 5, 9, -1])
def test_send_back_only_to_an_earlier_step(target):
    with pytest.raises(NotAllowed):
        apply(Step.PLAN, SendBack(target, "x"), Facts(), actor_is_lead=True)
    assert apply(Step.PLAN, SendBack(2, "x"), Facts(), actor_is_lead=True).step == Step.TEAM


def test_every_way_into_the_archive_stops_the_reminders():
    for step, command in [(Step.RETRO, Finalise()), (Step.TEAM, Cancel("x")), (Step.EXECUTION, CloseEarly("x"))]:
        facts = READY.get(step, Facts())
        assert Effect.STOP_REMINDERS in apply(step, command, facts, actor_is_lead=True).effects


def test_entering_step_two_prefills_from_the_template():
    assert Effect.PREFILL_TEAM in apply(Step.CONSENSUS, Check(), Facts(), actor_is_lead=False).effects


@pytest.mark.parametrize("step, facts, expect", [
    (Step.CONSENSUS, Facts(consensus_submitted=False), [Gap(GapKind.SUBMIT_CONSENSUS)]),
    (Step.CONSENSUS, Facts(unsigned_departments=("技术部",), objections=("设计部",)),
     [Gap(GapKind.OBJECTION, "设计部"), Gap(GapKind.HEAD_SIGN, "技术部")]),
    (Step.TEAM, Facts(departments_without_contact=("技术部",)), [Gap(GapKind.CONTACT, "技术部")]),
    (Step.TEAM, Facts(), [Gap(GapKind.TEAM_CONFIRM)]),
    (Step.REQUIREMENTS, Facts(requirements_count=1, unresolved_conflicts=("加密",),
                              unconfirmed_departments=("市场部",)), [Gap(GapKind.CONFLICT, "加密")]),
    (Step.REQUIREMENTS, Facts(requirements_count=1, unconfirmed_departments=("市场部",)),
     [Gap(GapKind.CONFIRM_REQUIREMENTS, "市场部")]),
    (Step.PLAN, Facts(), [Gap(GapKind.ADD_TASK)]),
    (Step.PLAN, Facts(task_count=1), [Gap(GapKind.PUBLISH_PLAN)]),
    (Step.EXECUTION, Facts(open_tasks=("接口开发",)), [Gap(GapKind.TASK_OPEN, "接口开发")]),
    (Step.RETRO, Facts(), [Gap(GapKind.RETRO_ENTRY)]),
    (Step.RETRO, Facts(retro_entry_count=2), [Gap(GapKind.FINALISE)]),
    (Step.CLOSED, Facts(), []),
])
def test_missing_lists_gap_codes(step, facts, expect):
    assert list(missing(step, facts)) == expect


def test_every_gap_kind_has_a_label():
    assert set(texts.GAP_LABELS) == {k.value for k in GapKind}


def test_diagram_is_the_table():
    """The docstring's diagram draws exactly the table's edges (architecture house rule)."""
    doc = workflow.__doc__ or ""
    name = {s: f"{s.value} {texts.STEP_SHORT[s.value]}" for s in Step}
    drawn = set()
    for line in doc.splitlines():
        m = re.match(r"\s*(.+?) ─+(\w+)\(.*\)─+▶ (.+)$", line)
        if not m:
            continue
        source, command, target = m.groups()
        if source.strip() == "2–6":
            assert target.strip() == "1–5"   # back to any earlier step (test_send_back_only_to_an_earlier_step)
            drawn |= {(s, command) for s in (Step.TEAM, Step.REQUIREMENTS, Step.PLAN, Step.EXECUTION, Step.RETRO)}
            continue
        if source.strip() == "1–6":
            assert target.strip() == name[Step.CLOSED]
            drawn |= {(s, command) for s in OPEN_STEPS}
            continue
        step = next(s for s in Step if name[s] == source.strip())
        assert next(s for s in Step if name[s] == target.strip()) == EXPECTED_EDGES[(step, getattr(workflow, command))]
        drawn.add((step, command))
    assert drawn == {(s, c.__name__) for (s, c) in EXPECTED_EDGES}


ROOT = Path(__file__).parent.parent
PRODUCT = sorted(p for folder in ("bot", "cards", "handlers") for p in (ROOT / folder).rglob("*.py")
                 if "texts" not in p.parts)


def _hits(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in PRODUCT
            for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
            if rx.search(line.split("#", 1)[0])]


def test_only_transition_changes_a_step():
    """The state machine is asked, and a step recorded, in handlers.common alone; nothing assigns a step."""
    assert _hits(r"(?<!self)\.step\s*=[^=]") == []
    assert [h for h in _hits(r"\bworkflow\.apply\(|\benter_step\(") if not h.startswith(
        ("handlers/common.py:", "bot/repository.py:"))] == []
    assert [h for h in _hits(r"\benter_step\(") if h.startswith("bot/repository.py:")
            and "def enter_step" not in h] == []


def test_no_step_is_written_as_a_number():
    assert _hits(r"\bstep\w*\s*(==|!=|<=|>=|<|>|\bin\b|\bnot in\b)\s*[\(\[{]?\s*\d") == []
    assert _hits(r"\bStep\(\s*\d|\bstep\s*=\s*\d|require_step\(\s*\w+,\s*\d") == []
    assert _hits(r"\b(OUTPUTS|STEP_NAMES|STEP_SHORT|SIGNOFF_ACTION)\[\d") == []   # texts keyed by step


@pytest.mark.parametrize("step", [Step.TEAM, Step.REQUIREMENTS, Step.PLAN, Step.EXECUTION, Step.RETRO])
def test_send_back_reaches_every_earlier_step_and_no_other(step):
    for target in range(-1, 9):
        if 1 <= target < step:
            assert apply(step, SendBack(target, "x"), Facts(), actor_is_lead=True) == Outcome(
                Step(target), (Effect.POST_CASE_CARD,))
        else:
            with pytest.raises(NotAllowed) as refused:
                apply(step, SendBack(target, "x"), Facts(), actor_is_lead=True)
            assert refused.value.reason == "target must be an earlier step"
