"""SOP templates keep their hours: a case saved from a plan that started at 14:00 on a Thursday
and reused on a Friday starts on Monday, each task keeps its working-day offsets and its times of
day, the key node (and its 进度确认会) land on working days at their original hour, dates written
in the copied text are flagged for the lead, and the template's owners are suggested, not
silently replaced by each department's 接口人."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot import texts
from bot.clock import ManualClock
from bot.models import Case, KeyNode, Risk, Task, Template
from bot.workdays import WorkCalendar
from cards.rules import validate_card
from handlers.templates import dates_in
from tests.casefactory import TaskSpec, add_tasks, fast_forward_to_step4, fill_retro, make_case_at_step4, make_retro
from tests.driver import CHAT, DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, TENANT, card_text, walk

CST = timezone(timedelta(hours=8))
SOP = "上线SOP"


@pytest.fixture
def clock():
    # Thursday 2026-12-03 09:00 in Shanghai: the original case's plan is drafted today
    return ManualClock(datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc))


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=CST)


def local(when: datetime) -> str:
    return when.astimezone(CST).strftime("%a %m-%d %H:%M")


def case_card(world, title):
    return world.last_card(title_contains=f"「{title}」")["message_id"]


def _original_case(world) -> int:
    """Plan from Thu 12-03 14:00: #1 Thu 14:00 → Fri 18:00, #2 Thu 14:00 → Mon 18:00 (owned by the
    技术部 head, not its 接口人), #3 Fri 14:00 → Tue 18:00 (owned by someone outside the next
    case's team); the key node 上线 Tue 12-08 10:00 (its 进度确认会 Mon 10:00)."""
    f = world.state.factory
    case_id = make_case_at_step4(f, now=world.clock.now())
    add_tasks(f, case_id, [
        TaskSpec("完成用户数据加密接口开发", TECH_DEV, cst(3, 14), cst(4, 18), "12月4日18点前提交测试",
                 department="技术部"),
        TaskSpec("接口方案评审", TECH_HEAD, cst(3, 14), cst(7, 18), "评审通过", department="技术部"),
        TaskSpec("准备推广素材", OUTSIDER, cst(4, 14), cst(8, 18), "周五前交付初稿", department="设计部"),
    ], now=world.clock.now())
    with f() as s, s.begin():
        sc = dict(tenant_key=TENANT, chat_id=CHAT, case_id=case_id)
        s.add(Risk(**sc, risk="测试延迟", likelihood="mid", impact="high", response="安排1名测试加班",
                   owner_open_id=TECH_HEAD))
        s.add(KeyNode(**sc, name="上线", at=cst(8, 10)))
    return case_id


def _save_template(world, case_id: int) -> None:
    """The case ends (retrospective finalised) and the lead saves it as an SOP template."""
    world.clock.set(cst(9, 17).astimezone(timezone.utc))  # Wed 12-09
    make_retro(world.state.factory, case_id, now=world.clock.now())
    world.say(LEAD, "/进度")
    world.press(LEAD, case_card(world, "新品推广页面延迟"), texts.BTN_OPEN_RETRO)
    retro = world.last_card(title_contains="复盘会")["message_id"]
    fill_retro(world, LEAD, retro, {"kind": "outcome", "content": "推广页面按期上线"})
    world.press(LEAD, retro, texts.BTN_RETRO_FINALISE)
    report = world.last_card(title_contains="《复盘总结报告》")["message_id"]
    assert world.submit(LEAD, report, {"name": SOP})["toast"]["content"] == texts.TEMPLATE_SAVED.format(name=SOP)


