"""Step 4 — drafting and publishing 《跨部门协作行动方案》 through cards."""
from sqlalchemy import select

from bot import texts
from bot.models import ActionItem, Case, PlanVersion, Task
from tests.cardsnap import assert_snapshot
from tests.casefactory import fill_plan, make_case_at_step4
from tests.driver import (
    DESIGN_HEAD,
    LEAD,
    OUTSIDER,
    TECH_DEV,
    TECH_HEAD,
    card_text,
    find_submit,
    step_entered,
    walk,
)

TASK = {"content": "完成用户数据加密接口开发", "owner": TECH_DEV, "start": "2026-12-08 14:00 +0800",
        "due": "2026-12-10 18:00 +0800", "standard": "12月10日18点前提交测试", "resources": "需市场部提供测试账号"}


def open_plan(world, user=LEAD):
    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    world.say(LEAD, "/进度")
    world.press(user, world.last_card(title_contains="新品推广页面延迟")["message_id"], "编制行动方案")
    return case_id, world.last_card(title_contains="《跨部门协作行动方案》")["message_id"]


def tasks(world, case_id):
    with world.state.factory() as s:
        return s.scalars(select(Task).where(Task.case_id == case_id).order_by(Task.seq)).all()


def fields(card):
    return {n["name"]: n for n in walk(card) if n.get("name") and n.get("tag") != "form"}


def test_add_task_and_card_snapshots(world):
    case_id, mid = open_plan(world)
    assert_snapshot("steps46_plan_empty", world.card(mid))
    ans = fill_plan(world, TECH_HEAD, mid, TASK)   # 「＋任务」 opens the form for them only
    assert ans["toast"]["content"] == texts.TASK_ADDED.format(seq=1)
    [t] = tasks(world, case_id)
    assert (t.owner_open_id, t.delivery_standard, t.resources) == (TECH_DEV, "12月10日18点前提交测试",
                                                                    "需市场部提供测试账号")
    assert t.start_at.isoformat() == "2026-12-08T06:00:00+00:00" and t.due_at.isoformat() == "2026-12-10T10:00:00+00:00"
    assert t.department_id is not None  # TECH_DEV is 技术部's member
    assert "完成用户数据加密接口开发" in card_text(world.card(mid))
    # a double submit does not add the task twice
    again = world.submit(TECH_HEAD, mid, TASK, form_name="plan_task")
    assert again["toast"]["content"] == texts.TASK_ALREADY_ADDED.format(seq=1) and len(tasks(world, case_id)) == 1
    assert_snapshot("steps46_plan_one_task", world.card(mid))
    assert_snapshot("steps46_plan_task_form", world.form_of(TECH_HEAD))   # still open for the next task


def test_validation_failures_keep_what_was_typed(world):
    case_id, mid = open_plan(world)
    cases = [
        (dict(TASK, due="2026-12-08 12:00 +0800"), texts.ERR_END_BEFORE_START),
        (dict(TASK, start="2026-12-01 09:00 +0800", due="2026-12-02 09:00 +0800"), texts.ERR_START_PAST),
        (dict(TASK, standard=""), texts.ERR_STANDARD),
        (dict(TASK, owner=""), texts.ERR_OWNER),
        (dict(TASK, due="2026-02-30 18:00 +0800"),
         texts.BAD_DATETIME.format(field=texts.FIELD_DUE, value="2026-02-30 18:00 +0800")),
    ]
    for form, message in cases:
        ans = world.submit(LEAD, mid, form, form_name="plan_task")
        assert ans["toast"] == {"type": "error", "content": message}, (form, ans)
        refilled = fields(ans["card"]["data"])
        assert refilled["content"]["default_value"] == TASK["content"]
        if form["standard"]:
            assert refilled["standard"]["default_value"] == form["standard"]
        assert refilled["start"]["initial_datetime"] == form["start"][:16]
    assert tasks(world, case_id) == []


