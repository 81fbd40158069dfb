"""Step 3: 《需求确认清单》 — inputs, the one reminder, conflicts decided by the lead, confirmations
bound to the list's version, archive and step 4."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import ArtifactState, Case, Signoff
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, find_button, fits, step_entered
from tests.test_steps13_support import INPUTS, dept_ids, has_button, reach_step3, submit_inputs


def add_req(world, mid, user, dept, demand, conflict=(), priority="high", solution=""):
    ids = dept_ids(world)
    world.press(user, mid, "新增需求")
    return world.submit(user, mid, {"dept": str(ids[dept]), "demand": demand, "priority": priority,
                                    "solution": solution, "conflict": [str(ids[c]) for c in conflict]})


@pytest.mark.usefixtures("paced")
def test_inputs_reminder_once_and_only_missing(world):
    mid = reach_step3(world)
    text = card_text(world.card(mid))
    assert "还没提交" in text
    refused = world.press(OUTSIDER, mid, "提交本部门信息")["toast"]
    assert refused["type"] == "error" and fits(texts.S3_NOT_CONTACT, refused["content"])
    world.press(TECH_DEV, mid, "提交本部门信息")
    ans = world.submit(TECH_DEV, mid, {**INPUTS[TECH_DEV], "demands": ""})
    assert ans["toast"] == {"type": "error", "content": texts.S_FIELD_REQUIRED.format(field=texts.S3_COL_DEMANDS)}
    from tests.driver import walk
    kept = {n.get("name"): n.get("default_value") for n in walk(ans["card"]["data"])}
    assert kept["resources"] == INPUTS[TECH_DEV]["resources"]
    world.submit(TECH_DEV, mid, INPUTS[TECH_DEV])
    before = len(world.texts())
    world.clock.advance(timedelta(hours=25))
    world.drain()
    nudges = world.texts()[before:]
    assert len(nudges) == 1 and nudges[0].startswith(texts.S3_NUDGE)
    assert f'<at user_id="{DESIGN_HEAD}">' in nudges[0] and f'<at user_id="{LEAD}">' in nudges[0]
    assert TECH_DEV not in nudges[0]
    world.clock.advance(timedelta(hours=25))
    world.drain()
    assert len(world.texts()) == before + 1


@pytest.mark.usefixtures("paced")
def test_conflict_blocks_until_decided_then_confirm_and_archive(world):
    mid = reach_step3(world)
    submit_inputs(world, mid)
    add_req(world, mid, LEAD, "市场部", "推广页面12月11日前上线")
    ans = add_req(world, mid, TECH_DEV, "技术部", "接口需增加用户数据加密，额外1天", conflict=("市场部",))
    assert ans["toast"] == {"type": "success", "content": texts.S3_REQ_SAVED}
    # someone not representing the department cannot add for it
    refused = add_req(world, mid, DESIGN_HEAD, "技术部", "x")["toast"]
    assert refused["type"] == "error"
    assert (fits(texts.S3_NOT_DEPT_MEMBER, refused["content"])
            or fits(texts.S3_NOT_DEPT_MEMBER_NAMED, refused["content"]))
    world.press(DESIGN_HEAD, mid, "取消")   # the refused person closes their own form
    from tests.driver import has_submit
    assert not [m for m in world.private_cards(DESIGN_HEAD) if has_submit(m["content"])]   # closed: one line left
    card = world.card(mid)
    rows = next(n for n in card["body"]["elements"] if n.get("tag") == "table" and
                any(c["name"] == "demand" for c in n["columns"]))["rows"]
    assert rows[0]["demand"].startswith("接口需增加")  # conflicts first
    blocked = world.press(TECH_HEAD, mid, "确认清单")
    assert blocked["toast"]["type"] == "error" and fits(texts.S3_NOT_READY, blocked["toast"]["content"])
    assert "冲突" in blocked["toast"]["content"]
    not_lead = world.press(TECH_HEAD, mid, "决定冲突点")["toast"]  # lead only
    assert not_lead["type"] == "error"
    assert not_lead["content"] in (texts.S_ONLY_LEAD, texts.LEAD_ONLY_NAMED.format(name="陈静"))
    world.press(LEAD, mid, "决定冲突点")
    ids = dept_ids(world)
    from tests.driver import walk
    req_id = next(n for n in walk(world.form_of(LEAD)) if n.get("name") == "req")["options"][0]["value"]
    world.submit(LEAD, mid, {"req": req_id, "decision": "加密放第二期，推广按期上线"})
    assert "加密放第二期" in card_text(world.card(mid))
    assert ids
    for who in (LEAD, TECH_DEV):
        assert world.press(who, mid, "确认清单")["toast"]["type"] == "success"
    again = world.press(TECH_HEAD, mid, "确认清单")   # head of 技术部: already confirmed by its 接口人
    assert fits(texts.S3_ALREADY_CONFIRMED, again["toast"]["content"])
    last = world.press(DESIGN_HEAD, mid, "确认清单")
    assert last["toast"]["type"] == "success"
    card = world.card(mid)
    assert card["header"]["template"] == "grey" and not has_button(card, "新增需求")
    with world.state.factory() as s:
        assert s.scalar(select(Case.step)) == 4
        state = s.scalar(select(ArtifactState).where(ArtifactState.artifact == "requirements"))
        assert state.archived_at is not None
        assert {x.artifact_version for x in s.scalars(select(Signoff).where(Signoff.artifact == "requirements"))} \
            == {state.version}
    assert step_entered(4) in world.announced()


@pytest.mark.usefixtures("paced")
def test_change_after_confirmation_needs_new_confirmation(world):
    mid = reach_step3(world)
    submit_inputs(world, mid)
    add_req(world, mid, LEAD, "市场部", "推广页面12月11日前上线")
    world.press(LEAD, mid, "确认清单")
    old = world.card(mid)
    add_req(world, mid, TECH_DEV, "技术部", "需要测试账号", priority="mid")
    stale = world.click(TECH_DEV, mid, value=find_button(old, "确认清单"))
    assert stale["toast"]["content"] == texts.STALE_CARD
    text = card_text(world.card(mid))
    assert "已确认" not in text.split("确认情况")[1]   # the LEAD's confirmation was for the old version
    with world.state.factory() as s:
        assert [(x.artifact_version) for x in s.scalars(select(Signoff).where(Signoff.artifact == "requirements"))] \
            == [2 + 3]  # 3 inputs + 1 requirement after version 1
