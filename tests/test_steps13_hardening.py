"""Steps 1–3 under pressure: concurrent sign-offs (threads, SQLite and PostgreSQL), forged card
values from another chat or tenant, stale cards, sending back, the audit trail."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.models import AuditEntry, Case, ConsensusVersion, Signoff, StepLog
from tests.driver import (
    DESIGN_HEAD,
    LEAD,
    OTHER_CHAT,
    TECH_DEV,
    TECH_HEAD,
    card_text,
    find_button,
    find_submit,
    fits,
    step_entered,
)
from tests.racing import process_at_once, stored_click
from tests.test_steps13_support import (
    CONSENSUS_FORM,
    HEADS,
    fill_consensus,
    has_button,
    open_case,
    reach_step2,
    reach_step3,
    sign,
)


def _count(world, model, *where):
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_concurrent_signoffs_sign_once_and_advance_once(world):
    """Every head signs at the same moment, one of them twice: threads on the real database."""
    mid = open_case(world)
    world.clock.advance(__import__("datetime").timedelta(seconds=2))
    fill_consensus(world, mid)
    value = find_button(world.card(mid), "签字确认")
    ids = [stored_click(world, h, mid, value) for h in HEADS] + [stored_click(world, TECH_HEAD, mid, value)]
    answers = process_at_once(world, ids)
    world.clock.advance(__import__("datetime").timedelta(seconds=2))
    world.drain()
    toasts = [a.toast for a in answers]
    signed = (texts.S1_SIGNED, texts.S1_SIGNED_AGREED, texts.S1_ALREADY_SIGNED, texts.S1_ALREADY_AGREED)
    assert all(t and any(fits(x, t) for x in signed) for t in toasts), toasts   # nobody told to retry
    with world.state.factory() as s:
        rows = s.scalars(select(Signoff)).all()
        assert sorted(r.actor_open_id for r in rows) == sorted(HEADS)      # each head exactly once
        assert s.scalar(select(Case.step)) == 2
        assert s.scalar(select(func.count()).select_from(StepLog).where(StepLog.step == 2)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "step.enter")) == 1
    assert world.announced().count(step_entered(2)) == 1


@pytest.mark.usefixtures("paced")
def test_forged_value_for_other_chat_or_tenant_is_refused(world):
    world.say(TECH_DEV, "/问题 别的群的问题", chat=OTHER_CHAT)
    other_mid = world.last_card(chat=OTHER_CHAT, title_contains="新建协作问题")["message_id"]
    other_submit = find_submit(world.card(other_mid))
    made = world.click(TECH_DEV, other_mid, chat=OTHER_CHAT, name=other_submit,
                       form={**CONSENSUS_FORM, "dept1_head": TECH_DEV, "dept2_head": LEAD})
    assert made["toast"]["type"] == "success"
    other_value = find_button(world.card(other_mid), "签字确认")
    mid = open_case(world)
    fill_consensus(world, mid)
    before_sign = _count(world, Signoff)
    before_versions = _count(world, ConsensusVersion)
    # a button on our group's card carrying the other group's case id
    answer = world.click(LEAD, mid, value=other_value)
    assert answer["toast"] == {"type": "error", "content": texts.CASE_NOT_FOUND}
    # a form submit naming the other group's case
    answer = world.click(LEAD, mid, form={**CONSENSUS_FORM, "goal": "改掉别人的目标"}, name=other_submit)
    assert answer["toast"]["content"] == texts.CASE_NOT_FOUND
    # our own case, but the callback comes from another tenant
    own = find_button(world.card(mid), "签字确认")
    eid = stored_click(world, LEAD, mid, own, tenant="tenant_evil")
    assert world.state.dispatcher.process(eid).toast == texts.CASE_NOT_FOUND
    assert _count(world, Signoff) == before_sign and _count(world, ConsensusVersion) == before_versions
    with world.state.factory() as s:
        goals = s.scalars(select(ConsensusVersion.goal)).all()
    assert "改掉别人的目标" not in goals


@pytest.mark.usefixtures("paced")
def test_stale_card_click_does_not_sign_new_version(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    old_card = world.card(mid)
    world.press(LEAD, mid, "修改内容")
    world.submit(LEAD, mid, {**CONSENSUS_FORM, "goal": "4天内完成对接"})
    answer = world.click(TECH_HEAD, mid, value=find_button(old_card, "签字确认"))
    assert answer["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert "版本 2" in card_text(answer["card"]["data"])
    assert _count(world, Signoff) == 0
    # a form opened on version 1 and submitted after version 2 keeps what was typed
    world.press(DESIGN_HEAD, mid, "修改内容")   # a form for the design head only: the table stays
    stale_mid = world.private_with(DESIGN_HEAD, lambda c: True)
    stale_form = world.card(stale_mid)
    world.press(LEAD, mid, "修改内容")
    world.submit(LEAD, mid, {**CONSENSUS_FORM, "goal": "5天内完成对接"})
    late = world.click(DESIGN_HEAD, stale_mid, form={**CONSENSUS_FORM, "goal": "设计部的版本"},
                       name=find_submit(stale_form))
    assert late["toast"]["type"] == "warning" and fits(texts.S_STALE_FORM, late["toast"]["content"])
    assert any(n.get("default_value") == "设计部的版本" for n in _walk(late["card"]["data"]))
    assert _count(world, ConsensusVersion) == 3


@pytest.mark.usefixtures("paced")
def test_send_back_to_step1_keeps_old_signatures_and_stays_editable(world):
    reach_step2(world)
    world.say(TECH_HEAD, "/回退 1 目标要调整")
    assert world.texts()[-1] == texts.NOT_LEAD
    world.say(LEAD, "/回退 1 技术方案变化，目标要调整")
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 1
    case_mid = world.last_card(title_contains="「")["message_id"]
    world.press(LEAD, case_mid, "填写/查看问题共识表")
    table_mid = world.last_card(title_contains="问题共识表")["message_id"]
    assert has_button(world.card(table_mid), "修改内容")
    world.press(LEAD, table_mid, "修改内容")
    world.submit(LEAD, table_mid, {**CONSENSUS_FORM, "goal": "5天内完成对接"})
    with world.state.factory() as s:
        signs = s.scalars(select(Signoff)).all()
        assert sorted((r.artifact_version, r.status) for r in signs) == [(1, "signed")] * 3
    for head in HEADS:
        sign(world, head, table_mid)
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 2
        assert _count(world, Signoff, Signoff.artifact_version == 2) == 3


@pytest.mark.usefixtures("paced")
def test_send_back_to_step3_and_confirm_again(world):
    from tests.test_steps13_requirements import add_req
    from tests.test_steps13_support import submit_inputs
    mid = reach_step3(world)
    submit_inputs(world, mid)
    add_req(world, mid, LEAD, "市场部", "按期上线")
    for who in (LEAD, TECH_DEV, DESIGN_HEAD):
        world.press(who, mid, "确认清单")
    world.say(LEAD, "/回退 3 需求有变化")
    case_mid = world.last_card(title_contains="「")["message_id"]
    world.press(LEAD, case_mid, "查看需求确认清单")
    again = world.last_card(title_contains="需求确认清单")["message_id"]
    assert has_button(world.card(again), "新增需求")
    assert world.press(TECH_DEV, again, "确认清单")["toast"]["type"] == "success"
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 4


@pytest.mark.usefixtures("paced")
def test_audit_trail_and_progress(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    sign(world, TECH_HEAD, mid)
    world.submit(DESIGN_HEAD, mid, {"reason": "时间不够"})
    world.press(LEAD, mid, "修改内容")
    world.submit(LEAD, mid, {**CONSENSUS_FORM, "goal": "4天内完成对接"})
    with world.state.factory() as s:
        actions = [a for a in s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))]
    assert actions == ["case.open", "consensus.submit", "consensus.sign", "consensus.object", "consensus.edit"]
    assert all(a in texts.AUDIT_ACTIONS for a in actions)
    world.say(LEAD, "/记录")
    log = card_text(world.last_card(title_contains="操作记录")["content"])
    assert "提出异议" in log and "修改共识表" in log
    world.say(LEAD, "/进度")
    progress = card_text(world.last_card(title_contains="「")["content"])
    assert "版本 2" in progress and "已签字 0/3" in progress


def _walk(node):
    from tests.driver import walk
    return list(walk(node))
