"""Step 5 progress table and updates, Feishu-shaped events in, cards out."""
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot import texts
from bot.models import Case, Task, TaskUpdate
from cards.rules import validate_card
from handlers.tracking import tracking_card_for
from tests.cardsnap import assert_snapshot
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, card_text, fits, walk

TZ = ZoneInfo("Asia/Shanghai")


def _setup(world, tasks=None):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    ids = make_plan_published(world.state.factory, case_id, now=now, tasks=tasks)
    return case_id, ids


def _tracking_card(world, case_id):
    with world.state.factory() as s:
        return tracking_card_for(s, s.get(Case, case_id), world.clock.now(), TZ)


def _task(world, task_id):
    with world.state.factory() as s:
        return s.get(Task, task_id)


def _open_update_form(world, user):
    world.say(LEAD, "/进度")
    case_msg = world.last_card(title_contains="新品推广页面延迟")
    answer = world.press(user, case_msg["message_id"], "更新我的进度")
    return answer, world.last_card(title_contains="更新进度")


def test_tracking_card_lagging_first_with_chart(world):
    now = world.clock.now()
    tasks = [TaskSpec("页面适配", DESIGN_HEAD, now - timedelta(days=2), now + timedelta(days=2), progress=60,
                      status="doing"),
             TaskSpec("接口开发", TECH_DEV, now - timedelta(days=2), now + timedelta(days=2), progress=10,
                      status="doing")]
    case_id, _ = _setup(world, tasks)
    card = _tracking_card(world, case_id)
    assert validate_card(card) == []
    assert card["header"]["template"] == "red"
    lagging, risks, others = [n for n in card["body"]["elements"] if n.get("tag") == "table"]
    assert [r["task"] for r in lagging["rows"]] == ["#2 接口开发"]  # lagging first
    assert {"text": "滞后", "color": "red"} in lagging["rows"][0]["status"]
    # open risks right after the lagging tasks, highlighted; then the other tasks
    assert [r["risk"] for r in risks["rows"]] == ["测试延迟"]
    assert risks["rows"][0]["status"] == [{"text": "未关闭", "color": "orange"}, {"text": "高影响", "color": "red"}]
    assert [r["task"] for r in others["rows"]] == ["#1 页面适配"]
    chart = next(n for n in walk(card["body"]) if n.get("tag") == "chart")
    # the tasks by name (shortened), lagging first, as bars of a horizontal chart up to 100 %
    assert chart["chart_spec"]["data"]["values"] == [{"task": "接口开发", "progress": 10},
                                                     {"task": "页面适配", "progress": 60}]
    assert chart["chart_spec"]["direction"] == "horizontal" and chart["chart_spec"]["axes"][0]["max"] == 100
    assert_snapshot("steps46_tracking_lagging", card)


def test_owner_updates_own_task_and_is_recorded(world):
    case_id, (t1, t2) = _setup(world)
    answer, form = _open_update_form(world, TECH_DEV)
    assert answer["toast"]["content"] == texts.FORM_OPENED_PRIVATELY   # the form is for the owner only
    assert_snapshot("steps46_update_form", form["content"])
    assert f"f{t1}" in {n.get("name") for n in walk(form["content"]) if n.get("tag") == "form"}
    assert f"f{t2}" not in {n.get("name") for n in walk(form["content"]) if n.get("tag") == "form"}
    world.clock.advance(timedelta(hours=2))
    ans = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "40"}, form_name=f"f{t1}")
    assert ans["toast"]["content"] == texts.TASK_UPDATED.format(seq=1, status="进行中", progress=40)
    task = _task(world, t1)
    assert (task.status, task.progress) == ("doing", 40)
    with world.state.factory() as s:
        ups = s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == t1)).all()
    assert [(u.actor_open_id, u.progress, u.at) for u in ups] == [(TECH_DEV, 40, world.clock.now())]
    # a double submit records nothing new
    again = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "40"}, form_name=f"f{t1}")
    assert again["toast"]["content"] == texts.TASK_UPDATE_SAME.format(seq=1)
    with world.state.factory() as s:
        assert len(s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == t1)).all()) == 1


