"""Stale clicks, in one place (bot.dispatch): a button that acts on what its card showed carries
that version; when the content changed meanwhile the clicker gets the current card and nothing
happens — in every step, whoever changed it. The registry is enumerated: every action either is
version-checked, and then a stale click on it is tried, or is named below with why it needs none."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.actions import ActionValue, to_name
from bot.models import Base, Case, Task, TaskUpdate
from bot.routing import Ctx
from bot.workflow import Step
from cards.rules import validate_card
from handlers import build_router
from tests.casefactory import (
    add_tasks,
    default_tasks,
    fill_retro,
    make_case_at_step4,
    make_plan_published,
    make_retro,
    open_retro_card,
    retro_case_card,
)
from tests.driver import CHAT, DESIGN_HEAD, LEAD, TECH_DEV, TENANT, find_button
from tests.test_steps13_support import fill_consensus, open_case, reach_step2, reach_step3

# Actions whose buttons need no version, and why: they open a form or show something (they never
# act on what their card showed), save what the clicker typed (a form holds every field it saves,
# and a repeated add is recognised: test_add_task_and_card_snapshots, test_forms_edges), or act on
# one row whose own state refuses a repeat (a decided change request, a closed risk, a removed row,
# a confirmed node, a case no longer in step 5 or already ended).
OPENS_OR_SHOWS = {
    "archive.view", "case.end_open", "change.mode", "change.open", "consensus.open", "consensus.view",
    "exec.close_open", "plan.edit", "plan.mode", "plan.open", "req.form_add", "req.form_input", "req.form_resolve",
    "req.open", "req.view", "retro.edit", "retro.fill", "retro.open", "team.form_depts", "team.form_item",
    "team.form_lead", "team.form_member", "team.open", "team.view", "track.open", "track.show",
}
SAVES_WHAT_WAS_TYPED = {
    "change.submit", "consensus.submit", "plan.depends", "plan.node", "plan.risk", "plan.task",
    "req.save_add", "req.save_input", "req.save_resolve", "retro.add", "team.save_depts", "team.save_item",
    "team.save_lead", "team.save_member", "template.save",
}
ROW_STATE_REFUSES_A_REPEAT = {
    "case.end", "change.approve", "change.reject", "exec.close", "keynode.ok", "retro.delete", "risk.close",
    "standup.same", "team.remove_item", "team.remove_member",
}
SWITCHES = {"ftasks.on", "ftasks.off", "board.on", "board.off"}   # turning a sync on twice is turning it on


def test_every_action_is_version_checked_or_needs_none():
    router = build_router()
    unversioned = OPENS_OR_SHOWS | SAVES_WHAT_WAS_TYPED | ROW_STATE_REFUSES_A_REPEAT | SWITCHES
    assert not set(router.versioned) & unversioned
    assert set(router.actions) - set(router.versioned) == unversioned, "classify the new action here"
    assert set(router.versioned) <= set(router.actions)


def test_every_acting_button_is_versioned_for_its_step():
    versioned = build_router().versioned
    assert {name: spec.step.name for name, spec in versioned.items()} == {
        "consensus.edit": "CONSENSUS", "consensus.sign": "CONSENSUS", "consensus.object": "CONSENSUS",
        "team.confirm": "TEAM", "req.confirm": "REQUIREMENTS",
        "plan.publish": "PLAN", "plan.del_task": "PLAN", "plan.del_risk": "PLAN", "plan.del_node": "PLAN",
        "plan.carry": "PLAN", "track.update": "EXECUTION", "retro.finalise": "RETRO",
    }


def _case_in(world, step: Step) -> tuple[int, int | None]:
    """A case of the group in `step` with content its buttons act on: (case id, a task id in steps 4–6)."""
    now = world.clock.now()
    if step == Step.CONSENSUS:
        fill_consensus(world, open_case(world))
    elif step == Step.TEAM:
        reach_step2(world)
    elif step == Step.REQUIREMENTS:
        reach_step3(world)
    else:
        case_id = make_case_at_step4(world.state.factory, now=now)
        if step == Step.PLAN:
            return case_id, add_tasks(world.state.factory, case_id, default_tasks(now), now=now)[0]
        task = make_plan_published(world.state.factory, case_id, now=now)[0]
        if step == Step.RETRO:
            make_retro(world.state.factory, case_id, now=now)
            fill_retro(world, TECH_DEV, open_retro_card_mid(world), {"kind": "success", "content": "站会有效"})
        return case_id, task
    with world.state.factory() as s:
        return s.scalar(select(Case.id)), None


def open_retro_card_mid(world) -> str:
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], texts.BTN_OPEN_RETRO)
    return world.last_card(title_contains="复盘")["message_id"]


def _domain_rows(world) -> dict[str, list[str]]:
    """Every row of every table but the delivery bookkeeping (inbox, outbox, which card a message shows)."""
    skip = {"inbox_events", "outbox", "posted_cards"}
    with world.state.factory() as s:
        return {t.name: sorted(repr(tuple(r)) for r in s.execute(select(t)))
                for t in Base.metadata.sorted_tables if t.name not in skip}


@pytest.mark.usefixtures("paced")
@pytest.mark.parametrize("action", sorted(build_router().versioned))
def test_a_stale_click_on_any_versioned_button_shows_the_current_card_and_changes_nothing(world, action):
    router = world.state.dispatcher.router
    spec = router.versioned[action]
    case_id, task_id = _case_in(world, spec.step)
    actor = TECH_DEV if action == "track.update" else LEAD   # the task's owner; else the lead
    world.say(LEAD, "/进度")
    mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    probe = ActionValue(action, case_id=case_id, row_id=task_id)

    def drawn() -> tuple[dict, int]:
        """The card the button is on, as drawn now, and the version it carries."""
        with world.state.factory() as s, s.begin():
            ctx = Ctx(session=s, now=world.clock.now(), tz=ZoneInfo("Asia/Shanghai"), tenant_key=TENANT,
                      chat_id=CHAT, actor=actor, event_id="drawn", registry=router)
            case = s.get(Case, case_id)
            assert case.step == spec.step
            return spec.card(ctx, case, probe), spec.current(s, case, probe)

    card, current = drawn()
    stale = ActionValue(action, case_id=case_id, row_id=task_id, version=current + 1)
    before = _domain_rows(world)
    answer = world.click(actor, mid, value=stale.dump(), form={f"s{task_id}": "done", f"p{task_id}": "100"})
    assert answer["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert _domain_rows(world) == before
    assert answer["card"]["data"] == card == drawn()[0]


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
    case_id, mid = retro_case_card(world)
    answer = world.click(LEAD, mid, value=ActionValue("retro.finalise", case_id=case_id).dump())
    assert answer["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert _step(world, case_id) == 6


def test_a_stale_update_form_whose_tasks_are_all_done_gets_a_card_not_an_empty_one(world):
    """The lead finished the owner's only task meanwhile: the owner's old form has nothing left to
    update, and the answer still is a card (the group's 《进度跟踪表》 as it is now)."""
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, _t2 = make_plan_published(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    case_mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    world.press(TECH_DEV, case_mid, texts.BTN_UPDATE_MINE)
    owner_form = world.last_card(title_contains="更新进度")
    world.press(LEAD, case_mid, texts.BTN_UPDATE_MINE)
    lead_form = world.last_card(title_contains="更新进度")
    done = world.submit(LEAD, lead_form["message_id"], {f"s{t1}": "done", f"p{t1}": "100"}, form_name=f"f{t1}")
    assert done["toast"]["type"] == "success", done
    stale = world.click(TECH_DEV, owner_form["message_id"], form={f"s{t1}": "doing", f"p{t1}": "20"},
                        name=to_name(ActionValue("track.update", case_id=case_id, version=0, row_id=t1)))
    assert stale["toast"] == {"type": "warning", "content": texts.STALE_CARD}
    assert stale["card"]["data"].get("body"), stale
    spec = world.state.dispatcher.router.versioned["track.update"]
    with world.state.factory() as s:
        assert s.get(Task, t1).progress == 100
        ctx = Ctx(session=s, now=world.clock.now(), tz=ZoneInfo("Asia/Shanghai"), tenant_key=TENANT, chat_id=CHAT,
                  actor=TECH_DEV, event_id="e", registry=world.state.dispatcher.router)
        current = spec.card(ctx, s.get(Case, case_id), ActionValue("track.update", case_id=case_id, row_id=t1))
    assert current.get("body") and validate_card(current) == []
