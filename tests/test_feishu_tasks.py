"""飞书任务 (Task v2) sync against the stateful fake: the lead turns it on from the case card, the
plan's tasks appear as Feishu tasks, changes flow both ways, retries never duplicate, deletions and
missing scopes are told to the lead once."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Case, FeishuTaskLink, FeishuTaskSync, Task, TaskUpdate
from handlers.feishu_tasks import poll_tick
from tests.casefactory import TaskSpec
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, fits
from tests.feishu_sync import (
    TITLE,
    approve_change,
    audit,
    case_card,
    published,
    queue_syncs,
    sync_world,
    task_row,
    update_progress,
)
from tests.racing import two_senders_at_once


@pytest.fixture
def tw(database_url, clock):
    with sync_world(database_url, clock, feishu_tasks="offer") as w:
        yield w


def _turn_on(w, user=LEAD):
    return w.press(user, case_card(w)["message_id"], texts.BTN_FTASKS_ON)


def _links(w):
    with w.state.factory() as s:
        return {ln.task_id: ln for ln in s.scalars(select(FeishuTaskLink))}


def _poll(w):
    poll_tick(w.state.factory, w.clock.now())
    w.drain()


def test_lead_turns_it_on_and_each_task_becomes_a_feishu_task(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)   # who may, and the card it answers with: test_feishu_syncs_alike
    [tasklist] = tw.fake.tasklists()
    assert tasklist["name"] == f"{TITLE}（#{case_id}）"   # the case marker keeps it unique
    tasks = {t["summary"]: t for t in tw.fake.tasks()}
    assert set(tasks) == {"#1 完成用户数据加密接口开发", "#2 协调设计部完成页面适配"}
    first = tasks["#1 完成用户数据加密接口开发"]
    assert [m["id"] for m in first["members"] if m["role"] == "assignee"] == [TECH_DEV]
    assert {m["id"] for m in first["members"] if m["role"] == "follower"} == {LEAD, TECH_HEAD, DESIGN_HEAD}
    assert "交付标准：12月10日18点前提交测试" in first["description"]
    assert "所需资源：无" in first["description"]
    with tw.state.factory() as s:
        task = s.get(Task, t1)
        assert first["start"]["timestamp"] == str(int(task.start_at.timestamp() * 1000))
        assert first["due"]["timestamp"] == str(int(task.due_at.timestamp() * 1000))
    assert first["tasklists"] == [{"tasklist_guid": tasklist["guid"]}]
    links = _links(tw)
    assert {links[t1].task_guid, links[t2].task_guid} == {t["guid"] for t in tasks.values()}
    assert audit(tw, "ftasks.on") == [texts.AUDIT_FTASKS_ON]
    # a second press and another sync create nothing more
    again = tw.press(LEAD, case_card(tw)["message_id"], texts.BTN_FTASKS_OFF)
    assert again["toast"]["content"] == texts.FTASKS_OFF_TOAST
    assert len(tw.fake.tasks()) == 2 and len(tw.fake.tasklists()) == 1


def test_a_retried_create_returns_the_same_task(tw):
    """The response of a create is lost (here: the link row is gone, as after a crash between the
    call and the commit): the next run asks with the same client_token and Feishu hands back the
    task it made the first time."""
    case_id, (t1, _t2) = published(tw)
    _turn_on(tw)
    first_guid = _links(tw)[t1].task_guid
    with tw.state.factory() as s, s.begin():
        s.delete(s.scalar(select(FeishuTaskLink).where(FeishuTaskLink.task_id == t1)))
    update_progress(tw, TECH_DEV, t1, "doing", 40)
    assert len(tw.fake.tasks()) == 2
    assert _links(tw)[t1].task_guid == first_guid
    creates = tw.fake.calls_to("/open-apis/task/v2/tasks", "POST")
    tokens = [c.json["client_token"] for c in creates if c.path == "/open-apis/task/v2/tasks"]
    assert len(tokens) == 3 and len(set(tokens)) == 2   # the repeat carried the same token


def test_a_transient_failure_is_retried_without_duplicates(tw):
    case_id, _ids = published(tw)
    tw.fake.fail_next(1, status=503)   # the tasklist create fails once
    _turn_on(tw)
    tw.clock.advance(timedelta(seconds=5))
    tw.drain()   # the outbox retries the sync row
    assert len(tw.fake.tasklists()) == 1 and len(tw.fake.tasks()) == 2


def test_a_lost_tasklist_answer_is_adopted_not_created_again(tw):
    """Feishu made the tasklist but its answer was lost: the retry finds the list by its exact name
    (created by the app; a person's list of the same name is not ours) and puts every task in it."""
    case_id, _ids = published(tw)
    with tw.state.factory() as s:
        title = s.get(Case, case_id).title
    decoy = tw.fake.user_create_tasklist(f"{title}（#{case_id}）")
    tw.fake.lose_next("/open-apis/task/v2/tasklists")   # it takes effect; the client sees a 504
    _turn_on(tw)
    assert [t["name"] for t in tw.fake.tasklists()].count(f"{title}（#{case_id}）") == 2   # ours + decoy
    assert tw.fake.tasks() == []       # nothing went into a list we could not name
    with tw.state.factory() as s:
        sync = s.scalar(select(FeishuTaskSync).where(FeishuTaskSync.case_id == case_id))
        assert sync.tasklist_guid is None and sync.tasklist_pending == f"{title}（#{case_id}）"
    tw.clock.advance(timedelta(seconds=5))
    tw.drain()                         # the outbox retries the sync row
    ours = [t for t in tw.fake.tasklists() if t["guid"] != decoy["guid"]]
    assert len(ours) == 1
    creates = [c for c in tw.fake.calls_to("/open-apis/task/v2/tasklists", "POST")
               if c.path == "/open-apis/task/v2/tasklists"]
    assert len(creates) == 1           # looked, found, never asked to create again
    assert len(tw.fake.tasks()) == 2
    assert all(t["tasklists"] == [{"tasklist_guid": ours[0]["guid"]}] for t in tw.fake.tasks())
    with tw.state.factory() as s:
        sync = s.scalar(select(FeishuTaskSync).where(FeishuTaskSync.case_id == case_id))
        assert sync.tasklist_guid == ours[0]["guid"] and sync.tasklist_pending is None


def test_bot_updates_flow_to_the_task(tw):
    case_id, (t1, _t2) = published(tw)
    _turn_on(tw)
    tw.clock.advance(timedelta(hours=1))
    update_progress(tw, TECH_DEV, t1, "doing", 40)
    remote = tw.fake.task(_links(tw)[t1].task_guid)
    assert "状态：进行中 · 完成率 40%" in remote["description"]
    assert remote["completed_at"] == "0"
    update_progress(tw, TECH_DEV, t1, "done", 100)
    remote = tw.fake.task(_links(tw)[t1].task_guid)
    assert remote["completed_at"] != "0" and remote["status"] == "done"


def test_completion_in_feishu_flows_back_within_a_minute(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    tw.clock.advance(timedelta(minutes=30))
    tw.fake.user_complete_task(_links(tw)[t2].task_guid, DESIGN_HEAD)
    _poll(tw)
    task = task_row(tw, t2)
    assert (task.status, task.progress) == ("done", 100)
    with tw.state.factory() as s:
        [update] = s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == t2)).all()
    assert (update.actor_open_id, update.status, update.progress) == ("feishu", "done", 100)
    assert audit(tw, "ftask.remote") == [texts.AUDIT_FTASK_DONE.format(seq=2)]
    # the task was on time: no question in the group; a second poll changes nothing
    assert not any(fits(texts.FTASK_NEED_REASON, t) for t in tw.texts())
    _poll(tw)
    with tw.state.factory() as s:
        assert len(s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == t2)).all()) == 1


