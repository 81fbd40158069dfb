"""Shared steps for the steps 1–3 tests: open a case, fill the forms, sign, confirm."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, find_button

GOAL_DATE = "2026-12-11 +0800"   # the test clock is 2026-12-08 09:00 Shanghai

CONSENSUS_FORM: dict[str, Any] = {
    "title": "新品推广页面延迟",
    "background": "市场部原计划本周上线新品推广页面",
    "current_state": "技术部未完成接口对接",
    "impact": "推广活动延迟3天，预计影响客流5000人次",
    "goal": "3天内完成页面对接，保证推广活动按期上线",
    "goal_date": GOAL_DATE,
    "expected_outcome": "推广页面12月11日前上线",
    "dept1_name": "市场部", "dept1_head": LEAD,
    "dept2_name": "技术部", "dept2_head": TECH_HEAD,
    "dept3_name": "设计部", "dept3_head": DESIGN_HEAD,
}
HEADS = (LEAD, TECH_HEAD, DESIGN_HEAD)


def pace(world) -> None:
    """Each event's sends start a fresh second of manual time: the fake Open API, like Feishu,
    refuses more than 5 messages per second in one chat, and the ManualClock never moves alone."""
    drain = world.drain

    def paced_drain() -> None:
        world.clock.advance(timedelta(seconds=1.5))
        drain()

    world.drain = paced_drain




def open_case(world, title: str = "新品推广页面延迟", user: str = LEAD) -> str:
    """`/问题 标题` → the message id of the step-1 form."""
    world.say(user, f"/问题 {title}")
    return world.last_card(title_contains="新建协作问题")["message_id"]


def fill_consensus(world, form_mid: str, user: str = LEAD, **changes: Any) -> dict:
    return world.submit(user, form_mid, {**CONSENSUS_FORM, **changes})


def sign(world, user: str, mid: str) -> dict:
    return world.press(user, mid, "签字确认")


def reach_step2(world) -> str:
    """Open, fill and sign step 1; returns the consensus table message id."""
    mid = open_case(world)
    fill_consensus(world, mid)
    for head in HEADS:
        sign(world, head, mid)
    return mid


def team_card_mid(world) -> str:
    case_mid = world.last_card(title_contains="「")["message_id"]
    world.press(LEAD, case_mid, "填写分工")
    return world.last_card(title_contains="协作小组分工表")["message_id"]


def dept_ids(world) -> dict[str, int]:
    from sqlalchemy import select

    from bot.models import Department
    with world.state.factory() as s:
        return {d.name: d.id for d in s.scalars(select(Department))}


def set_contacts(world, mid: str, user: str = LEAD, **override: Any) -> dict:
    """市场部 陈静 (core), 技术部 刘洋 (core), 设计部 王芳 (support) as 接口人."""
    ids = dept_ids(world)
    world.press(user, mid, "设置部门与接口人")
    form = {f"kind_{ids['市场部']}": "core", f"contact_{ids['市场部']}": LEAD,
            f"kind_{ids['技术部']}": "core", f"contact_{ids['技术部']}": TECH_DEV,
            f"kind_{ids['设计部']}": "support", f"contact_{ids['设计部']}": DESIGN_HEAD}
    form.update(override)
    return world.submit(user, mid, form)


def reach_step3(world) -> str:
    """Steps 1 and 2 done; returns the message id of 《需求确认清单》."""
    reach_step2(world)
    mid = team_card_mid(world)
    set_contacts(world, mid)
    world.press(LEAD, mid, "确认分工表")
    case_mid = world.last_card(title_contains="「")["message_id"]
    world.press(LEAD, case_mid, "查看需求确认清单")
    return world.last_card(title_contains="需求确认清单")["message_id"]


INPUTS = {
    LEAD: {"resources": "设计稿和接口功能清单", "constraints": "推广档期不能晚于12月12日",
           "demands": "接口12月10日前可联调"},
    TECH_DEV: {"resources": "可抽调2人开发接口，需2天", "constraints": "人力紧张", "demands": "市场部提供测试账号"},
    DESIGN_HEAD: {"resources": "1名设计师", "constraints": "本周还有其他项目", "demands": "12月9日前确认需求"},
}


def submit_inputs(world, mid: str) -> None:
    for who, form in INPUTS.items():
        world.press(who, mid, "提交本部门信息")
        world.submit(who, mid, form)


def has_button(card: dict, label: str) -> bool:
    try:
        find_button(card, label)
    except AssertionError:
        return False
    return True


def text_of(world, mid: str) -> str:
    return card_text(world.card(mid))


__all__ = ["pace", "CONSENSUS_FORM", "HEADS", "GOAL_DATE", "open_case", "fill_consensus", "sign",
           "reach_step2", "team_card_mid", "dept_ids", "set_contacts", "reach_step3", "INPUTS", "submit_inputs",
           "has_button", "text_of", "TECH_DEV"]
