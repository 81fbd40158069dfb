"""Input limits are the same everywhere: an over-long text is refused with the field and its limit
named (never cut silently), the form keeps what was typed, and nothing is stored."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import ConsensusVersion, RetroEntry, Risk, Task
from tests.casefactory import open_retro_card
from tests.driver import LEAD, TECH_DEV, TECH_HEAD, walk
from tests.test_steps13_support import fill_consensus, open_case
from tests.test_steps46_plan import TASK, open_plan
from tests.test_steps46_risks import _setup, _tracking


def _too_long(field: str, limit: int) -> str:
    return texts.S_FIELD_TOO_LONG.format(field=field, max=limit)


def _defaults(card: dict) -> set[str]:
    return {n.get("default_value") for n in walk(card) if n.get("default_value")}


def test_retro_entry_over_1000_is_refused_not_cut(world):
    case_id, mid = open_retro_card(world, TECH_DEV)
    long = "经" * 5000
    ans = world.submit(TECH_DEV, mid, {"kind": "success", "content": long}, form_name="retro_entry")
    assert ans["toast"] == {"type": "error", "content": _too_long(texts.FIELD_RETRO_CONTENT, 1000)}
    assert long in _defaults(ans["card"]["data"])       # what was typed is still in the form
    with world.state.factory() as s:
        assert s.scalars(select(RetroEntry).where(RetroEntry.author_open_id == TECH_DEV)).all() == []
    exact = "经" * 1000                                   # the limit itself is fine, and kept whole
    ok = world.submit(TECH_DEV, mid, {"kind": "success", "content": exact}, form_name="retro_entry")
    assert ok["toast"]["type"] == "success"
    with world.state.factory() as s:
        assert s.scalar(select(RetroEntry.content).where(RetroEntry.author_open_id == TECH_DEV)) == exact


def test_plan_task_and_risk_over_limit_are_refused(world):
    case_id, mid = open_plan(world)
    ans = world.submit(LEAD, mid, dict(TASK, standard="测" * 501), form_name="plan_task")
    assert ans["toast"] == {"type": "error", "content": _too_long(texts.FIELD_STANDARD, 500)}
    ans = world.submit(LEAD, mid, dict(TASK, content="做" * 501), form_name="plan_task")
    assert ans["toast"]["content"] == _too_long(texts.FIELD_CONTENT, 500)
    with world.state.factory() as s:
        assert s.scalars(select(Task).where(Task.case_id == case_id)).all() == []
    risk = {"risk": "测试延迟", "likelihood": "mid", "impact": "high", "response": "加" * 501, "owner": TECH_HEAD}
    world.press(LEAD, mid, "＋风险")
    ans = world.submit(LEAD, mid, risk, form_name="plan_risk")
    assert ans["toast"]["content"] == _too_long(texts.FIELD_RESPONSE, 500)
    assert "加" * 501 in _defaults(ans["card"]["data"])
    world.press(LEAD, mid, "＋关键节点")
    ans = world.submit(LEAD, mid, {"name": "节" * 65, "at": "2026-12-11 12:00 +0800"}, form_name="plan_node")
    assert ans["toast"]["content"] == _too_long(texts.FIELD_NODE_NAME, 64)
    with world.state.factory() as s:
        assert s.scalars(select(Risk).where(Risk.case_id == case_id)).all() == []


def test_risk_close_note_over_300_is_refused_and_risk_stays_open(world):
    _case_id, risk_id = _setup(world)
    mid = _tracking(world)
    ans = world.submit(LEAD, mid, {"risk": str(risk_id), "note": "说" * 301}, form_name="risk_close")
    assert ans["toast"] == {"type": "error", "content": _too_long("关闭说明", 300)}
    with world.state.factory() as s:
        assert s.get(Risk, risk_id).status == "open"


# ---------------------------------------------------------------- person fields: members of this group
STRANGER = "ou_not_in_this_group"


@pytest.mark.usefixtures("paced")
def test_department_head_must_be_a_member_of_the_group(world):
    mid = open_case(world)  # `/问题` reads the group's member list
    ans = fill_consensus(world, mid, dept2_head=STRANGER)
    problem = texts.S_NOT_CHAT_MEMBER.format(field=texts.S1_F_DEPT_NAME.format(n=2))
    assert ans["toast"]["type"] == "error" and problem in ans["toast"]["content"]
    with world.state.factory() as s:
        assert s.scalars(select(ConsensusVersion)).all() == []
    ok = fill_consensus(world, mid)  # members of the group are accepted
    assert ok["toast"]["type"] == "success"


def test_task_owner_is_checked_once_the_member_list_is_known(world):
    case_id, mid = open_plan(world)  # a group whose member list the bot has not read: anyone is accepted
    assert world.submit(LEAD, mid, dict(TASK, owner=STRANGER), form_name="plan_task")["toast"]["type"] == "success"
    world.add_bot()  # the bot (re)joins: it reads the member list
    ans = world.submit(LEAD, mid, dict(TASK, content="联调测试", owner=STRANGER), form_name="plan_task")
    assert ans["toast"] == {"type": "error", "content": texts.S_NOT_CHAT_MEMBER.format(field=texts.FIELD_OWNER)}
    ok = world.submit(LEAD, mid, dict(TASK, content="联调测试", owner=TECH_DEV), form_name="plan_task")
    assert ok["toast"]["type"] == "success"
    with world.state.factory() as s:
        assert [t.owner_open_id for t in s.scalars(select(Task).where(Task.case_id == case_id))] == [STRANGER, TECH_DEV]


def test_a_command_longer_than_the_text_cap_is_refused_not_cut(world):
    """Only the first MAX_TEXT characters of a message are read (S9): a command longer than that
    is refused with the limit named, never run on its start; chatter that long is left alone."""
    from bot.envelope import MAX_TEXT
    from bot.models import Case
    from handlers.general import BACK_REASON_LIMIT
    from tests.casefactory import make_case_at_step4

    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    head = "/回退 2 "
    world.say(LEAD, head + "因" * (MAX_TEXT + 1000 - len(head)))
    assert world.texts() == [texts.COMMAND_TOO_LONG.format(limit=MAX_TEXT)]
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 4
    world.say(LEAD, "聊" * (MAX_TEXT + 10))               # not a command: no answer
    assert len(world.texts()) == 1
    world.say(LEAD, head + "因" * (MAX_TEXT - len(head)))  # at the cap: read whole, the reason limit answers
    assert world.texts()[-1] == texts.S_FIELD_TOO_LONG.format(field=texts.FIELD_BACK_REASON, max=BACK_REASON_LIMIT)
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 4
    reason = "因" * BACK_REASON_LIMIT                      # within every limit: run, and kept whole
    world.say(LEAD, head + reason)
    assert world.texts()[-1] == texts.BACK_DONE.format(step=texts.STEP_NAMES[2], reason=reason)
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 2
