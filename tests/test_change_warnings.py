"""/调整 that moves a deadline outside working hours or past a dependent task's start is a warning the
requester confirms; on approval the dependent task's owner is told, in the new version's card."""
from datetime import timedelta

from bot import texts
from bot.models import Task
from cards import kit
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, card_text, walk
from tests.test_steps46_changes import approve, change_form, request_card


def _setup(world) -> tuple[int, int]:
    now = world.clock.now()      # Tue 2026-12-08 09:00 Shanghai
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, t2 = make_plan_published(world.state.factory, case_id, now=now, tasks=[
        TaskSpec("接口开发", TECH_DEV, now, now + timedelta(hours=33), "提交测试"),                 # Wed 18:00
        TaskSpec("联调测试", DESIGN_HEAD, now + timedelta(days=2), now + timedelta(days=2, hours=9), "测试通过")])
    with world.state.factory() as s, s.begin():
        s.get(Task, t2).depends_on_id = t1                                                       # 「#2 依赖 #1」
    return t1, t2


def _submit_button(card: dict) -> dict:
    return next(n for n in walk(card) if n.get("form_action_type") == "submit")


def test_breaking_a_dependency_warns_then_files_and_tells_the_dependent_owner(world):
    t1, t2 = _setup(world)
    mid = change_form(world)
    form = {"task": str(t1), "due": "2026-12-10 12:00 +0800", "reason": "加密方案变更"}
    ans = world.submit(TECH_DEV, mid, form, form_name="change_edit")
    warning = texts.WARN_BREAKS_DEPENDENCY.format(seq=1, due="12-10 12:00", other=2, content="联调测试",
                                                  start="12-10 09:00")
    assert ans["toast"] == {"type": "warning", "content": warning}, ans
    assert not [t for t in world.texts() if "调整申请" in t and "#1" in t]          # nothing filed yet
    card = ans["card"]["data"]
    assert kit.esc(warning) in card_text(card)
    assert _submit_button(card)["text"]["content"] == texts.BTN_SUBMIT_ANYWAY
    filed = world.submit(TECH_DEV, mid, form, form_name="change_edit")
    assert filed["toast"]["content"] == texts.CHANGE_SUBMITTED, filed
    assert approve(world, LEAD, request_card(world, 1))["toast"]["type"] == "success"
    diff = card_text(world.last_card(title_contains="版本 2")["content"])
    told = texts.DEPENDENT_NOTICE.format(owner=kit.at(DESIGN_HEAD), dep=2, dep_content="联调测试", seq=1,
                                         due="12-10 12:00", start="12-10 09:00")
    assert told in diff and diff.count(kit.at(DESIGN_HEAD)) == 1, diff


def test_a_deadline_outside_working_hours_warns(world):
    t1, _t2 = _setup(world)
    mid = change_form(world)
    form = {"task": str(t1), "due": "2026-12-09 21:00 +0800", "reason": "晚上加班完成"}
    ans = world.submit(TECH_DEV, mid, form, form_name="change_edit")
    assert ans["toast"] == {"type": "warning", "content": texts.WARN_DUE_OFF_HOURS.format(
        what=texts.WARN_TASK_WHAT.format(seq=1), at="12-09 21:00")}
    # a deadline inside working hours is filed at once
    assert world.submit(TECH_DEV, mid, dict(form, due="2026-12-09 17:00 +0800"),
                        form_name="change_edit")["toast"]["content"] == texts.CHANGE_SUBMITTED


def test_a_move_that_keeps_the_dependency_is_filed_at_once_and_the_owner_still_hears(world):
    t1, _t2 = _setup(world)
    mid = change_form(world)
    ans = world.submit(TECH_DEV, mid, {"task": str(t1), "due": "2026-12-09 17:00 +0800", "reason": "提前完成"},
                       form_name="change_edit")
    assert ans["toast"]["content"] == texts.CHANGE_SUBMITTED
    approve(world, LEAD, request_card(world, 1))
    diff = card_text(world.last_card(title_contains="版本 2")["content"])
    assert texts.DEPENDENT_MOVED.format(owner=kit.at(DESIGN_HEAD), dep=2, dep_content="联调测试", seq=1,
                                        due="12-09 17:00", start="12-10 09:00") in diff