def _reuse_on_friday(world) -> tuple[int, str]:
    """Fri 12-11 10:00: a new case from the template reaches step 4; the plan card's message id."""
    world.clock.set(cst(11, 10).astimezone(timezone.utc))
    world.say(TECH_HEAD, f"/问题 模板:{SOP} 会员页面上线")
    with world.state.factory() as s:
        new_id = s.scalar(select(Case.id).where(Case.title == "会员页面上线"))
    fast_forward_to_step4(world.state.factory, new_id, now=world.clock.now())
    world.clock.advance(timedelta(seconds=5))
    world.say(TECH_HEAD, "/进度")
    world.press(TECH_HEAD, case_card(world, "会员页面上线"), texts.BTN_OPEN_PLAN)
    return new_id, world.last_card(title_contains="《跨部门协作行动方案》")["message_id"]


@pytest.mark.usefixtures("paced")
def test_template_keeps_working_days_and_times_of_day(world):
    _save_template(world, _original_case(world))
    with world.state.factory() as s:
        body = s.scalar(select(Template.body).where(Template.name == SOP))
    assert [(t["start_day"], t["start_time"], t["due_day"], t["due_time"]) for t in body["tasks"]] == \
        [(0, "14:00", 1, "18:00"), (0, "14:00", 2, "18:00"), (1, "14:00", 3, "18:00")]
    assert [(n["name"], n["day"], n["time"]) for n in body["key_nodes"]] == [("上线", 3, "10:00")]

    new_id, _plan = _reuse_on_friday(world)
    with world.state.factory() as s:
        tasks = s.scalars(select(Task).where(Task.case_id == new_id).order_by(Task.seq)).all()
        node = s.scalar(select(KeyNode).where(KeyNode.case_id == new_id))
        times = [(local(t.start_at), local(t.due_at)) for t in tasks]
        node_at = node.at
    # the new case starts on Monday 12-14 (not Saturday): same offsets in working days, same hours
    assert times == [("Mon 12-14 14:00", "Tue 12-15 18:00"),
                     ("Mon 12-14 14:00", "Wed 12-16 18:00"),
                     ("Tue 12-15 14:00", "Thu 12-17 18:00")]
    assert local(node_at) == "Thu 12-17 10:00"
    meeting = node_at - timedelta(hours=24)   # the 进度确认会 (24 h before the node)
    assert local(meeting) == "Wed 12-16 10:00"
    cal = WorkCalendar()
    for when in [t for pair in ((t.start_at, t.due_at) for t in tasks) for t in pair] + [node_at, meeting]:
        assert cal.is_workday(when.astimezone(CST).date()), local(when)
    plan = card_text(world.last_card(title_contains="《跨部门协作行动方案》")["content"])
    assert "12-14 14:00" in plan and "12-17 10:00" in plan and "12-16 10:00" in plan  # node and its meeting