def test_outsider_cannot_edit_the_plan(world):
    case_id, mid = open_plan(world)
    ans = world.press(OUTSIDER, mid, texts.BTN_MODE_TASK)   # no form opens for them
    assert ans["toast"] == {"type": "error", "content": texts.NOT_TEAM_MEMBER}
    assert world.private_cards(OUTSIDER) == []
    forged = find_submit(world.form_of(LEAD), "plan_task")   # the lead's submit button, clicked by them
    ans = world.click(OUTSIDER, mid, form=TASK, name=forged)
    assert ans["toast"] == {"type": "error", "content": texts.NOT_TEAM_MEMBER}
    assert tasks(world, case_id) == []


def test_dependency_cycle_refused(world):
    case_id, mid = open_plan(world)
    world.submit(LEAD, mid, TASK, form_name="plan_task")
    t1 = tasks(world, case_id)[0]
    world.submit(LEAD, mid, dict(TASK, content="联调测试"), form_name="plan_task")
    t2 = tasks(world, case_id)[1]
    # dependencies are a second, optional step (the task form stays short)
    world.press(LEAD, mid, "设置依赖")
    assert_snapshot("steps46_plan_depends_form", world.form_of(LEAD))
    ans = world.submit(LEAD, mid, {"task": str(t2.id), "depends": str(t1.id)}, form_name="plan_depends")
    assert ans["toast"]["content"] == texts.DEPENDS_SET.format(seq=2, dep=1)
    assert tasks(world, case_id)[1].depends_on_id == t1.id
    ans = world.submit(LEAD, mid, {"task": str(t1.id), "depends": str(t2.id)}, form_name="plan_depends")
    assert ans["toast"]["content"] == texts.ERR_CYCLE.format(path="#1 → #2 → #1")
    picked = {n["name"]: n.get("initial_option") for n in walk(ans["card"]["data"]) if n.get("tag") == "select_static"}
    assert picked == {"task": str(t1.id), "depends": str(t2.id)}  # what was picked comes back
    assert tasks(world, case_id)[0].depends_on_id is None
    ans = world.submit(LEAD, mid, {"depends": str(t2.id)}, form_name="plan_depends")
    assert ans["toast"]["content"] == texts.ERR_DEPENDS_TASK
    # editing a task keeps its dependency (the edit form has no dependency field)
    world.press(LEAD, mid, "编辑 #2")
    edit_form = fields(world.form_of(LEAD))
    assert edit_form["content"]["default_value"] == "联调测试" and "depends" not in edit_form
    assert edit_form["start"]["initial_datetime"] == "2026-12-08 14:00"
    world.submit(LEAD, mid, dict(TASK, content="联调测试（含加密）"), form_name="plan_task")
    assert tasks(world, case_id)[1].depends_on_id == t1.id
    # deleting a task others depend on is refused clearly
    world.press(LEAD, mid, "＋任务")
    ans = world.press(LEAD, mid, "删除")
    assert ans["toast"]["content"] == texts.DEPENDED_ON.format(seq=1, other=2)
    world.press(LEAD, mid, "设置依赖")
    ans = world.submit(LEAD, mid, {"task": str(t2.id), "depends": "0"}, form_name="plan_depends")
    assert ans["toast"]["content"] == texts.DEPENDS_CLEARED.format(seq=2)
    assert tasks(world, case_id)[1].depends_on_id is None


def test_carry_action_items_then_publish_needs_standards(world):
    case_id, mid = open_plan(world)
    world.press(LEAD, mid, "导入第2步行动项（2）")
    carried = tasks(world, case_id)
    assert [t.content for t in carried] == ["完成用户数据加密接口开发", "协调设计部完成页面适配"]
    assert carried[0].due_at.isoformat() == "2026-12-10T10:00:00+00:00"  # the item's date, 18:00
    with world.state.factory() as s:
        assert all(i.carried_to_task_id for i in s.scalars(select(ActionItem).where(ActionItem.case_id == case_id)))
    ans = world.press(TECH_HEAD, mid, "发布方案")
    assert ans["toast"]["content"] == texts.NOT_LEAD
    ans = world.press(LEAD, mid, "发布方案")
    missing = [texts.PUBLISH_TASK_PROBLEM.format(seq=n, problem=texts.PROBLEM_NO_STANDARD) for n in (1, 2)]
    assert ans["toast"]["content"] == texts.PUBLISH_PROBLEMS.format(problems="；".join(missing))
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 4


