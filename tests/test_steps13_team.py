"""Step 2: 《协作小组分工表》 — departments, 接口人, members, action items, handover, confirm + pin."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Case, Member, Outbox
from tests.driver import CHAT, DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, fits
from tests.test_steps13_support import dept_ids, has_button, reach_step2, set_contacts, team_card_mid


@pytest.mark.usefixtures("paced")
def test_team_flow_confirm_pins_and_mentions(world):
    reach_step2(world)
    mid = team_card_mid(world)
    assert "协作小组分工表" in card_text(world.card(mid))
    # confirming too early names what is missing
    early = world.press(LEAD, mid, "确认分工表")
    assert early["toast"]["type"] == "error" and fits(texts.S2_NOT_READY, early["toast"]["content"])
    assert "技术部接口人" in early["toast"]["content"]
    assert set_contacts(world, mid)["toast"] == {"type": "success", "content": texts.S2_DEPTS_SAVED}
    ids = dept_ids(world)
    world.press(TECH_HEAD, mid, "添加成员")
    ans = world.submit(TECH_HEAD, mid, {"member": TECH_HEAD, "dept": str(ids["技术部"]), "role": "技术负责人",
                                        "duty": "协调接口开发资源"})
    assert ans["toast"] == {"type": "success", "content": texts.S2_MEMBER_SAVED.format(role="技术负责人李娜")}
    world.press(LEAD, mid, "添加行动项")
    world.submit(LEAD, mid, {"content": "整理接口功能清单", "owner": TECH_DEV, "due": "2026-12-09 +0800"})
    text = card_text(world.card(mid))
    assert "整理接口功能清单" in text and "技术负责人" in text and "2026-12-09" in text
    # only the lead confirms
    other = world.press(TECH_HEAD, mid, "确认分工表")
    assert other["toast"] == {"type": "error", "content": texts.LEAD_ONLY_NAMED.format(name="陈静")}
    done = world.press(LEAD, mid, "确认分工表")
    assert done["toast"] == {"type": "success", "content": texts.S2_CONFIRMED}
    pinned = [m for m in world.fake.visible(CHAT) if m.get("pinned")]
    assert len(pinned) == 1 and "已由协作组长确认" in card_text(pinned[0]["content"])
    assert not has_button(pinned[0]["content"], "确认分工表")
    announcement = next(t for t in world.texts() if t.startswith(texts.S2_ANNOUNCE_HEAD))
    for who in (TECH_DEV, TECH_HEAD, DESIGN_HEAD, LEAD):
        assert announcement.count(f'<at user_id="{who}">') == 1
    assert "技术负责人" in announcement and "协调接口开发资源" in announcement
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 3
        nudge = s.scalar(select(Outbox).where(Outbox.kind == "req_input_nudge"))
        assert nudge is not None and nudge.status == "pending"
    assert not has_button(world.card(mid), "确认分工表")


@pytest.mark.usefixtures("paced")
def test_member_validation_keeps_input(world):
    reach_step2(world)
    mid = team_card_mid(world)
    world.press(LEAD, mid, "添加成员")
    ans = world.submit(LEAD, mid, {"member": TECH_DEV, "dept": "", "role": "接口开发", "duty": ""})
    assert ans["toast"]["type"] == "error"
    card = ans["card"]["data"]
    assert "所属部门" in card_text(card) and "职责" in card_text(card)
    from tests.driver import walk
    defaults = {n.get("name"): n.get("default_value") or n.get("initial_option") for n in walk(card)}
    assert defaults["role"] == "接口开发" and defaults["member"] == TECH_DEV
    with world.state.factory() as s:
        assert s.scalars(select(Member)).all() == []


@pytest.mark.usefixtures("paced")
def test_outsider_cannot_edit_and_lead_handover(world):
    reach_step2(world)
    mid = team_card_mid(world)
    outsider = world.press(OUTSIDER, mid, "添加成员")["toast"]
    assert outsider["type"] == "error" and fits(texts.S_ONLY_LEAD_OR_HEADS, outsider["content"])
    assert world.press(TECH_HEAD, mid, "移交组长")["toast"] == {"type": "error",
                                                              "content": texts.LEAD_ONLY_NAMED.format(name="陈静")}
    world.press(LEAD, mid, "移交组长")
    world.submit(LEAD, mid, {"lead": TECH_HEAD})
    with world.state.factory() as s:
        assert s.scalar(select(Case.lead_open_id)) == TECH_HEAD
    assert texts.S2_LEAD_NOTICE.format(old=f'<at user_id="{LEAD}"></at>',
                                       new=f'<at user_id="{TECH_HEAD}"></at>') in world.texts()
    set_contacts(world, mid, user=TECH_HEAD)
    assert world.press(LEAD, mid, "确认分工表")["toast"] == {"type": "error",   # no longer the lead
                                                           "content": texts.LEAD_ONLY_NAMED.format(name="李娜")}
    assert world.press(TECH_HEAD, mid, "确认分工表")["toast"]["type"] == "success"


@pytest.mark.usefixtures("paced")
def test_stale_confirm_after_edit(world):
    reach_step2(world)
    mid = team_card_mid(world)
    set_contacts(world, mid)
    stale_card = world.card(mid)
    world.press(LEAD, mid, "添加行动项")
    world.submit(LEAD, mid, {"content": "出设计稿", "owner": DESIGN_HEAD, "due": "2026-12-09 +0800"})
    from tests.driver import find_button
    ans = world.click(LEAD, mid, value=find_button(stale_card, "确认分工表"))
    assert ans["toast"]["content"] == texts.STALE_CARD
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 2


@pytest.mark.usefixtures("paced")
def test_template_roles_are_a_checklist_in_step2(world):
    """A case opened from an SOP template shows the template's roles nobody holds yet."""
    from datetime import timezone

    from bot.models import Case, Template
    from tests.driver import TENANT

    with world.state.factory() as s, s.begin():
        s.add(Template(tenant_key=TENANT, name="跨部门需求对接SOP", body={
            "departments": [{"name": "技术部", "kind": "core"}, {"name": "设计部", "kind": "support"}],
            "roles": [{"department": "技术部", "role": "技术负责人", "duty": "协调接口开发资源"},
                      {"department": "设计部", "role": "视觉设计", "duty": "页面适配"},
                      {"department": "技术部", "role": "接口人", "duty": ""}],
            "tasks": [], "risks": [], "key_nodes": []},
            created_by=LEAD, created_at=world.clock.now().astimezone(timezone.utc)))
    world.say(LEAD, "/问题 模板:跨部门需求对接SOP 第二个问题")
    with world.state.factory() as s:
        assert s.scalar(select(Case.template_id)) is not None
    from tests.test_steps13_support import HEADS, fill_consensus, sign

    form = world.last_card(title_contains="新建协作问题")["message_id"]
    fill_consensus(world, form, title="第二个问题")
    for head in HEADS:
        sign(world, head, form)
    mid = team_card_mid(world)
    text = card_text(world.card(mid))
    assert "SOP 模板建议的角色" in text and "技术部 · 技术负责人" in text and "设计部 · 视觉设计" in text
    assert "技术部 · 接口人" not in text  # 接口人 are set per department, not from the checklist
    from cards.rules import validate_card
    assert validate_card(world.card(mid)) == []
    ids = dept_ids(world)
    world.press(TECH_HEAD, mid, "添加成员")
    world.submit(TECH_HEAD, mid, {"member": TECH_HEAD, "dept": str(ids["技术部"]), "role": "技术负责人",
                                  "duty": "协调接口开发资源"})
    text = card_text(world.card(mid))
    assert "技术部 · 技术负责人" not in text and "设计部 · 视觉设计" in text
