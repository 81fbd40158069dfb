"""Step 4's task form takes several tasks at once, with labelled pickers; deleting asks first; a
deadline outside working hours or a key node past the goal date is a warning the planner confirms."""
from sqlalchemy import select

from bot import texts
from bot.models import KeyNode, Task
from cards import kit
from cards.plan import TASK_ROWS
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, walk
from tests.test_steps46_plan import TASK, open_plan, tasks


def _row(n: int, values: dict) -> dict:
    return {(k if n == 1 else f"{k}_{n}"): v for k, v in values.items()}


ROW2 = {"content": "页面适配", "owner": DESIGN_HEAD, "start": "2026-12-08 14:00 +0800", "due": "2026-12-09 12:00 +0800",
        "standard": "适配稿评审通过"}


def _form(card: dict) -> dict:
    return next(n for n in walk(card) if n.get("tag") == "form" and n.get("name") == "plan_task")


def test_rows_have_labelled_pickers_and_a_suggested_start(world):
    _case_id, _mid = open_plan(world)
    form = _form(world.form_of(LEAD))   # the lead's private form
    elements = list(walk(form["elements"]))
    pickers = [n for n in elements if n.get("tag") == "picker_datetime"]
    assert len(pickers) == 2 * TASK_ROWS
    # every picker has a bold label right above it in its column
    for col in (n for n in elements if n.get("tag") == "column"):
        tags = [e.get("tag") for e in col["elements"]]
        if "picker_datetime" in tags or "select_person" in tags:
            assert tags[0] == "markdown" and col["elements"][0]["content"].startswith("**")
    # new rows start the next working morning (the test clock is Tue 2026-12-08 09:00) unless changed
    assert {p["initial_datetime"] for p in pickers if p["name"].startswith("start")} == {"2026-12-09 09:00"}
    assert not [n for n in elements if n.get("required")]      # empty rows are allowed


def test_several_tasks_in_one_submit(world):
    case_id, mid = open_plan(world)
    ans = world.submit(LEAD, mid, {**_row(1, TASK), **_row(2, ROW2), "start_3": "2026-12-09 09:00 +0800"},
                       form_name="plan_task")
    assert ans["toast"]["content"] == texts.TASKS_ADDED.format(seqs="#1、#2"), ans
    assert [(t.seq, t.content, t.owner_open_id) for t in tasks(world, case_id)] == [
        (1, TASK["content"], TECH_DEV), (2, "页面适配", DESIGN_HEAD)]
    again = world.submit(LEAD, mid, {**_row(1, TASK), **_row(2, ROW2)}, form_name="plan_task")
    assert again["toast"]["content"] == texts.TASK_ALREADY_ADDED.format(seq=1) and len(tasks(world, case_id)) == 2


def test_a_bad_row_adds_nothing_and_keeps_every_row(world):
    case_id, mid = open_plan(world)
    ans = world.submit(LEAD, mid, {**_row(1, TASK), **_row(2, dict(ROW2, standard=""))}, form_name="plan_task")
    assert ans["toast"] == {"type": "error", "content": texts.PLAN_ROW_PROBLEM.format(n=2, problem=texts.ERR_STANDARD)}
    assert tasks(world, case_id) == []
    shown = {n["name"]: n for n in walk(ans["card"]["data"]) if n.get("name")}
    assert shown["content"]["default_value"] == TASK["content"] and shown["content_2"]["default_value"] == "页面适配"
    assert shown["owner_2"]["initial_option"] == DESIGN_HEAD
    assert shown["due_2"]["initial_datetime"] == "2026-12-09 12:00"
    empty = world.submit(LEAD, mid, {"start": "2026-12-09 09:00 +0800"}, form_name="plan_task")
    assert empty["toast"] == {"type": "error", "content": texts.PLAN_NO_ROWS}


def test_deadline_outside_working_hours_is_a_warning_the_planner_confirms(world):
    case_id, mid = open_plan(world)
    late = dict(TASK, due="2026-12-10 21:00 +0800")
    ans = world.submit(LEAD, mid, late, form_name="plan_task")
    warning = texts.WARN_DUE_OFF_HOURS.format(what=texts.WARN_ROW_WHAT.format(n=1), at="12-10 21:00")
    assert ans["toast"] == {"type": "warning", "content": warning}, ans
    assert tasks(world, case_id) == []
    card = ans["card"]["data"]
    assert any(kit.esc(warning) in n.get("content", "") for n in walk(card) if n.get("tag") == "markdown")
    button = next(n for n in walk(_form(card)["elements"]) if n.get("form_action_type") == "submit")
    assert button["text"]["content"] == texts.BTN_SAVE_ANYWAY
    # changing a value asks again; the same values again are saved
    other = world.submit(LEAD, mid, dict(late, content="另一个任务"), form_name="plan_task")
    assert other["toast"]["type"] == "warning" and tasks(world, case_id) == []
    assert world.submit(LEAD, mid, late, form_name="plan_task")["toast"]["type"] == "warning"   # warned anew
    ok = world.submit(LEAD, mid, late, form_name="plan_task")
    assert ok["toast"]["content"] == texts.TASK_ADDED.format(seq=1), ok
    assert [t.due_at.isoformat() for t in tasks(world, case_id)] == ["2026-12-10T13:00:00+00:00"]


def test_key_node_after_the_goal_date_is_a_warning(world):
    case_id, mid = open_plan(world)
    world.press(LEAD, mid, "＋关键节点")
    node = {"name": "上线", "at": "2026-12-12 10:00 +0800"}        # the goal date is 2026-12-11
    ans = world.submit(LEAD, mid, node, form_name="plan_node")
    assert ans["toast"] == {"type": "warning", "content": texts.WARN_NODE_AFTER_GOAL.format(
        name="上线", at="12-12 10:00", goal="2026-12-11")}, ans
    with world.state.factory() as s:
        assert s.scalars(select(KeyNode).where(KeyNode.case_id == case_id)).all() == []
    ok = world.submit(LEAD, mid, node, form_name="plan_node")
    assert ok["toast"]["content"] == texts.NODE_ADDED.format(name="上线")
    in_time = world.submit(LEAD, mid, {"name": "联调", "at": "2026-12-10 10:00 +0800"}, form_name="plan_node")
    assert in_time["toast"]["content"] == texts.NODE_ADDED.format(name="联调")   # no warning before the goal


def test_deleting_a_task_asks_first(world):
    case_id, mid = open_plan(world)
    world.submit(LEAD, mid, TASK, form_name="plan_task")
    delete = next(n for n in walk(world.card(mid)) if n.get("tag") == "button"
                  and n["text"]["content"] == texts.BTN_DELETE)
    assert delete["confirm"]["text"]["content"] == texts.PLAN_DELETE_TASK_CONFIRM[1].format(
        seq=1, content=TASK["content"])
    with world.state.factory() as s:
        assert s.scalar(select(Task.seq).where(Task.case_id == case_id)) == 1
