"""Step 1: `/问题`, the form, 《问题共识表》, sign / object / edit, and moving to step 2."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.models import Case, ConsensusVersion, Signoff
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_HEAD, card_text, fits, step_entered
from tests.test_steps13_support import CONSENSUS_FORM, fill_consensus, has_button, open_case, sign


def _db(world):
    return world.state.factory()


@pytest.mark.usefixtures("paced")
def test_open_case_posts_the_form_then_the_case_card_with_the_table(world):
    mid = open_case(world)
    titles = [c["content"]["header"]["title"]["content"] for c in world.cards()]
    assert titles == ["新建协作问题"]          # the case card comes with the submitted table
    form = world.card(mid)
    assert "背景" in card_text(form) and "涉及部门" in card_text(form)
    with _db(world) as s:
        case = s.scalar(select(Case))
        assert (case.title, case.step, case.lead_open_id, case.opener_open_id) == ("新品推广页面延迟", 1, LEAD, LEAD)


@pytest.mark.usefixtures("paced")
def test_open_case_with_mention(world):
    world.say(LEAD, "@_user_1 /问题 接口延期", mentions=[{"key": "@_user_1", "open_id": world.fake.bot_open_id,
                                                         "name": "协作助手"}])
    assert world.last_card(title_contains="新建协作问题")["content"]


@pytest.mark.usefixtures("paced")
def test_second_case_refused_while_one_is_active(world):
    open_case(world)
    world.say(TECH_HEAD, "/问题 另一个问题")
    assert texts.ALREADY_ACTIVE_CASE.format(title="新品推广页面延迟", seq=1) in world.texts()
    with _db(world) as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1


@pytest.mark.usefixtures("paced")
def test_submit_sign_and_advance(world):
    mid = open_case(world)
    answer = fill_consensus(world, mid)
    assert answer["toast"]["content"] == texts.S1_SUBMITTED.format(version=1)
    table = world.card(mid)
    assert "问题共识表" in card_text(table) and "待签字" in card_text(table)
    # the heads are asked once, by the case card sent with the table (a new message: it notifies)
    case = card_text(world.last_card(title_contains="「新品推广页面延迟」")["content"])
    assert texts.S1_PLEASE_SIGN.format(heads=" ".join(f"<at id={h}></at>" for h in (LEAD, TECH_HEAD, DESIGN_HEAD))) \
        in case, case
    assert not [t for t in world.texts() if TECH_HEAD in t]
    for head in (LEAD, TECH_HEAD):
        assert fits(texts.S1_SIGNED, sign(world, head, mid)["toast"]["content"])
    last = sign(world, DESIGN_HEAD, mid)
    assert fits(texts.S1_SIGNED_AGREED, last["toast"]["content"])
    card = world.card(mid)
    assert card["header"]["template"] == "green" and not has_button(card, "签字确认")
    assert step_entered(2) in world.announced()
    with _db(world) as s:
        assert s.scalar(select(Case.step)) == 2


@pytest.mark.usefixtures("paced")
def test_wrong_person_gets_toast_naming_heads(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    answer = sign(world, OUTSIDER, mid)
    assert answer["toast"]["type"] == "error" and fits(texts.S1_ONLY_HEAD, answer["toast"]["content"])
    assert "市场部负责人" in answer["toast"]["content"] and "技术部负责人" in answer["toast"]["content"]
    with _db(world) as s:
        assert s.scalar(select(func.count()).select_from(Signoff)) == 0


@pytest.mark.usefixtures("paced")
def test_double_click_signs_once(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    sign(world, TECH_HEAD, mid)
    again = sign(world, TECH_HEAD, mid)
    assert fits(texts.S1_ALREADY_SIGNED, again["toast"]["content"])
    with _db(world) as s:
        assert s.scalar(select(func.count()).select_from(Signoff)) == 1


@pytest.mark.usefixtures("paced")
def test_validation_errors_keep_input(world):
    mid = open_case(world)
    bad = {**CONSENSUS_FORM, "impact": "影响很大", "dept2_head": "", "dept3_name": "", "dept3_head": "",
           "goal_date": "2026-12-01 +0800"}
    answer = world.submit(LEAD, mid, bad)
    assert answer["toast"]["type"] == "error"
    card = answer["card"]["data"]
    text = card_text(card)
    assert "影响" in text and "技术部" in text and "已经过去" in text
    defaults = {n.get("name"): n.get("default_value") for n in _walk(card) if n.get("tag") == "input"}
    assert defaults["background"] == CONSENSUS_FORM["background"] and defaults["impact"] == "影响很大"
    assert defaults["dept2_name"] == "技术部"
    persons = {n.get("name"): n.get("initial_option") for n in _walk(card) if n.get("tag") == "select_person"}
    assert persons["dept1_head"] == LEAD
    with _db(world) as s:
        assert s.scalar(select(func.count()).select_from(ConsensusVersion)) == 0
    # the re-filled form still submits
    ok = world.submit(LEAD, mid, {**CONSENSUS_FORM})
    assert ok["toast"]["type"] == "success"


@pytest.mark.usefixtures("paced")
def test_too_few_departments(world):
    mid = open_case(world)
    answer = world.submit(LEAD, mid, {**CONSENSUS_FORM, "dept2_name": "", "dept2_head": "", "dept3_name": "",
                                      "dept3_head": ""})
    assert answer["toast"]["content"] == texts.S1_DEPT_TOO_FEW.format(count=1)


@pytest.mark.usefixtures("paced")
def test_edit_after_signature_makes_new_version(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    sign(world, TECH_HEAD, mid)
    world.press(LEAD, mid, "修改内容")
    answer = world.submit(LEAD, mid, {**CONSENSUS_FORM, "goal": "4天内完成页面对接"})
    assert answer["toast"]["content"] == texts.S1_EDITED.format(version=2)
    text = card_text(world.card(mid))
    assert "版本 2" in text and "共同目标" in text and "已签字" not in text
    with _db(world) as s:
        rows = s.scalars(select(Signoff)).all()
        assert [(r.artifact_version, r.status) for r in rows] == [(1, "signed")]


@pytest.mark.usefixtures("paced")
def test_objection_then_edit(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    empty = world.submit(TECH_HEAD, mid, {"reason": "  "})
    assert empty["toast"]["content"] == texts.S_FIELD_REQUIRED.format(field=texts.S1_FIELD_NAMES["reason"])
    answer = world.submit(TECH_HEAD, mid, {"reason": "3天不够，接口需要加密"})
    assert answer["toast"]["type"] == "warning" and fits(texts.S1_OBJECTED, answer["toast"]["content"])
    card = world.card(mid)
    assert card["header"]["template"] == "red" and "3天不够" in card_text(card)
    assert any(fits(texts.S1_OBJECTION_NOTICE, t) and LEAD in t for t in world.texts())
    for head in (LEAD, DESIGN_HEAD):
        sign(world, head, mid)
    with _db(world) as s:
        assert s.scalar(select(Case.step)) == 1   # the objection blocks
    world.press(LEAD, mid, "修改内容")
    world.submit(LEAD, mid, {**CONSENSUS_FORM, "goal_date": "2026-12-12 +0800"})
    for head in (LEAD, TECH_HEAD, DESIGN_HEAD):
        sign(world, head, mid)
    with _db(world) as s:
        assert s.scalar(select(Case.step)) == 2


def _walk(node):
    from tests.driver import walk
    return list(walk(node))
