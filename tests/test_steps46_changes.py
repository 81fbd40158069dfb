"""Step 5 — /调整 change requests (approve, reject, new plan version, diff) and closing execution."""
from datetime import timedelta

from sqlalchemy import select

from bot.models import Case, ChangeRequest, PlanVersion, StepLog, Task
from tests.cardsnap import assert_snapshot
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, walk


def setup(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    ids = make_plan_published(world.state.factory, case_id, now=now)
    return case_id, ids


def change_form(world, user=TECH_DEV):
    world.clock.advance(timedelta(seconds=5))  # people do not type six commands a second (the fake limits 5/s)
    world.say(user, "/调整")
    return world.last_card(title_contains="调整申请 · ")["message_id"]


def task(world, task_id):
    with world.state.factory() as s:
        return s.get(Task, task_id)


def test_change_approved_creates_version_with_diff(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world)
    assert_snapshot("steps46_change_form_edit", world.card(mid))
    bad = world.submit(TECH_DEV, mid, {"task": str(t1), "due": "2026-12-11 18:00 +0800"}, form_name="change_edit")
    assert bad["toast"]["content"] == "请填写调整原因。"
    due = next(n for n in walk(bad["card"]["data"]) if n.get("name") == "due")
    assert due["initial_datetime"] == "2026-12-11 18:00"
    ans = world.submit(TECH_DEV, mid, {"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "加密方案变更",
                                       "retro_note": "复盘会：顺延1天"}, form_name="change_edit")
    assert ans["toast"]["content"] == "已提交调整申请，等待协作组长审批。"
    assert_snapshot("steps46_change_request_pending", world.card(mid))
    assert any(f'<at user_id="{LEAD}"></at> 请审批调整申请 #1' in t for t in world.texts())
    # only the lead decides
    assert world.press(TECH_HEAD, mid, "批准")["toast"]["content"] == "只有协作组长可以执行此操作。"
    ans = world.press(LEAD, mid, "批准")
    assert ans["toast"]["content"] == "已批准调整申请 #1，方案更新为版本 2。"
    assert task(world, t1).due_at.isoformat() == "2026-12-11T10:00:00+00:00"
    with world.state.factory() as s:
        versions = s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id).order_by(PlanVersion.version)).all()
        assert [(v.version, v.reason) for v in versions] == [(1, ""), (2, "加密方案变更")]
        assert versions[1].change_request_id is not None
    diff = world.last_card(title_contains="版本 2")["content"]
    assert_snapshot("steps46_plan_diff", diff)
    text = card_text(diff)
    assert "#1 完成用户数据加密接口开发：截止 12-10 09:00 → 12-11 18:00" in text
    assert f"<at id={TECH_DEV}></at>" in text and "复盘会：顺延1天" in text
    # the second click on the same card changes nothing
    again = world.click(LEAD, mid, value={"a": "change.approve", "c": case_id, "r": versions[1].change_request_id})
    assert again["toast"]["content"] == "这条调整申请已批准，无需重复操作。"
    with world.state.factory() as s:
        assert len(s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()) == 2


def test_change_rejected_keeps_plan(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world, DESIGN_HEAD)
    world.press(DESIGN_HEAD, mid, "取消任务")
    world.submit(DESIGN_HEAD, mid, {"task": str(t2), "reason": "页面不再需要适配"}, form_name="change_drop")
    ans = world.press(LEAD, mid, "驳回")
    assert ans["toast"]["content"] == "已驳回调整申请 #1。"
    assert not task(world, t2).dropped
    assert any(f'<at user_id="{DESIGN_HEAD}"></at> 你的调整申请 #1' in t for t in world.texts())
    assert_snapshot("steps46_change_request_rejected", world.card(mid))
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.status)) == "rejected"
        assert len(s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()) == 1


def test_new_task_and_owner_change(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world, LEAD)
    world.press(LEAD, mid, "新增任务")
    bad = world.submit(LEAD, mid, {"content": "紧急推广功能", "owner": TECH_HEAD, "start": "2026-12-09 09:00 +0800",
                                   "due": "2026-12-09 08:00 +0800", "standard": "功能上线", "reason": "竞品提前发布"},
                       form_name="change_add")
    assert "截止时间必须晚于开始时间" in bad["toast"]["content"]
    world.submit(LEAD, mid, {"content": "紧急推广功能", "owner": TECH_HEAD, "start": "2026-12-09 09:00 +0800",
                             "due": "2026-12-10 12:00 +0800", "standard": "功能上线", "reason": "竞品提前发布"},
                 form_name="change_add")
    world.press(LEAD, mid, "批准")
    with world.state.factory() as s:
        new = s.scalar(select(Task).where(Task.case_id == case_id, Task.content == "紧急推广功能"))
        assert new.seq == 3 and new.owner_open_id == TECH_HEAD
    assert "#3 紧急推广功能：新增" in card_text(world.last_card(title_contains="版本 2")["content"])
    mid = change_form(world, LEAD)
    world.submit(LEAD, mid, {"task": str(t2), "owner": TECH_DEV, "reason": "设计部人手不足"}, form_name="change_edit")
    world.press(LEAD, mid, "批准")
    assert task(world, t2).owner_open_id == TECH_DEV
    text = card_text(world.last_card(title_contains="版本 3")["content"])
    assert f"负责人 <at id={DESIGN_HEAD}></at> → <at id={TECH_DEV}></at>" in text
    assert "#3 紧急推广功能：新增" in text  # differences are against the baseline


def test_outsider_cannot_request_changes(world):
    setup(world)
    world.say(OUTSIDER, "/调整")
    assert any("协作小组的成员" in t for t in world.texts())


def test_lead_closes_execution_with_reason(world):
    case_id, _ = setup(world)
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    track = world.last_card(title_contains="《进度跟踪表》")["message_id"]
    assert world.press(TECH_DEV, track, "结束执行")["toast"]["content"] == "只有协作组长可以执行此操作。"
    world.press(LEAD, track, "结束执行")
    mid = world.last_card(title_contains="结束执行")["message_id"]
    assert_snapshot("steps46_close_execution", world.card(mid))
    assert world.submit(LEAD, mid, {"reason": " "})["toast"]["content"] == "请填写结束执行的原因。"
    world.submit(LEAD, mid, {"reason": "推广活动已上线，剩余优化转入常规迭代"})
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
        log = s.scalar(select(StepLog).where(StepLog.case_id == case_id, StepLog.step == 6))
        assert log.reason == "推广活动已上线，剩余优化转入常规迭代"
