"""Stale clicks, in one place (bot.dispatch): a button that acts on what its card showed carries
that version; when the content changed meanwhile the clicker gets the current card and nothing
happens — in every step, whoever changed it."""
from __future__ import annotations

from sqlalchemy import func, select

from bot import texts
from bot.actions import ActionValue, to_name
from bot.models import Case, TaskUpdate
from handlers import build_router
from tests.casefactory import fill_retro, make_case_at_step4, make_plan_published, make_retro, open_retro_card
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, find_button


def test_every_acting_button_is_versioned_for_its_step():
    versioned = build_router().versioned
    assert {name: spec.step.name for name, spec in versioned.items()} == {
        "consensus.edit": "CONSENSUS", "consensus.sign": "CONSENSUS", "consensus.object": "CONSENSUS",
        "team.confirm": "TEAM", "req.confirm": "REQUIREMENTS",
        "plan.publish": "PLAN", "plan.del_task": "PLAN", "plan.del_risk": "PLAN", "plan.del_node": "PLAN",
        "plan.carry": "PLAN", "track.update": "EXECUTION", "retro.finalise": "RETRO",
    }


def _count(world, model) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def _step(world, case_id) -> int:
    with world.state.factory() as s:
        return s.get(Case, case_id).step


def test_finalising_a_report_that_gained_entries_shows_them_first(world):
    case_id, mid = open_retro_card(world)
    fill_retro(world, TECH_DEV, mid, {"kind": "success", "content": "每日站会让滞后提前暴露"})
    seen_by_lead = world.card(mid)
    fill_retro(world, DESIGN_HEAD, mid, {"kind": "weakness", "content": "设计稿晚到"})
    answer = world.click(LEAD, mid, value=find_button(seen_by_lead, texts.BTN_RETRO_FINALISE))
    assert answer["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert "设计稿晚到" in str(answer["card"]["data"])
    assert _step(world, case_id) == 6   # not finalised on what the lead had not seen
    answer = world.click(LEAD, mid, value=find_button(world.card(mid), texts.BTN_RETRO_FINALISE))
    assert answer["toast"]["content"] == texts.RETRO_FINALISED
    assert _step(world, case_id) == 7


def test_an_update_form_for_a_task_someone_else_updated_is_refreshed_not_saved(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, _t2 = make_plan_published(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    case_mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    world.press(TECH_DEV, case_mid, "更新我的进度")
    owner_form = world.last_card(title_contains="更新进度")
    world.press(LEAD, case_mid, "更新我的进度")
    lead_form = world.last_card(title_contains="更新进度")
    saved = world.submit(LEAD, lead_form["message_id"], {f"s{t1}": "doing", f"p{t1}": "50"}, form_name=f"f{t1}")
    assert saved["toast"]["content"] == texts.TASK_UPDATED.format(seq=1, status="进行中", progress=50)
    # the owner still has the form drawn before the lead's update
    stale = world.click(TECH_DEV, owner_form["message_id"], form={f"s{t1}": "doing", f"p{t1}": "20"},
                        name=to_name(ActionValue("track.update", case_id=case_id, version=0, row_id=t1)))
    assert stale["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert "50" in str(stale["card"]["data"])
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(TaskUpdate).where(TaskUpdate.task_id == t1)) == 1


def test_a_button_without_a_version_counts_as_stale(world):
    """Cards drawn before buttons carried versions cannot act on content their reader never saw."""
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    make_retro(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    answer = world.click(LEAD, mid, value=ActionValue("retro.finalise", case_id=case_id).dump())
    assert answer["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert _step(world, case_id) == 6
