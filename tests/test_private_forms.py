"""Forms are private (仅对你可见) and the cards in the group stay true, with four 接口人 at once."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Department, DepartmentInput, PostedCard
from tests.driver import (
    CHAT,
    DESIGN_HEAD,
    LEAD,
    OUTSIDER,
    TECH_DEV,
    TECH_HEAD,
    card_text,
    card_title,
    walk,
)
from tests.racing import submit_private_forms_at_once
from tests.test_steps13_support import dept_ids, fill_consensus, open_case, sign, team_card_mid

TEST_HEAD = OUTSIDER   # 测试部 赵强, head and 接口人
CONTACTS = {"市场部": LEAD, "技术部": TECH_DEV, "设计部": DESIGN_HEAD, "测试部": TEST_HEAD}
TYPED = {
    LEAD: {"resources": "设计稿和接口功能清单", "constraints": "推广档期不能晚于12月12日",
           "demands": "接口12月10日前可联调"},
    TECH_DEV: {"resources": "可抽调2人开发接口，需2天", "constraints": "人力紧张", "demands": "市场部提供测试账号"},
    DESIGN_HEAD: {"resources": "1名设计师", "constraints": "本周还有其他项目", "demands": "12月9日前确认需求"},
    TEST_HEAD: {"resources": "1名测试，可加班一晚", "constraints": "测试环境周三才有", "demands": "12月10日中午前提测"},
}


def _has_form(card: dict) -> bool:
    return any(n.get("tag") == "form" for n in walk(card.get("body", {})))


def _reach_step3_with_four(world) -> str:
    mid = open_case(world)
    fill_consensus(world, mid, dept4_name="测试部", dept4_head=TEST_HEAD)
    for head in (LEAD, TECH_HEAD, DESIGN_HEAD, TEST_HEAD):
        sign(world, head, mid)
    team = team_card_mid(world)
    ids = dept_ids(world)
    world.press(LEAD, team, "设置部门与接口人")
    form = {}
    for name, who in CONTACTS.items():
        form[f"kind_{ids[name]}"] = "core"
        form[f"contact_{ids[name]}"] = who
    world.submit(LEAD, team, form)
    world.press(LEAD, team, "确认分工表")
    case_mid = world.last_card(title_contains="「")["message_id"]
    world.press(LEAD, case_mid, "查看需求确认清单")
    return world.last_card(title_contains="需求确认清单")["message_id"]


@pytest.mark.usefixtures("paced")
def test_four_contacts_fill_step3_at_once_privately(world):
    reqs = _reach_step3_with_four(world)
    shared_before = world.card(reqs)
    ids = {name: str(i) for name, i in dept_ids(world).items()}

    # all four open their form from the one shared card; each gets a private form, pre-filled
    forms = {}
    for who in TYPED:
        answer = world.press(who, reqs, "提交本部门信息")
        assert answer["toast"] == {"type": "info", "content": texts.FORM_OPENED_PRIVATELY}, who
        assert "card" not in answer, who                        # the shared card is not replaced
        mine = [m for m in world.private_cards(who) if _has_form(m["content"])]
        assert len(mine) == 1, who
        forms[who] = mine[0]
        dept_select = next(n for n in walk(mine[0]["content"]) if n.get("name") == "dept")
        own = next(name for name, w in CONTACTS.items() if w == who)
        assert dept_select.get("initial_option") == ids[own], who   # their own department, nobody else's
    assert world.card(reqs) == shared_before                    # nobody's form in the shared card
    for who in TYPED:                                           # nobody sees anyone else's form
        open_ = {m["message_id"] for m in world.private_cards(who) if _has_form(m["content"])}
        assert open_ == {forms[who]["message_id"]}, who
    assert not any(m["visible_to"] for m in world.messages())   # the group's view has no private card

    # all four submit at the same moment (threads on the real database), each once
    answers = submit_private_forms_at_once(world, forms, TYPED)

    for who, answer in answers.items():
        own = next(name for name, w in CONTACTS.items() if w == who)
        assert answer.toast == texts.S3_INPUT_SAVED.format(dept=own), (who, answer.toast)   # nobody refused
        result = world.card(forms[who]["message_id"])
        assert not _has_form(result) and card_title(result) == answer.toast, who   # one line for that person
    with world.state.factory() as s:
        names = {d.id: d.name for d in s.scalars(select(Department))}
        saved = {names[r.department_id]: (r.resources, r.constraints, r.demands)
                 for r in s.scalars(select(DepartmentInput))}
    for who, typed in TYPED.items():                           # nothing anyone typed is lost
        own = next(name for name, w in CONTACTS.items() if w == who)
        assert saved[own] == (typed["resources"], typed["constraints"], typed["demands"]), who
    shared = card_text(world.card(reqs))                       # the shared card shows all four, patched
    for typed in TYPED.values():
        assert typed["demands"] in shared
    assert not _has_form(world.card(reqs)) or world.card(reqs) != shared_before


@pytest.mark.usefixtures("paced")
def test_old_cards_point_to_the_current_one_after_each_step(world):
    """After each step change every case card still in the chat is the current one or says it
    was superseded, and no archived output keeps a live button."""
    reqs = _reach_step3_with_four(world)
    with world.state.factory() as s:
        posted = list(s.scalars(select(PostedCard.message_id).where(PostedCard.view == "case")
                                .order_by(PostedCard.id)))
    assert len(posted) >= 3                                     # one per step so far, older ones shrunk
    *old, current = [{"content": world.card(mid)} for mid in posted]
    for m in old:
        assert card_title(m["content"]) == texts.SUPERSEDED_TITLE.format(name=texts.CARD_VIEW_NAMES["case"])
        assert not any(n.get("tag") == "button" for n in walk(m["content"].get("body", {})))
    assert "▶ ③" in card_text(current["content"])
    # the step-2 team table, now archived, has no live buttons
    team = world.last_card(title_contains="协作小组分工表")
    assert not any(n.get("tag") == "button" for n in walk(team["content"].get("body", {}))), card_text(team["content"])
    with world.state.factory() as s:
        assert s.scalar(select(PostedCard.id).where(PostedCard.message_id == reqs)) is not None


def test_fake_ephemeral_has_documented_shape(world):
    fake = world.fake
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "x"}]}}
    ok = fake.handle(_req(world, "/open-apis/ephemeral/v1/send",
                          {"chat_id": CHAT, "open_id": LEAD, "msg_type": "interactive", "card": card}))
    body = ok.json()
    assert body["code"] == 0 and body["data"]["message_id"].startswith("om_")
    mid = body["data"]["message_id"]
    assert [m["message_id"] for m in fake.visible(CHAT, viewer=LEAD) if m["visible_to"]] == [mid]
    assert all(m["message_id"] != mid for m in fake.visible(CHAT))          # the group does not see it
    patched = fake.handle(_req(world, f"/open-apis/im/v1/messages/{mid}", {"content": "{}"}, method="PATCH"))
    assert patched.json()["code"] != 0                                       # not updatable by PATCH
    bad = fake.handle(_req(world, "/open-apis/ephemeral/v1/send",
                           {"chat_id": CHAT, "open_id": LEAD, "msg_type": "text", "card": card}))
    assert bad.status_code == 400 and bad.json()["code"] != 0
    gone = fake.handle(_req(world, "/open-apis/ephemeral/v1/delete", {"message_id": mid}))
    assert gone.json()["code"] == 0
    again = fake.handle(_req(world, "/open-apis/ephemeral/v1/delete", {"message_id": mid}))
    assert again.json()["code"] == 18051                                     # 消息已删除


def _req(world, path: str, body: dict, method: str = "POST"):
    import httpx

    token = world.fake.handle(httpx.Request("POST", "http://fake/open-apis/auth/v3/tenant_access_token/internal",
                                            json={"app_id": world.fake.app_id,
                                                  "app_secret": world.fake.app_secret})).json()
    return httpx.Request(method, f"http://fake{path}", json=body,
                         headers={"Authorization": f"Bearer {token['tenant_access_token']}"})


@pytest.mark.usefixtures("paced")
def test_add_requirement_opens_on_the_clickers_department(world):
    reqs = _reach_step3_with_four(world)
    ids = {name: str(i) for name, i in dept_ids(world).items()}
    for who, dept in ((TECH_DEV, "技术部"), (TEST_HEAD, "测试部")):
        world.press(who, reqs, "新增需求")
        form = world.form_of(who)
        picked = next(n for n in walk(form) if n.get("name") == "dept")
        assert picked.get("initial_option") == ids[dept], who
