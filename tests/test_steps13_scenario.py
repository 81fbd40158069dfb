"""The whole of steps 1–3 as the group lives it: `/问题` to the start of step 4, several people,
Feishu-shaped events and callbacks in, what the group sees out."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Case, Signoff
from tests.driver import (
    CHAT,
    DESIGN_HEAD,
    LEAD,
    OUTSIDER,
    TECH_DEV,
    TECH_HEAD,
    card_text,
    card_title,
    find_button,
    fits,
    step_entered,
    walk,
)
from tests.test_steps13_support import CONSENSUS_FORM, INPUTS, dept_ids, has_button, set_contacts, sign, team_card_mid

INJECT = '<at id=all></at><at user_id="all"></at>'


def _step(world) -> int:
    with world.state.factory() as s:
        return s.scalar(select(Case.step))


def _no_raw_mentions_of_all(world) -> None:
    for card in world.cards():
        for node in walk(card["content"]):
            if node.get("tag") == "markdown":
                assert "<at id=all" not in node["content"]
    for text in world.texts():
        assert 'user_id="all"' not in text


@pytest.mark.usefixtures("paced")
def test_from_problem_to_plan(world):
    # ---- step 1: the market lead opens the case, @mentioning the bot, with a hostile title
    world.say(LEAD, f"@_user_1 /问题 新品推广页面延迟{INJECT}",
              mentions=[{"key": "@_user_1", "open_id": world.fake.bot_open_id, "name": "协作助手"}])
    form = world.last_card(title_contains="新建协作问题")["message_id"]

    # an outsider cannot fill it; a half-filled form comes back with what was typed
    refused = world.submit(OUTSIDER, form, CONSENSUS_FORM)["toast"]
    assert refused["type"] == "error" and fits(texts.S_ONLY_LEAD_OR_HEADS, refused["content"])
    bad = world.submit(LEAD, form, {**CONSENSUS_FORM, "impact": "影响很大", "background": f"背景{INJECT}"})
    assert bad["toast"]["content"] == texts.S1_IMPACT_NEEDS_AMOUNT
    kept = {n.get("name"): n.get("default_value") for n in walk(world.card(form))}
    assert kept["background"] == f"背景{INJECT}"
    world.submit(LEAD, form, {**CONSENSUS_FORM, "title": "", "background": f"背景{INJECT}"})
    table = form   # the form became 《问题共识表》 in place
    assert card_title(world.card(table)) == "《问题共识表》"
    case_card = world.last_card(title_contains="「新品推广")    # sent with it
    assert "▶ ① 问题共识" in card_text(case_card["content"])

    # wrong person, then a double click
    wrong = sign(world, TECH_DEV, table)
    assert wrong["toast"]["type"] == "error" and fits(texts.S1_ONLY_HEAD, wrong["toast"]["content"])
    assert "技术部负责人" in wrong["toast"]["content"]
    sign(world, TECH_HEAD, table)
    assert fits(texts.S1_ALREADY_SIGNED, sign(world, TECH_HEAD, table)["toast"]["content"])
    # the design head objects; the lead edits; signatures reset and the change is shown
    world.submit(DESIGN_HEAD, table, {"reason": "设计稿需要2天，3天太紧"})
    assert world.card(table)["header"]["template"] == "red"
    world.press(LEAD, table, "修改内容")
    world.submit(LEAD, table, {**CONSENSUS_FORM, "title": "", "background": f"背景{INJECT}",
                               "goal": "4天内完成页面对接，推广活动按期上线", "goal_date": "2026-12-12 +0800"})
    text = card_text(world.card(table))
    assert "版本 2" in text and "共同目标、目标日期" in text and "已签字" not in text
    for head in (LEAD, TECH_HEAD, DESIGN_HEAD):
        sign(world, head, table)
    assert world.card(table)["header"]["template"] == "green" and _step(world) == 2
    with world.state.factory() as s:
        history = sorted((x.artifact_version, x.status) for x in s.scalars(select(Signoff)))
    assert history == [(1, "objected"), (1, "signed"), (2, "signed"), (2, "signed"), (2, "signed")]

    # ---- step 2: the lead sets the team up
    team = team_card_mid(world)
    set_contacts(world, team)
    world.press(TECH_HEAD, team, "添加成员")
    world.submit(TECH_HEAD, team, {"member": TECH_HEAD, "dept": str(dept_ids(world)["技术部"]),
                                   "role": "技术负责人", "duty": "协调开发资源"})
    world.press(LEAD, team, "添加行动项")
    world.submit(LEAD, team, {"content": "整理接口功能清单", "owner": LEAD, "due": "2026-12-09 +0800"})
    team_before = world.card(team)
    world.press(LEAD, team, "确认分工表")
    assert _step(world) == 3
    assert [m for m in world.fake.visible(CHAT) if m.get("pinned")]

    # ---- step 3: inputs, a conflict, the lead's decision, confirmations
    case_mid = world.last_card(title_contains="「新品推广")["message_id"]
    world.press(TECH_DEV, case_mid, "查看需求确认清单")
    reqs = world.last_card(title_contains="需求确认清单")["message_id"]
    for who, form_values in INPUTS.items():
        world.press(who, reqs, "提交本部门信息")
        world.submit(who, reqs, form_values)
    ids = dept_ids(world)
    world.press(LEAD, reqs, "新增需求")
    world.submit(LEAD, reqs, {"dept": str(ids["市场部"]), "demand": "推广页面12月12日前上线", "priority": "high"})
    world.press(TECH_DEV, reqs, "新增需求")
    world.submit(TECH_DEV, reqs, {"dept": str(ids["技术部"]), "demand": "接口需增加用户数据加密，需额外1天",
                                  "priority": "high", "conflict": [str(ids["市场部"])]})
    assert world.card(reqs)["header"]["template"] == "red"
    assert world.press(TECH_HEAD, reqs, "确认清单")["toast"]["type"] == "error"
    world.press(LEAD, reqs, "决定冲突点")
    req_id = next(n for n in walk(world.form_of(LEAD)) if n.get("name") == "req")["options"][0]["value"]
    world.submit(LEAD, reqs, {"req": req_id, "decision": "加密简化为第二期，推广按期上线"})
    for who in (LEAD, TECH_HEAD, DESIGN_HEAD):
        assert world.press(who, reqs, "确认清单")["toast"]["type"] == "success"
    final = world.card(reqs)
    assert final["header"]["template"] == "grey" and "存档（只读）" in card_text(final)
    assert not has_button(final, "确认清单")

    # ---- step 4 has started; what the group saw
    assert _step(world) == 4
    case_now = world.last_card(title_contains="「新品推广")["content"]
    assert "✅ ① 问题共识" in card_text(case_now) and "▶ ④ 行动方案" in card_text(case_now)
    entered = world.announced()
    assert entered == [step_entered(2), step_entered(3), step_entered(4)]
    _no_raw_mentions_of_all(world)
    assert all(len(json.dumps(c["content"], ensure_ascii=False).encode()) < 30 * 1024 for c in world.cards())
    # a late click on an old copy of the team card changes nothing
    texts_before = len(world.texts())
    late = world.click(LEAD, team, value=find_button(team_before, "确认分工表"))
    assert late["toast"] == {"type": "info", "content": texts.S2_ALREADY_CONFIRMED}
    assert _step(world) == 4 and len(world.texts()) == texts_before
