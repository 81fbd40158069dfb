"""The plan card is shared: its forms open for the clicker only, so a teammate's view of the
plan does not change while the lead types (and nobody's typing is wiped by someone else)."""
from __future__ import annotations

from bot import texts
from tests.casefactory import fill_plan, make_case_at_step4
from tests.driver import CHAT, DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, has_submit, walk

TASK = {"content": "完成用户数据加密接口开发", "owner": TECH_DEV, "start": "2026-12-08 14:00 +0800",
        "due": "2026-12-10 18:00 +0800", "standard": "12月10日18点前提交测试"}
MODES = (texts.BTN_MODE_TASK, texts.BTN_MODE_RISK, texts.BTN_MODE_NODE, texts.BTN_MODE_DEPENDS)


def _has_form(card: dict) -> bool:
    return any(n.get("tag") == "form" for n in walk(card.get("body", {})))


def _open_plan(world) -> str:
    make_case_at_step4(world.state.factory, now=world.clock.now())
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], texts.BTN_OPEN_PLAN)
    return world.last_card(title_contains="《跨部门协作行动方案》")["message_id"]


def _teammate_view(world) -> list[dict]:
    return [m["content"] for m in world.fake.visible(CHAT, viewer=DESIGN_HEAD)]


def test_the_shared_plan_card_has_no_form_in_any_mode(world):
    plan = _open_plan(world)
    assert fill_plan(world, LEAD, plan, TASK)["toast"]["type"] == "success"
    assert fill_plan(world, LEAD, plan, dict(TASK, content="联调测试"))["toast"]["type"] == "success"
    assert not _has_form(world.card(plan))
    for label in MODES + (texts.BTN_EDIT.format(seq=1),):
        answer = world.press(LEAD, plan, label)
        assert answer["toast"] == {"type": "info", "content": texts.FORM_OPENED_PRIVATELY}, label
        assert "card" not in answer, label                      # the shared card is not replaced
        assert not _has_form(world.card(plan)), label
        assert has_submit(world.form_of(LEAD)), label           # the form is the lead's own
    assert world.private_cards(TECH_HEAD) == []


def test_a_teammates_view_is_unchanged_while_the_lead_types(world):
    plan = _open_plan(world)
    assert fill_plan(world, LEAD, plan, TASK)["toast"]["type"] == "success"
    world.press(DESIGN_HEAD, plan, texts.BTN_MODE_TASK)       # a teammate starts a task of their own
    before = _teammate_view(world)
    # the lead opens every form, is refused (what they typed comes back), warned, and edits
    world.press(LEAD, plan, texts.BTN_MODE_RISK)
    bad = world.submit(LEAD, plan, {"risk": "测试延迟", "likelihood": "很高", "impact": "high", "response": "加班",
                                    "owner": TECH_HEAD}, form_name="plan_risk")
    assert bad["toast"]["content"] == texts.ERR_LEVEL
    world.press(LEAD, plan, texts.BTN_MODE_NODE)
    past = world.submit(LEAD, plan, {"name": "上线", "at": "2026-12-07 12:00 +0800"}, form_name="plan_node")
    assert past["toast"]["type"] == "error"
    world.press(LEAD, plan, texts.BTN_MODE_TASK)
    late = world.submit(LEAD, plan, dict(TASK, content="页面适配", due="2026-12-10 21:00 +0800"),
                        form_name="plan_task")
    assert late["toast"]["type"] == "warning"                  # off hours: asked to confirm, not saved
    world.press(LEAD, plan, texts.BTN_EDIT.format(seq=1))
    assert _teammate_view(world) == before                      # nothing the teammate sees moved
    # the teammate's own form is still there with nothing wiped, and submits once
    ans = world.submit(DESIGN_HEAD, plan, dict(TASK, content="页面适配", owner=DESIGN_HEAD), form_name="plan_task")
    assert ans["toast"]["content"] == texts.TASK_ADDED.format(seq=2), ans
    assert not _has_form(world.card(plan))
    assert "页面适配" in str(world.card(plan))                   # the shared card shows the new task