def test_wrong_person_cannot_update_someone_elses_task(world):
    case_id, (t1, _t2) = _setup(world)
    _answer, form = _open_update_form(world, TECH_DEV)
    ans = world.submit(DESIGN_HEAD, form["message_id"], {f"s{t1}": "done", f"p{t1}": "100"}, form_name=f"f{t1}")
    assert ans["toast"]["type"] == "error" and fits(texts.NOT_TASK_OWNER, ans["toast"]["content"])
    assert _task(world, t1).status == "todo"
    # the lead may update anyone's task
    ans = world.submit(LEAD, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "30"}, form_name=f"f{t1}")
    assert ans["toast"] == {"type": "success",
                            "content": texts.TASK_UPDATED.format(seq=1, status="进行中", progress=30)}
    assert _task(world, t1).progress == 30


def test_lagging_update_requires_reason_and_keeps_typed_values(world):
    case_id, (t1, _t2) = _setup(world)
    world.clock.advance(timedelta(days=1, hours=6))  # 62 % of task 1's time gone
    _answer, form = _open_update_form(world, TECH_DEV)
    ans = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "15", f"r{t1}": "加密方案难"},
                       form_name=f"f{t1}")
    assert ans["toast"]["type"] == "error" and fits(texts.LAG_FIELDS_REQUIRED, ans["toast"]["content"])
    refilled = ans["card"]["data"]
    fields = {n["name"]: n for n in walk(refilled) if n.get("name", "").endswith(str(t1))}
    assert fields[f"p{t1}"]["default_value"] == "15"
    assert fields[f"r{t1}"]["default_value"] == "加密方案难"
    assert _task(world, t1).progress == 0
    ans = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "15", f"r{t1}": "加密方案难",
                                                       f"a{t1}": "资深工程师协助"}, form_name=f"f{t1}")
    assert ans["toast"]["type"] == "success"
    task = _task(world, t1)
    assert (task.lag_reason, task.adjustment) == ("加密方案难", "资深工程师协助")
    assert task.lag_notified_at is not None
    alerts = [t for t in world.texts() if fits(texts.LAG_ALERT, t)]
    assert len(alerts) == 2  # both tasks lag (task 2 is past due); the lead is told once per task
    assert all(f'<at user_id="{LEAD}"></at>' in a for a in alerts)
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    assert len([t for t in world.texts() if fits(texts.LAG_ALERT, t)]) == 2  # not again


def test_bad_progress_is_refused_clearly(world):
    case_id, (t1, _t2) = _setup(world)
    _answer, form = _open_update_form(world, TECH_DEV)
    ans = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "120"}, form_name=f"f{t1}")
    assert ans["toast"]["content"] == texts.BAD_PROGRESS.format(value="120")
    assert _task(world, t1).progress == 0


def test_person_without_tasks_gets_a_clear_answer(world):
    _setup(world)
    ans, _ = _open_update_form(world, TECH_DEV)
    world.say(LEAD, "/进度")
    ans = world.press("ou_head_tech", world.last_card(title_contains="新品推广页面延迟")["message_id"], "更新我的进度")
    assert ans["toast"]["content"] == texts.NO_OPEN_TASKS_FOR_YOU


def test_all_tasks_done_moves_to_retro(world):
    case_id, (t1, t2) = _setup(world)
    _answer, form = _open_update_form(world, LEAD)  # the lead sees every open task
    world.submit(LEAD, form["message_id"], {f"s{t1}": "done", f"p{t1}": "100"}, form_name=f"f{t1}")
    form = world.last_card(title_contains="更新进度")
    world.submit(LEAD, form["message_id"], {f"s{t2}": "done", f"p{t2}": "100"}, form_name=f"f{t2}")
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
    # the closing words name the risk still open (see tests/test_tracking_closing_words.py)
    assert texts.ALL_TASKS_DONE in card_text(world.last_card(title_contains="「")["content"])   # the step-6 case card
