"""Clicks on one case that arrive together — a double click, one form submitted twice, two people
acting at once — on the real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), through the
webhook, on threads released at the same moment: the first click acts; each other gets what a
repeated or stale click gets (the current card, nothing changed), never an error. SQLite's single
writer runs clicks one after another; under PostgreSQL's READ COMMITTED two clicks whose checks
read before either wrote both acted, until a click held its case's row lock (bot.dispatch)."""
from __future__ import annotations

from sqlalchemy import func, select

from bot import texts
from bot.actions import from_name
from bot.models import AuditEntry, Case, ChangeRequest, RetroEntry, Task, TaskUpdate
from tests.casefactory import make_case_at_step4, make_plan_published, retro_case_card
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, find_submit, has_submit, step_entered
from tests.racing import callbacks_at_once

N = 4   # as many as the callback lane handles at once on PostgreSQL (bot.app.Lanes)
STALE = {"type": "warning", "content": texts.STALE_CARD}


def _count(world, model, *where) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _step5(world) -> tuple[int, list[int], str]:
    """A case in step 5 with two open tasks (#1 刘洋's, #2 王芳's), its case card in the group."""
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    tasks = make_plan_published(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    case_mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    world.press(LEAD, case_mid, texts.BTN_SHOW_TRACKING)
    return case_id, tasks, case_mid


def _tracking(world) -> str:
    """The 《进度跟踪表》 the group sees."""
    return card_text(world.last_card(title_contains="进度跟踪表")["content"])


def _update_form(world, user: str, case_mid: str) -> str:
    world.press(user, case_mid, texts.BTN_UPDATE_MINE)
    return world.last_card(title_contains="更新进度")["message_id"]


def _submit(user: str, form_mid: str, form: dict, name: str) -> dict:
    return {"user": user, "message_id": form_mid, "form": form, "name": name}


def _form_version(card: dict, task_id: int) -> int | None:
    return from_name(find_submit(card, f"f{task_id}")).version


def test_one_progress_update_form_submitted_at_once_records_one_update(world):
    case_id, (t1, _t2), case_mid = _step5(world)
    form = _update_form(world, TECH_DEV, case_mid)
    name = find_submit(world.card(form), f"f{t1}")
    shown_before = len(world.messages())
    answers = callbacks_at_once(world, [_submit(TECH_DEV, form, {f"s{t1}": "doing", f"p{t1}": "40"}, name)] * N)

    assert [a["status"] for a in answers] == [200] * N
    saved = {"type": "success", "content": texts.TASK_UPDATED.format(seq=1, status="进行中", progress=40)}
    toasts = [a.get("toast") for a in answers]
    assert toasts.count(saved) == 1 and toasts.count(STALE) == N - 1, toasts
    # every answer is the form as it is now: the update made, the version it moved on to
    for answer in answers:
        assert _form_version(answer["card"]["data"], t1) == 1, answer
    with world.state.factory() as s:
        assert [(u.actor_open_id, u.progress) for u in s.scalars(select(TaskUpdate))] == [(TECH_DEV, 40)]
        assert (s.get(Task, t1).status, s.get(Task, t1).progress) == ("doing", 40)
    assert _count(world, AuditEntry, AuditEntry.action == "task.update") == 1
    # the group: its case card shows the update, nothing else was said; 刘洋's form is current
    assert "40%" in _tracking(world)
    assert len(world.messages()) == shown_before
    assert _form_version(world.card(form), t1) == 1


def test_the_owner_and_the_lead_updating_one_task_at_once_record_one_update(world):
    case_id, (t1, _t2), case_mid = _step5(world)
    owner_form, lead_form = _update_form(world, TECH_DEV, case_mid), _update_form(world, LEAD, case_mid)
    answers = callbacks_at_once(world, [
        _submit(who, mid, {f"s{t1}": "doing", f"p{t1}": str(p)}, find_submit(world.card(mid), f"f{t1}"))
        for who, mid, p in ((TECH_DEV, owner_form, 30), (LEAD, lead_form, 60))])

    assert [a["status"] for a in answers] == [200, 200]
    won = [i for i, a in enumerate(answers) if a["toast"]["type"] == "success"]
    assert len(won) == 1, answers
    lost = 1 - won[0]
    assert answers[lost]["toast"] == STALE
    winner, progress = [(TECH_DEV, 30), (LEAD, 60)][won[0]]
    with world.state.factory() as s:
        assert [(u.actor_open_id, u.progress) for u in s.scalars(select(TaskUpdate))] == [(winner, progress)]
        assert s.get(Task, t1).progress == progress
    # the one who lost sees the winner's update in the form that came back, and may update from it
    assert _form_version(answers[lost]["card"]["data"], t1) == 1
    assert f"{progress}%" in _tracking(world)


def test_the_last_two_tasks_finished_at_once_end_execution_once(world):
    """Each finishes the task that the other's check saw open: the second must see the first's."""
    case_id, (t1, t2), case_mid = _step5(world)
    forms = {TECH_DEV: (_update_form(world, TECH_DEV, case_mid), t1),
             DESIGN_HEAD: (_update_form(world, DESIGN_HEAD, case_mid), t2)}
    answers = callbacks_at_once(world, [
        _submit(who, mid, {f"s{t}": "done", f"p{t}": "100"}, find_submit(world.card(mid), f"f{t}"))
        for who, (mid, t) in forms.items()])

    assert [a["toast"]["type"] for a in answers] == ["success", "success"], answers
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
        assert s.scalar(select(func.count()).select_from(TaskUpdate)) == 2
    assert world.announced().count(step_entered(6)) == 1


def test_one_change_request_submitted_at_once_is_filed_once(world):
    case_id, (t1, _t2), case_mid = _step5(world)
    world.say(TECH_DEV, "/调整")
    change = world.last_card(title_contains="调整申请 · ")["message_id"]
    typed = {"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "加密方案变更"}
    answers = callbacks_at_once(world, [_submit(TECH_DEV, change, typed, find_submit(world.card(change),
                                                                                     "change_edit"))] * N)

    assert [a["status"] for a in answers] == [200] * N
    assert [a["toast"] for a in answers] == [{"type": "success", "content": texts.CHANGE_SUBMITTED}] * N
    assert _count(world, ChangeRequest) == 1
    assert _count(world, AuditEntry, AuditEntry.action == "change.request") == 1
    assert len([m for m in world.cards() if "调整申请 #" in card_text(m["content"])]) == 1   # one request card


def test_one_plan_task_submitted_at_once_is_added_once(world):
    from tests.test_steps46_plan import TASK, open_plan

    case_id, plan = open_plan(world)
    world.press(TECH_HEAD, plan, "＋任务")   # the task form, for them only
    form = world.private_with(TECH_HEAD, lambda c: has_submit(c, "plan_task"))
    answers = callbacks_at_once(world, [_submit(TECH_HEAD, form, TASK, find_submit(world.card(form),
                                                                                   "plan_task"))] * N)

    assert [a["status"] for a in answers] == [200] * N
    toasts = [a["toast"]["content"] for a in answers]
    assert toasts.count(texts.TASK_ADDED.format(seq=1)) == 1, toasts
    assert toasts.count(texts.TASK_ALREADY_ADDED.format(seq=1)) == N - 1, toasts
    assert _count(world, Task, Task.case_id == case_id) == 1
    assert _count(world, AuditEntry, AuditEntry.action == "plan.save") == 1
    shown = card_text(world.card(plan))   # the group's plan card lists it once
    assert "编辑 #1" in shown and "#2" not in shown


def test_one_retrospective_entry_submitted_at_once_is_added_once(world):
    case_id, case_mid = retro_case_card(world)
    world.press(TECH_DEV, case_mid, texts.BTN_OPEN_RETRO)
    form = world.form_of(TECH_DEV)
    mid = next(m["message_id"] for m in reversed(world.private_cards(TECH_DEV)) if m["content"] == form)
    typed = {"add_success": "每日站会让滞后提前暴露"}
    answers = callbacks_at_once(world, [_submit(TECH_DEV, mid, typed, find_submit(form, "retro_entry"))] * N)

    assert [a["status"] for a in answers] == [200] * N
    toasts = [a["toast"]["content"] for a in answers]
    assert sum(t != texts.RETRO_DUPLICATE for t in toasts) == 1 and toasts.count(texts.RETRO_DUPLICATE) == N - 1, toasts
    assert _count(world, RetroEntry) == 1
    assert _count(world, AuditEntry, AuditEntry.action == "retro.entry") == 1


def test_a_click_that_a_deadlock_cancelled_is_done_again(world, monkeypatch):
    """PostgreSQL cancels one of two transactions that wait for each other (a click holds its case
    and waits for a task's row; other work holds that row and waits for the case): the cancelled
    click runs again, it is not answered 「请稍后重试」."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    _case_id, (t1, _t2), case_mid = _step5(world)
    form = _update_form(world, TECH_DEV, case_mid)
    dispatcher, tries = world.state.dispatcher, []
    handle = dispatcher._handle

    def cancelled_once(session, event, now):
        tries.append(event.header.event_id)
        if len(tries) == 1:
            handle(session, event, now)   # everything done, then cancelled: rolled back with the rest
            raise OperationalError("UPDATE tasks …", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
        return handle(session, event, now)

    monkeypatch.setattr(dispatcher, "_handle", cancelled_once)
    answer = world.submit(TECH_DEV, form, {f"s{t1}": "doing", f"p{t1}": "40"}, form_name=f"f{t1}")
    assert answer["toast"] == {"type": "success",
                               "content": texts.TASK_UPDATED.format(seq=1, status="进行中", progress=40)}
    assert len(tries) == 2 and tries[0] == tries[1]
    assert _count(world, TaskUpdate) == 1
    assert _count(world, AuditEntry, AuditEntry.action == "task.update") == 1
