"""Edges of the quicker forms: a double submit of several retrospective lines adds them once; a
forged confirmation token on a form button is refused without a 500 and changes nothing."""
from sqlalchemy import select

from bot import texts
from bot.models import RetroEntry, Task
from tests.casefactory import fill_retro, open_retro_card
from tests.driver import LEAD, TECH_DEV, find_submit, has_submit
from tests.test_steps46_plan import TASK, open_plan


def test_several_retro_lines_twice_are_added_once(world):
    _case_id, mid = open_retro_card(world, TECH_DEV)
    form = {"add_success": "每日站会让滞后提前暴露\n\n每日站会让滞后提前暴露", "add_improve": "建立需求变更评审流程"}
    first = fill_retro(world, TECH_DEV, mid, form)
    assert first["toast"]["content"] == texts.RETRO_MULTI_ADDED.format(n=2, kinds="成功经验 1 · 改进方向 1")
    again = fill_retro(world, TECH_DEV, mid, form)   # the same lines once more
    assert again["toast"] == {"type": "info", "content": texts.RETRO_DUPLICATE}
    with world.state.factory() as s:
        contents = sorted(e.content for e in s.scalars(select(RetroEntry)))
        assert contents == ["建立需求变更评审流程", "每日站会让滞后提前暴露"]
    empty = fill_retro(world, TECH_DEV, mid, {"add_success": "  \n "})
    assert empty["toast"] == {"type": "error", "content": texts.RETRO_NEED_CONTENT}


def test_a_forged_confirmation_changes_nothing(world):
    case_id, mid = open_plan(world)
    late = dict(TASK, due="2026-12-10 21:00 +0800")
    assert world.submit(LEAD, mid, late, form_name="plan_task")["toast"]["type"] == "warning"
    form_mid = world.private_with(LEAD, lambda c: has_submit(c, "plan_task"))   # the lead's own form
    name = find_submit(world.card(form_mid), "plan_task")
    assert name.count("~") == 4                                      # the token rides in the button name
    for forged in (name.rsplit("~", 1)[0] + "~" + "0" * 12, name + "~x", name.rsplit("~", 1)[0] + "~<at>"):
        ans = world.click(LEAD, form_mid, form=late, name=forged)
        assert ans.get("toast", {}).get("type") != "success", (forged, ans)
    with world.state.factory() as s:
        assert s.scalars(select(Task).where(Task.case_id == case_id)).all() == []
