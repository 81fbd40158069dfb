"""Numbers people type, pick or send back in a card (a step, a case's 「#N」, a task, a risk, a
progress) are read as ASCII digits within range where they are parsed: 「²」 passes
`str.isdigit()` but not `int()`, and a 30-digit id is refused by SQLite when bound. Either gets
the command's or the form's own clear answer and changes nothing — never 「处理出错了」 (S7, S10)."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot import texts
from bot.actions import RISK_CLOSE, ActionValue, to_name
from bot.ids import MAX_ID, number
from bot.models import Risk, Task
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD, TECH_DEV
from tests.test_steps46_plan import TASK, open_plan
from tests.test_steps46_tracking import _open_update_form, _setup, _task

HOSTILE = ["²", "١٢", "9" * 30, str(MAX_ID + 1)]


def test_number_reads_ascii_digits_within_range():
    assert number("0") == 0 and number("42") == 42 and number(str(MAX_ID)) == MAX_ID
    assert [number(v) for v in HOSTILE + ["", "-1", "1.5", " 1", "1e3"]] == [None] * 9
    assert number("7", top=6) is None and number(7) is None


def _no_internal_error(world, caplog) -> None:
    assert not any("处理出错了" in t for t in world.texts()), world.texts()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("text, answer", [
    ("/回退 ²", texts.BACK_USAGE),
    ("/导出 ²", texts.EXP_USAGE),
    ("/导出 " + "9" * 30, texts.EXP_USAGE),
])
def test_commands_with_odd_digits_get_their_usage(world, caplog, text, answer):
    make_case_at_step4(world.state.factory, now=world.clock.now())
    world.say(LEAD, text)
    assert world.texts()[-1] == answer
    _no_internal_error(world, caplog)


@pytest.mark.parametrize("token", ["#²", "#١", "＃" + "9" * 7])
def test_a_case_number_that_is_not_one_is_answered(world, caplog, token):
    make_case_at_step4(world.state.factory, now=world.clock.now())
    world.say(LEAD, f"/导出 {token}")
    assert world.texts(), "an answer"
    _no_internal_error(world, caplog)


def _two_tasks(world, mid) -> None:
    world.submit(LEAD, mid, TASK, form_name="plan_task")
    world.submit(LEAD, mid, dict(TASK, content="联调测试"), form_name="plan_task")


@pytest.mark.parametrize("raw", HOSTILE)
def test_a_task_id_no_task_can_have_is_refused_by_the_depends_form(world, caplog, raw):
    case_id, mid = open_plan(world)
    _two_tasks(world, mid)
    world.press(LEAD, mid, "设置依赖")
    ans = world.submit(LEAD, mid, {"task": raw, "depends": "0"}, form_name="plan_depends")
    assert ans["toast"] == {"type": "error", "content": texts.ERR_DEPENDS_TASK}
    _no_internal_error(world, caplog)


@pytest.mark.parametrize("raw", HOSTILE)
def test_a_dependency_no_task_can_have_is_refused(world, caplog, raw):
    case_id, mid = open_plan(world)
    _two_tasks(world, mid)
    with world.state.factory() as s:
        task_id = s.scalar(select(Task.id).where(Task.case_id == case_id).order_by(Task.id))
    world.press(LEAD, mid, "设置依赖")
    ans = world.submit(LEAD, mid, {"task": str(task_id), "depends": raw}, form_name="plan_depends")
    if raw.isascii():  # digits, but of no task: refused by name
        assert ans["toast"] == {"type": "error", "content": texts.ERR_DEPENDS_UNKNOWN}
    with world.state.factory() as s:
        assert s.get(Task, task_id).depends_on_id is None
    _no_internal_error(world, caplog)


@pytest.mark.parametrize("raw", ["²", "١٠", "9" * 30])
def test_a_progress_that_is_not_a_number_is_refused_clearly(world, caplog, raw):
    _case_id, (t1, _t2) = _setup(world)
    _answer, form = _open_update_form(world, TECH_DEV)
    ans = world.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": raw}, form_name=f"f{t1}")
    assert ans["toast"]["content"] == texts.BAD_PROGRESS.format(value=raw[:10])
    assert _task(world, t1).progress == 0
    _no_internal_error(world, caplog)


@pytest.mark.parametrize("raw", ["²", "9" * 30])
def test_closing_a_risk_no_risk_can_have_is_answered(world, caplog, raw):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    case_msg = world.last_card(title_contains="新品推广页面延迟")
    ans = world.click(LEAD, case_msg["message_id"], form={"risk": raw, "note": "好了"},
                      name=to_name(ActionValue(RISK_CLOSE, case_id=case_id)))
    assert ans["toast"]["content"] == texts.RISK_NOT_FOUND
    with world.state.factory() as s:
        assert all(r.status == "open" for r in s.scalars(select(Risk).where(Risk.case_id == case_id)))
    _no_internal_error(world, caplog)


@pytest.mark.parametrize("create_time", ["²", "١٧٠٠٠٠٠٠٠٠"])
def test_a_create_time_in_other_digits_is_400_without_an_error(world, caplog, create_time):
    from feishu_fake import events as ev
    from tests.driver import APP_ID, CHAT, TENANT, VERIFICATION_TOKEN

    payload = ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text="/帮助", app_id=APP_ID, tenant_key=TENANT,
                               token=VERIFICATION_TOKEN, create_ms=1)
    payload["header"]["create_time"] = create_time
    resp = world.post(payload)
    assert resp.status_code == 400 and resp.json() == {"msg": "bad request"}
    _no_internal_error(world, caplog)
