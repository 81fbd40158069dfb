"""Closing words are true: 《进度跟踪表》 measures against the baseline (plan version 1) as well as the
current plan, and risks still open when execution ends are named and their owners asked to close them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Case, Risk, Task
from handlers.views import tracking_card_for
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, card_title
from tests.test_steps46_risks import TZ, _setup, _tracking


def _done_all(world, case_id):
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="「新品推广页面延迟」")["message_id"], "更新我的进度")
    with world.state.factory() as s:
        ids = [t.id for t in s.scalars(select(Task).where(Task.case_id == case_id).order_by(Task.seq))
               if t.status != "done"]
    for tid in ids:
        form = world.last_card(title_contains="更新进度")["message_id"]
        world.submit(LEAD, form, {f"s{tid}": "done", f"p{tid}": "100"}, form_name=f"f{tid}")


@pytest.mark.usefixtures("paced")
def test_all_done_on_the_current_plan_but_late_against_the_baseline(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now, tasks=[
        TaskSpec("接口开发", TECH_DEV, now - timedelta(days=3), now - timedelta(days=1)),
        TaskSpec("页面适配", DESIGN_HEAD, now - timedelta(days=3), now - timedelta(days=2)),
        TaskSpec("联调", TECH_HEAD, now - timedelta(days=3), now + timedelta(days=1), status="doing", progress=90)])
    with world.state.factory() as s, s.begin():  # #1 and #2 were moved (approved changes) and done late
        for t in s.scalars(select(Task).where(Task.case_id == case_id)):
            if t.seq in (1, 2):
                t.due_at, t.status, t.progress, t.done_at = now, "done", 100, now - timedelta(hours=1)
    card = card_text(world.card(_tracking(world)))
    assert texts.TRACK_ALL_ON_TRACK not in card
    assert texts.TRACK_VS_BASELINE.format(plan=texts.TRACK_PLAN_ON_TRACK, n=2, seqs="#1、#2") in card
    _done_all(world, case_id)  # the last task, on time
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
    with world.state.factory() as s:  # the final 《进度跟踪表》 (as the presenter draws it in step 6)
        final = card_text(tracking_card_for(s, s.get(Case, case_id), world.clock.now(), TZ))
    assert texts.TRACK_VS_BASELINE.format(plan=texts.TRACK_PLAN_ALL_DONE, n=2, seqs="#1、#2") in final
    assert texts.TRACK_ALL_ON_TRACK not in final


@pytest.mark.usefixtures("paced")
def test_open_risk_at_the_end_is_named_and_its_owner_asked_then_closed_in_step_6(world):
    case_id, risk_id = _setup(world)
    tracking = _tracking(world)  # drawn in step 5, with the 关闭风险 form
    _done_all(world, case_id)
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
    line = texts.EXEC_OPEN_RISK_LINE.format(risk="测试延迟", owner=f"<at id={TECH_HEAD}></at>")
    closing = texts.ALL_TASKS_DONE + "\n" + texts.EXEC_OPEN_RISKS.format(n=1, lines=line)
    # said once, on the step-6 case card (a new message: the owner's @mention notifies), no extra line
    assert closing in _step6_card(world)
    assert not [t for t in world.texts() if texts.ALL_TASKS_DONE in t]
    # the owner closes it from 《进度跟踪表》 after execution ended
    ans = world.submit(TECH_HEAD, tracking, {"risk": str(risk_id), "note": "已解除"}, form_name="risk_close")
    assert ans["toast"] == {"type": "success", "content": texts.RISK_CLOSED.format(risk="测试延迟")}
    with world.state.factory() as s:
        assert s.get(Risk, risk_id).status == "closed"
    world.drain()
    step6 = _step6_card(world)
    assert texts.ALL_TASKS_DONE in step6 and "测试延迟" not in step6      # the card stays true


@pytest.mark.usefixtures("paced")
def test_lead_closing_execution_with_an_open_risk_asks_its_owner(world):
    case_id, _risk_id = _setup(world)
    world.press(LEAD, _tracking(world), "结束执行")
    close = world.last_card(title_contains="结束执行 ·")["message_id"]
    world.submit(LEAD, close, {"reason": "活动已上线"}, form_name="exec_close")
    line = texts.EXEC_OPEN_RISK_LINE.format(risk="测试延迟", owner=f"<at id={TECH_HEAD}></at>")
    expected = texts.EXEC_CLOSED.format(reason="活动已上线") + "\n" + texts.EXEC_OPEN_RISKS.format(n=1, lines=line)
    assert expected in _step6_card(world)
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6


def _step6_card(world) -> str:
    """The text of the live case card the group got on entering step 6."""
    step6 = [m for m in world.cards() if texts.STEP_NAMES[6] in card_text(m["content"])
             and "⑥" in card_text(m["content"]) and "（已更新）" not in card_title(m["content"])]
    assert step6, [card_title(m["content"]) for m in world.cards()]
    return card_text(step6[-1]["content"])