def test_last_task_completed_in_feishu_ends_execution(tw):
    now = tw.clock.now()
    case_id, (t1,) = published(tw, [TaskSpec("接口开发", TECH_DEV, now, now + timedelta(days=2))])
    _turn_on(tw)
    tw.fake.user_complete_task(_links(tw)[t1].task_guid, TECH_DEV)
    _poll(tw)
    with tw.state.factory() as s:
        assert s.get(Case, case_id).step == 6
    assert texts.ALL_TASKS_DONE in card_text(tw.last_card(title_contains="「")["content"])   # the step-6 case card


def test_completed_late_in_feishu_asks_for_the_lag_reason_in_the_group(tw):
    now = tw.clock.now()
    case_id, (t1, t2) = published(tw, [
        TaskSpec("接口开发", TECH_DEV, now - timedelta(days=3), now - timedelta(days=1), status="doing", progress=50),
        TaskSpec("页面适配", DESIGN_HEAD, now, now + timedelta(days=2))])
    _turn_on(tw)
    tw.fake.user_complete_task(_links(tw)[t1].task_guid, TECH_DEV)
    _poll(tw)
    asked = [t for t in tw.texts() if fits(texts.FTASK_NEED_REASON, t)]
    assert len(asked) == 1 and f'<at user_id="{TECH_DEV}"></at>' in asked[0] and "#1" in asked[0]
    assert task_row(tw, t1).status == "done"