def test_risk_and_key_node_forms(world):
    case_id, mid = open_plan(world)
    world.press(LEAD, mid, "＋风险")
    bad = world.submit(LEAD, mid, {"risk": "测试延迟", "likelihood": "很高", "impact": "high", "response": "加班",
                                   "owner": TECH_HEAD}, form_name="plan_risk")
    assert bad["toast"]["content"] == texts.ERR_LEVEL
    assert fields(bad["card"]["data"])["risk"]["default_value"] == "测试延迟"
    ok = world.submit(LEAD, mid, {"risk": "测试延迟", "likelihood": "mid", "impact": "high",
                                  "response": "技术部安排1名测试人员加班", "owner": TECH_HEAD}, form_name="plan_risk")
    assert ok["toast"]["content"] == texts.RISK_ADDED
    world.press(LEAD, mid, "＋关键节点")
    past = world.submit(LEAD, mid, {"name": "上线", "at": "2026-12-07 12:00 +0800"}, form_name="plan_node")
    assert past["toast"]["content"] == texts.ERR_PAST.format(field=texts.FIELD_NODE_AT, value="12-07 12:00")
    assert fields(past["card"]["data"])["name"]["default_value"] == "上线"
    world.submit(LEAD, mid, {"name": "上线", "at": "2026-12-11 12:00 +0800"}, form_name="plan_node")
    text = card_text(world.card(mid))
    assert "上线" in text and "12-10 12:00" in text  # the 进度确认会 24 hours before
    assert_snapshot("steps46_plan_node_form", world.form_of(LEAD))   # the lead's own editor, still on nodes


def test_publish_posts_minutes_and_moves_to_step5(world):
    case_id, mid = open_plan(world)
    world.submit(LEAD, mid, TASK, form_name="plan_task")
    world.submit(LEAD, mid, dict(TASK, content="页面适配", owner=DESIGN_HEAD, standard="适配稿评审通过"),
                 form_name="plan_task")
    ans = world.press(LEAD, mid, "发布方案")
    assert ans["toast"]["content"] == texts.PLAN_PUBLISHED
    minutes = world.last_card(title_contains="会议纪要")["content"]
    assert_snapshot("steps46_minutes", minutes)
    # a timeline of the plan: each task by name from its start to its deadline, in days from the first start
    chart = next(n for n in walk(minutes["body"]) if n.get("tag") == "chart")["chart_spec"]
    assert chart["type"] == "rangeColumn" and chart["axes"][0]["title"]["text"] == "天（0 = 12-08 14:00）"
    assert [(v["label"], v["start"], v["end"]) for v in chart["data"]["values"]] == [
        ("完成用户数据加密接…", 0.0, 2.17), ("页面适配", 0.0, 2.17)]
    text = card_text(minutes)
    assert f"<at id={TECH_DEV}></at>：#1 完成用户数据加密接口开发" in text
    assert f"<at id={DESIGN_HEAD}></at>：#2 页面适配" in text
    with world.state.factory() as s:
        case = s.get(Case, case_id)
        assert case.step == 5
        [pv] = s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()
        assert pv.version == 1 and [t["seq"] for t in pv.snapshot["tasks"]] == [1, 2]
    assert step_entered(5) in world.announced()
    assert_snapshot("steps46_plan_published", world.card(mid))
    # a stale publish click changes nothing
    ans = world.click(LEAD, mid, value={"a": "plan.publish", "c": case_id, "v": 1})
    assert ans["toast"]["content"] == texts.PLAN_ALREADY_PUBLISHED
    with world.state.factory() as s:
        assert len(s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()) == 1