@pytest.mark.usefixtures("paced")
def test_copied_dates_are_flagged_and_owners_suggested(world):
    _save_template(world, _original_case(world))
    new_id, plan = _reuse_on_friday(world)
    with world.state.factory() as s:
        owners = [(t.content, t.owner_open_id) for t in
                  s.scalars(select(Task).where(Task.case_id == new_id).order_by(Task.seq))]
        risk_owner = s.scalar(select(Risk.owner_open_id).where(Risk.case_id == new_id))
    # in the team of the new case: kept (the 技术部 head, not its 接口人); not in it: the 接口人 stands in
    assert owners == [("完成用户数据加密接口开发", TECH_DEV), ("接口方案评审", TECH_HEAD),
                      ("准备推广素材", DESIGN_HEAD)]
    assert risk_owner == TECH_HEAD
    card = world.card(plan)
    assert validate_card(card) == []
    text = card_text(card)
    assert texts.TEMPLATE_REVIEW_HEAD in text
    assert texts.TEMPLATE_REVIEW_DATE.format(what="#1 完成用户数据加密接口开发", found="「12月4日」") in text
    assert texts.TEMPLATE_REVIEW_DATE.format(what="#3 准备推广素材", found="「周五」") in text
    assert texts.TEMPLATE_REVIEW_FILLED.format(what="#3 准备推广素材", was="赵强", role="设计部接口人",
                                               name="王芳") in text
    kept = texts.TEMPLATE_REVIEW_KEPT_ITEM
    assert texts.TEMPLATE_REVIEW_KEPT.format(items="、".join([
        kept.format(what="#1 完成用户数据加密接口开发", name="刘洋"), kept.format(what="#2 接口方案评审", name="李娜"),
        kept.format(what="风险「测试延迟」", name="李娜")])) in text
    # the lead fixes task 1's standard and gives task 3 to someone else: those notes go
    task1 = next(n for n in walk(card) if n.get("tag") == "button"
                 and n.get("text", {}).get("content") == texts.BTN_EDIT.format(seq=1))
    world.click(LEAD, plan, value=next(b["value"] for b in task1["behaviors"] if b.get("type") == "callback"))
    world.submit(LEAD, plan, {"content": "完成用户数据加密接口开发", "owner": TECH_DEV,
                              "start": "2026-12-14 14:00 +0800", "due": "2026-12-15 18:00 +0800",
                              "standard": "12月15日18点前提交测试", "resources": ""})
    with world.state.factory() as s:
        task3 = s.scalar(select(Task).where(Task.case_id == new_id, Task.seq == 3))
        picker = lambda when: when.astimezone(CST).strftime("%Y-%m-%d %H:%M +0800")  # noqa: E731
        task3_form = {"content": task3.content, "owner": LEAD, "start": picker(task3.start_at),
                      "due": picker(task3.due_at), "standard": task3.delivery_standard or "", "resources": ""}
    task3_edit = next(n for n in walk(world.card(plan)) if n.get("tag") == "button"
                      and n.get("text", {}).get("content") == texts.BTN_EDIT.format(seq=3))
    world.click(LEAD, plan, value=next(b["value"] for b in task3_edit["behaviors"] if b.get("type") == "callback"))
    world.submit(LEAD, plan, task3_form)
    text = card_text(world.card(plan))
    assert "「12月4日」" not in text and "赵强" not in text
    assert texts.TEMPLATE_REVIEW_DATE.format(what="#3 准备推广素材", found="「周五」") in text


@pytest.mark.usefixtures("paced")
def test_templates_saved_before_keep_working(world):
    """A template with raw hour offsets (the old format) still opens a case, from 09:00 of the
    next working day."""
    with world.state.factory() as s, s.begin():
        s.add(Template(tenant_key=TENANT, name=SOP, created_by=LEAD, created_at=world.clock.now(), body={
            "departments": [{"name": "技术部", "kind": "core"}], "roles": [],
            "tasks": [{"seq": 1, "content": "接口开发", "department": "技术部", "start_offset_h": 5,
                       "duration_h": 28, "standard": "提交测试", "resources": "", "depends_on_seq": None}],
            "risks": [], "key_nodes": [{"name": "上线", "offset_h": 49}]}))
    new_id, plan = _reuse_on_friday(world)
    with world.state.factory() as s:
        task = s.scalar(select(Task).where(Task.case_id == new_id))
        node = s.scalar(select(KeyNode).where(KeyNode.case_id == new_id))
        assert (local(task.start_at), local(task.due_at), local(node.at)) == \
            ("Mon 12-14 14:00", "Tue 12-15 18:00", "Wed 12-16 10:00")
        assert task.owner_open_id == TECH_DEV  # no owner recorded: the 接口人, and the card says so
    assert texts.TEMPLATE_REVIEW_UNKNOWN.format(what="#1 接口开发", role="技术部接口人", name="刘洋") \
        in card_text(world.card(plan))


def test_dates_in_text():
    assert dates_in("12月4日18点前提交测试") == ["12月4日"]
    assert dates_in("2026-12-04 上线，12-04 复核") == ["2026-12-04", "12-04"]
    assert dates_in("2026年12月4日、周五、星期一、明天") == ["2026年12月4日", "周五", "星期一", "明天"]
    assert dates_in("安排1-2人，版本2.1，每周一例会，18:00，50%") == []