def test_reopened_in_feishu_goes_back_to_doing_with_its_last_progress(tw):
    now = tw.clock.now()
    case_id, (t1, t2) = published(tw, [TaskSpec("接口开发", TECH_DEV, now, now + timedelta(days=2)),
                                        TaskSpec("页面适配", DESIGN_HEAD, now, now + timedelta(days=2))])
    _turn_on(tw)
    update_progress(tw, TECH_DEV, t1, "doing", 60)
    update_progress(tw, TECH_DEV, t1, "done", 100)
    tw.clock.advance(timedelta(minutes=5))
    tw.fake.user_reopen_task(_links(tw)[t1].task_guid)
    _poll(tw)
    task = task_row(tw, t1)
    assert (task.status, task.progress) == ("doing", 60)
    assert any(fits(texts.FTASK_REOPENED, t) for t in tw.texts())


def _unpushed_change(w, task_id, status, progress, at):
    """A bot-side change whose push has not run yet (the outbox row still queued)."""
    with w.state.factory() as s, s.begin():
        task = s.get(Task, task_id)
        task.status, task.progress, task.updated_at = status, progress, at


def test_both_sides_changed_feishu_later_wins_and_the_audit_says_so(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    guid = _links(tw)[t1].task_guid
    _unpushed_change(tw, t1, "doing", 60, tw.clock.now() + timedelta(minutes=1))
    tw.clock.advance(timedelta(minutes=2))
    tw.fake.user_complete_task(guid)          # later than the bot's change
    _poll(tw)
    assert (task_row(tw, t1).status, task_row(tw, t1).progress) == ("done", 100)
    [note] = audit(tw, "ftask.remote")
    assert fits(texts.AUDIT_FTASK_CONFLICT_REMOTE, note) and "#1" in note
    assert tw.fake.task(guid)["completed_at"] != "0"


def test_both_sides_changed_the_bot_later_wins_and_is_written_back(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    guid = _links(tw)[t1].task_guid
    tw.clock.advance(timedelta(minutes=1))
    tw.fake.user_complete_task(guid)          # Feishu: done at +1 min
    _unpushed_change(tw, t1, "blocked", 30, tw.clock.now() + timedelta(minutes=1))   # the bot: +2 min
    tw.clock.advance(timedelta(minutes=3))
    _poll(tw)
    assert (task_row(tw, t1).status, task_row(tw, t1).progress) == ("blocked", 30)
    [note] = audit(tw, "ftask.conflict")
    assert fits(texts.AUDIT_FTASK_CONFLICT_BOT, note)
    assert audit(tw, "ftask.remote") == []
    assert tw.fake.task(guid)["completed_at"] == "0"    # re-opened in Feishu


def test_feishu_change_seen_in_the_answer_to_a_patch(tw):
    """Completed in Feishu after our last read, then the owner reports progress in the group: the
    answer to that patch shows the completion; the later change (the owner's) wins."""
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    guid = _links(tw)[t1].task_guid
    tw.fake.user_complete_task(guid)
    tw.clock.advance(timedelta(minutes=10))
    update_progress(tw, TECH_DEV, t1, "doing", 70)
    tw.drain()
    assert (task_row(tw, t1).status, task_row(tw, t1).progress) == ("doing", 70)
    assert len(audit(tw, "ftask.conflict")) == 1
    assert tw.fake.task(guid)["completed_at"] == "0"


def test_deleted_in_feishu_is_reported_once_and_never_recreated(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    tw.fake.user_delete_task(_links(tw)[t1].task_guid)
    _poll(tw)
    _poll(tw)
    update_progress(tw, TECH_DEV, t1, "doing", 50)
    said = [t for t in tw.texts() if fits(texts.FTASK_DELETED, t)]
    assert len(said) == 1 and f'<at user_id="{LEAD}"></at>' in said[0]
    assert len(tw.fake.tasks()) == 1
    assert _links(tw)[t1].deleted_at is not None
    assert task_row(tw, t1).progress == 50   # the case carries on in the group


def test_missing_scope_tells_the_lead_once_and_the_case_carries_on(tw):
    case_id, (t1, t2) = published(tw)
    tw.fake.revoke_scope("task:task:write")
    _turn_on(tw)
    said = [t for t in tw.texts() if fits(texts.FTASK_SCOPE_MISSING, t)]
    assert len(said) == 1 and "task:task:write" in said[0]
    with tw.state.factory() as s:
        assert s.scalar(select(FeishuTaskSync)).problem == "scope:task:task:write"
    calls = len(tw.fake.calls_to("/open-apis/task/v2"))
    update_progress(tw, TECH_DEV, t1, "doing", 30)
    _poll(tw)
    assert len(tw.fake.calls_to("/open-apis/task/v2")) == calls   # paused: no calls, no repeat
    assert len([t for t in tw.texts() if fits(texts.FTASK_SCOPE_MISSING, t)]) == 1
    assert task_row(tw, t1).progress == 30
    # the scope is added; the lead turns it on again from the card and the tasks arrive
    tw.fake.grant_scopes("task:task:write", "task:task:read", "task:tasklist:write")
    _turn_on(tw)
    assert len(tw.fake.tasks()) == 2


def test_approved_changes_move_the_owner_drop_and_add_tasks(tw):
    case_id, (t1, t2) = published(tw)
    _turn_on(tw)
    g1, g2 = _links(tw)[t1].task_guid, _links(tw)[t2].task_guid
    approve_change(tw, LEAD, "", {"task": str(t1), "owner": TECH_HEAD, "due": "2026-12-11 18:00 +0800",
                                  "reason": "人手调整"}, "change_edit")
    remote = tw.fake.task(g1)
    assert [m["id"] for m in remote["members"] if m["role"] == "assignee"] == [TECH_HEAD]
    assert TECH_DEV in {m["id"] for m in remote["members"] if m["role"] == "follower"}
    assert TECH_HEAD not in {m["id"] for m in remote["members"] if m["role"] == "follower"}
    with tw.state.factory() as s:
        assert remote["due"]["timestamp"] == str(int(s.get(Task, t1).due_at.timestamp() * 1000))
    approve_change(tw, LEAD, "取消任务", {"task": str(t2), "reason": "页面不再需要适配"}, "change_drop")
    dropped = tw.fake.task(g2)
    assert dropped["summary"].startswith(texts.FTASK_CANCELLED_PREFIX) and dropped["completed_at"] != "0"
    approve_change(tw, LEAD, "新增任务", {"content": "紧急推广功能", "owner": TECH_HEAD,
                                          "due": "2026-12-10 12:00 +0800", "standard": "功能上线",
                                          "reason": "竞品提前发布"}, "change_add")
    assert "#3 紧急推广功能" in {t["summary"] for t in tw.fake.tasks()}
    assert len(tw.fake.tasks()) == 3


def test_default_setting_syncs_without_a_click(database_url, clock):
    with sync_world(database_url, clock, feishu_tasks="default") as w:
        case_id, (t1, t2) = published(w)
        update_progress(w, TECH_DEV, t1, "doing", 20)
        assert len(w.fake.tasks()) == 2
        assert texts.BTN_FTASKS_OFF in card_text(case_card(w)["content"])


def test_two_senders_racing_create_each_task_once(tw):
    """Two processes' senders claim at once: the case's chat chain lets one write at a time, and
    each sync either creates the tasks or finds them made — never twice."""
    from bot.sync_tasks import TARGET

    case_id, _ids = published(tw)
    with tw.state.factory() as s, s.begin():
        case = s.get(Case, case_id)
        s.add(FeishuTaskSync(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id, enabled=True,
                             changed_at=tw.clock.now()))
    queue_syncs(tw, case_id, TARGET, "race-a", "race-b")
    one, two = two_senders_at_once(tw)
    statuses = sorted(d.status for d in one + two)
    assert statuses == ["sent", "sent"]          # each racer sent one of the two rows
    assert len(tw.fake.tasklists()) == 1 and len(tw.fake.tasks()) == 2


def test_two_senders_racing_after_a_lost_tasklist_answer_still_one_tasklist(tw):
    """The first create's answer is lost, then two senders race on the retry: one adopts the list,
    the other finds it saved — one tasklist, every task in it."""
    from bot.sync_tasks import TARGET

    case_id, _ids = published(tw)
    tw.fake.lose_next("/open-apis/task/v2/tasklists")
    _turn_on(tw)
    assert len(tw.fake.tasklists()) == 1 and tw.fake.tasks() == []
    queue_syncs(tw, case_id, TARGET, "race2-a", "race2-b")
    tw.clock.advance(timedelta(seconds=5))
    one, two = two_senders_at_once(tw)
    assert all(d.status == "sent" for d in one + two) and len(one + two) >= 2
    tw.drain()
    [tasklist] = tw.fake.tasklists()
    assert len(tw.fake.tasks()) == 2
    assert all(t["tasklists"] == [{"tasklist_guid": tasklist["guid"]}] for t in tw.fake.tasks())


def test_read_backs_stop_when_nothing_is_open_there_and_old_rows_are_deleted(tw):
    from bot.models import Outbox

    now = tw.clock.now()
    case_id, (t1, t2) = published(tw, [TaskSpec("接口开发", TECH_DEV, now, now + timedelta(days=2)),
                                        TaskSpec("页面适配", DESIGN_HEAD, now, now + timedelta(days=2))])
    _turn_on(tw)
    _poll(tw)

    def poll_rows():
        with tw.state.factory() as s:
            return s.scalars(select(Outbox.status).where(Outbox.fire_key.startswith("ftpoll-"))).all()

    assert poll_rows() == ["sent"]
    tw.clock.advance(timedelta(hours=2))
    _poll(tw)
    assert poll_rows() == ["sent"]          # the one from two hours ago is gone, this minute's stays
    tw.fake.user_delete_task(_links(tw)[t1].task_guid)
    tw.fake.user_complete_task(_links(tw)[t2].task_guid)
    tw.clock.advance(timedelta(minutes=1))
    _poll(tw)        # one deleted there, the other done: the case stays in step 5 (#1 is open in the group)
    with tw.state.factory() as s:
        assert s.get(Case, case_id).step == 5
    tw.clock.advance(timedelta(minutes=1))
    assert poll_tick(tw.state.factory, tw.clock.now()) == 0   # nothing left open in Feishu to read back
