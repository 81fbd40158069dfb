"""From step 3's end to closure, Feishu-shaped events and callbacks in, cards out: a plan is
drafted and published, a task lags, one change is approved and one rejected, a wrong person
tries to edit someone else's task, the report's numbers match the history, and the SOP saved
from the case opens a second case."""
from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Case, Task, Template
from tests.cardsnap import assert_snapshot
from tests.casefactory import fast_forward_to_step4, fill_plan, fill_retro, make_case_at_step4
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, card_title, fits, walk


def later(world, **kw):
    world.clock.advance(timedelta(**kw))


def case_card(world, title="新品推广页面延迟"):
    return world.last_card(title_contains=f"「{title}」")["message_id"]


def test_steps_4_to_6_and_sop_reuse(world):
    f = world.state.factory
    case_id = make_case_at_step4(f, now=world.clock.now())  # Tue 2026-12-08 09:00 +08:00
    # ---- step 4: draft and publish the plan
    world.say(LEAD, "/进度")
    world.press(TECH_HEAD, case_card(world), "编制行动方案")
    plan = world.last_card(title_contains="《跨部门协作行动方案》")["message_id"]
    world.submit(TECH_HEAD, plan, {"content": "完成用户数据加密接口开发", "owner": TECH_DEV,
                                   "start": "2026-12-08 14:00 +0800", "due": "2026-12-10 18:00 +0800",
                                   "standard": "12月10日18点前提交测试", "resources": "需市场部提供测试账号"})
    fill_plan(world, LEAD, plan, {"content": "页面适配", "owner": DESIGN_HEAD, "start": "2026-12-08 14:00 +0800",
                              "due": "2026-12-09 18:00 +0800", "standard": "适配稿评审通过"})
    world.press(LEAD, plan, "＋风险")
    world.submit(LEAD, plan, {"risk": "测试延迟", "likelihood": "mid", "impact": "high",
                              "response": "技术部安排1名测试人员加班", "owner": TECH_HEAD})
    world.press(LEAD, plan, "＋关键节点")
    world.submit(LEAD, plan, {"name": "上线", "at": "2026-12-11 12:00 +0800"})
    later(world, minutes=30)
    assert world.press(LEAD, plan, "发布方案")["toast"]["content"] == texts.PLAN_PUBLISHED
    with f() as s:
        t1, t2 = (t.id for t in s.scalars(select(Task).where(Task.case_id == case_id).order_by(Task.seq)))
        assert s.get(Case, case_id).step == 5

    # ---- step 5: progress, a lagging task, a wrong person
    later(world, days=1, hours=11)  # Wed 20:00: task 2 is past due
    world.say(LEAD, "/进度")
    assert "滞后 2" in card_text(world.card(case_card(world)))  # task 1 is at 58 % of its time with 0 % done
    world.press(LEAD, case_card(world), "更新我的进度")
    lead_form = world.last_card(title_contains="更新进度")["message_id"]
    ans = world.submit(TECH_DEV, lead_form, {f"s{t2}": "done", f"p{t2}": "100"}, form_name=f"f{t2}")
    assert ans["toast"] == {"type": "error", "content": texts.NOT_TASK_OWNER.format(seq=2, content="页面适配")}
    later(world, seconds=5)
    world.press(TECH_DEV, case_card(world), "更新我的进度")
    dev_form = world.last_card(title_contains="更新进度")["message_id"]
    world.submit(TECH_DEV, dev_form, {f"s{t1}": "doing", f"p{t1}": "60"}, form_name=f"f{t1}")
    alerts = [t for t in world.texts() if fits(texts.LAG_ALERT, t)]
    assert alerts == []  # Wed 20:00 is outside working hours: the lead's @mention waits for the morning
    later(world, seconds=5)
    world.press(DESIGN_HEAD, case_card(world), "更新我的进度")
    design_form = world.last_card(title_contains="更新进度")["message_id"]
    ans = world.submit(DESIGN_HEAD, design_form, {f"s{t2}": "doing", f"p{t2}": "80"}, form_name=f"f{t2}")
    assert ans["toast"]["content"] == texts.LAG_FIELDS_REQUIRED.format(seq=2, content="页面适配")
    world.submit(DESIGN_HEAD, design_form, {f"s{t2}": "doing", f"p{t2}": "80", f"r{t2}": "素材晚到",
                                            f"a{t2}": "加班完成"}, form_name=f"f{t2}")
    world.press(LEAD, case_card(world), "查看进度跟踪表")
    table = world.last_card(title_contains="《进度跟踪表》")["content"]
    assert table["header"]["template"] == "red"
    rows = next(n for n in walk(table["body"]) if n.get("tag") == "table")["rows"]
    assert rows[0]["task"] == "#2 页面适配" and rows[0]["reason"] == "素材晚到"

    # ---- dynamic adjustment: one approved, one rejected
    later(world, seconds=5)
    world.say(DESIGN_HEAD, "/调整")
    change = world.last_card(title_contains="调整申请 · ")["message_id"]
    world.submit(DESIGN_HEAD, change, {"task": str(t2), "due": "2026-12-10 12:00 +0800", "reason": "素材晚到半天"})
    change = world.last_card(title_contains="调整申请 #1")["message_id"]   # the request, posted for the lead
    world.submit(LEAD, change, {"approve_note": "同意，请同步客户"}, form_name="cr_approve")
    later(world, seconds=5)
    world.say(TECH_DEV, "/调整")
    change = world.last_card(title_contains="调整申请 · ")["message_id"]
    world.press(TECH_DEV, change, "取消任务")
    world.submit(TECH_DEV, change, {"task": str(t1), "reason": "想改用旧接口"})
    change = world.last_card(title_contains="调整申请 #2")["message_id"]
    world.submit(LEAD, change, {"reject_note": "设计稿仍需适配"}, form_name="cr_reject")
    assert "截止 12-09 18:00 → 12-10 12:00" in card_text(world.last_card(title_contains="版本 2")["content"])

    # ---- everything done (task 2 late against the baseline, task 1 on time) → step 6
    later(world, hours=14)  # Thu 10:00
    world.press(DESIGN_HEAD, case_card(world), "更新我的进度")
    world.submit(DESIGN_HEAD, world.last_card(title_contains="更新进度")["message_id"],
                 {f"s{t2}": "done", f"p{t2}": "100"}, form_name=f"f{t2}")
    later(world, hours=7)  # Thu 17:00
    world.press(TECH_DEV, case_card(world), "更新我的进度")
    world.submit(TECH_DEV, world.last_card(title_contains="更新进度")["message_id"],
                 {f"s{t1}": "done", f"p{t1}": "100"}, form_name=f"f{t1}")
    with f() as s:
        assert s.get(Case, case_id).step == 6

    # ---- step 6: retrospective
    world.press(TECH_DEV, case_card(world), "填写复盘")
    retro = world.last_card(title_contains="复盘会")["message_id"]
    long_line = "站" * 1001
    bad = world.submit(TECH_DEV, retro, {"add_success": "每日站会让滞后提前暴露\n" + long_line})
    assert bad["toast"]["content"] == texts.RETRO_LINE_TOO_LONG.format(kind="成功经验", n=2, length=1001, limit=1000)
    box = next(n for n in walk(bad["card"]["data"]) if n.get("name") == "add_success")
    assert box["default_value"] == "每日站会让滞后提前暴露\n" + long_line      # nothing typed is lost
    ok = world.submit(TECH_DEV, retro, {"add_success": "每日站会让滞后提前暴露\n",
                                        "add_weakness": "需求变更未提前评估风险"})
    assert ok["toast"]["content"] == texts.RETRO_MULTI_ADDED.format(n=2, kinds="成功经验 1 · 不足之处 1")
    fill_retro(world, LEAD, retro, {"kind": "outcome", "content": "推广页面按期上线"})
    fill_retro(world, DESIGN_HEAD, retro, {"kind": "improve", "content": "建立需求变更评审流程"})
    assert_snapshot("steps46_retro_collect", world.card(retro))
    assert world.press(TECH_DEV, retro, "定稿并结案")["toast"]["content"] == texts.NOT_LEAD
    later(world, hours=1)
    world.press(LEAD, retro, "定稿并结案")
    report = world.last_card(title_contains="《复盘总结报告》")
    assert_snapshot("steps46_report", report["content"])
    # planned (baseline) against actual per task, and the key node as a line
    chart = next(n for n in walk(report["content"]["body"]) if n.get("tag") == "chart")["chart_spec"]
    bars = {(v["label"], v["series"]): (v["start"], v["end"]) for v in chart["data"]["values"]}
    assert bars[("页面适配", "计划")] == (0.0, 1.17) and bars[("页面适配", "实际")] == (0.0, 1.85)   # 16 h 30 late
    assert [m["label"]["text"] for m in chart["markLine"]] == ["上线"]
    text = card_text(report["content"])
    assert "按时完成率：**50%（1/2" in text
    assert "2 次申请（批准 1 · 驳回 1），当前方案版本 2" in text
    assert "《问题共识表》：平均 5 小时，最慢 8 小时（设计部）" in text
    assert "《需求确认清单》：平均 8 小时，最慢 12 小时（设计部）" in text
    tables = [n for n in walk(report["content"]["body"]) if n.get("tag") == "table"]
    plan_rows = {r["task"]: r for r in tables[0]["rows"]}
    assert plan_rows["#2 页面适配"]["pd"] == "12-09 18:00"
    assert plan_rows["#2 页面适配"]["result"] == "延迟 16 小时 30 分"
    assert plan_rows["#1 完成用户数据加密接口开发"]["result"] == "按时"
    times = {r["step"]: r["time"] for r in tables[1]["rows"]}
    assert times == {"问题共识": "1 天", "组建小组": "12 小时", "需求确认": "1 天 12 小时", "行动方案": "30 分钟",
                     "执行跟踪": "2 天 8 小时", "复盘": "1 小时"}
    assert [r["reason"] for r in tables[2]["rows"]] == ["素材晚到半天", "想改用旧接口"]
    assert "建立需求变更评审流程" in text and f"<at id={DESIGN_HEAD}></at>" in text
    with f() as s:
        case = s.get(Case, case_id)
        assert (case.status, case.step) == ("closed", 7)
    # archived read-only; /案例 shows it closed; the report exports as Markdown
    closed = world.click(LEAD, plan, value={"a": "plan.mode", "c": case_id, "x": {"m": "risk"}})
    assert closed["toast"]["content"] == texts.ARCHIVED_SHOWN     # the plan, read-only, instead of a refusal
    shown = closed["card"]["data"]
    assert "《跨部门协作行动方案》" in card_title(shown) and shown["header"]["template"] == "grey"
    assert {b["behaviors"][0]["value"]["a"] for b in walk(shown["body"]) if b.get("tag") == "button"} \
        == {"archive.view"}
    world.say(LEAD, "/案例")
    assert "已结案" in card_text(world.last_card(title_contains="本群的协作问题")["content"])
    later(world, seconds=5)
    world.say(LEAD, "/导出 6")
    exported = "\n".join(world.texts())
    assert "# 《复盘总结报告》" in exported and "| #2 页面适配 |" in exported

    # ---- 成果固化: save the SOP and reuse it
    later(world, seconds=5)
    report_id = report["message_id"]
    assert world.submit(TECH_HEAD, report_id, {"name": "跨部门需求对接SOP"})["toast"]["type"] == "error"
    assert world.submit(LEAD, report_id, {"name": "跨部门需求对接SOP"})["toast"]["content"] == \
        texts.TEMPLATE_SAVED.format(name="跨部门需求对接SOP")
    again = world.submit(LEAD, report_id, {"name": "跨部门需求对接SOP"})
    assert again["toast"]["content"] == texts.TEMPLATE_NAME_TAKEN.format(name="跨部门需求对接SOP")
    with f() as s:
        assert len(s.scalars(select(Template)).all()) == 1
    world.say(LEAD, "/模板")
    assert "《跨部门需求对接SOP》" in card_text(world.last_card(title_contains="SOP 模板")["content"])
    later(world, days=5)  # Tue 2026-12-15
    world.say(TECH_HEAD, "/问题 模板:不存在的SOP 新问题")
    assert texts.TEMPLATE_NOT_FOUND.format(name="不存在的SOP") in world.texts()
    later(world, seconds=5)
    world.say(TECH_HEAD, "/问题 模板:跨部门需求对接SOP 会员页面上线")
    form = world.last_card(title_contains="新建")["content"]
    names = {n["name"]: n.get("default_value") for n in walk(form) if n.get("name", "").endswith("_name")}
    assert names["dept1_name"] == "市场部" and names["dept2_name"] == "技术部" and names["dept3_name"] == "设计部"
    with f() as s:
        second = s.scalar(select(Case).where(Case.title == "会员页面上线"))
        assert second.template_id is not None
        second_id = second.id
    fast_forward_to_step4(f, second_id, now=world.clock.now())  # steps 1–3 belong to other tests
    later(world, seconds=5)
    world.say(TECH_HEAD, "/进度")
    world.press(TECH_HEAD, case_card(world, "会员页面上线"), "编制行动方案")
    with f() as s:
        tasks = s.scalars(select(Task).where(Task.case_id == second_id).order_by(Task.seq)).all()
    # same tasks and owners (both in the new case's team), on the next working day at the original 14:00
    assert [(t.content, t.owner_open_id) for t in tasks] == [("完成用户数据加密接口开发", TECH_DEV),
                                                             ("页面适配", DESIGN_HEAD)]
    assert tasks[0].start_at.isoformat() == "2026-12-16T06:00:00+00:00"
    assert tasks[0].due_at - tasks[0].start_at == timedelta(days=2, hours=4)
    assert texts.TEMPLATE_PREFILLED.format(name="跨部门需求对接SOP") in world.texts()
    plan2 = world.last_card(title_contains="《跨部门协作行动方案》")["content"]
    assert "测试延迟" in card_text(plan2) and "上线" in card_text(plan2)
