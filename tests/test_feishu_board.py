"""多维表格 board sync against the stateful fake: the lead creates the board from the case card,
the case's tasks, risks and key nodes appear as records and follow every change, the tenant's
《协作问题总览》 has one row per case, retries never duplicate, deletions and missing scopes are told
to the lead once, and edits made in the board come back through a card update's checks."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import FeishuBoard, FeishuBoardRow, FeishuOverview, Task, TaskUpdate
from bot.sync_board import records_token
from handlers.feishu_board import poll_tick
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import CHAT, DESIGN_HEAD, LEAD, OTHER_CHAT, TECH_DEV, TECH_HEAD, card_text, fits
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
def bw(database_url, clock):
    with sync_world(database_url, clock, feishu_board="offer") as w:
        yield w


def _turn_on(w, user=LEAD):
    return w.press(user, case_card(w)["message_id"], texts.BTN_BOARD_ON)


def _board(w):
    with w.state.factory() as s:
        return s.scalar(select(FeishuBoard))


def _rows(w, kind="task"):
    with w.state.factory() as s:
        return {r.item_id: r for r in s.scalars(select(FeishuBoardRow).where(FeishuBoardRow.kind == kind))}


def _records(w, table):
    return {r["record_id"]: r for r in w.fake.records(_board(w).app_token, table)}


def _task_record(w, task_id):
    return _records(w, "任务")[_rows(w)[task_id].record_id]


def _poll(w):
    poll_tick(w.state.factory, w.clock.now())
    w.drain()


def _edit(w, task_id, fields, who):
    board = _board(w)
    w.fake.user_edit_record(board.app_token, board.tables["task"], _rows(w)[task_id].record_id, fields, who)


def test_lead_creates_the_board_and_every_item_becomes_a_record(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)   # who may, and the card it answers with: test_feishu_syncs_alike
    board = _board(bw)
    bases = {b["name"]: b for b in bw.fake.bases()}
    assert set(bases) == {texts.BOARD_BASE_NAME.format(title=TITLE), texts.BOARD_OVERVIEW_NAME}
    base = bases[texts.BOARD_BASE_NAME.format(title=TITLE)]
    assert board.app_token == base["app_token"] and board.url == base["url"]
    assert set(board.tables) == {"task", "risk", "node"}
    # 任务: the documented field types, the owner as a person, dates in ms
    table = bw.fake.table_named(board.app_token, "任务")
    types = {f["field_name"]: f["type"] for f in table["fields"]}
    assert types == {"任务": 1, "编号": 2, "负责人": 11, "状态": 3, "完成率": 2, "开始": 5, "截止": 5, "滞后": 7,
                     "滞后原因": 1, "调整措施": 1, "交付标准": 1}
    first = _task_record(bw, t1)["fields"]
    task = task_row(bw, t1)
    assert first["任务"] == "完成用户数据加密接口开发" and first["负责人"] == [{"id": TECH_DEV}]
    assert (first["状态"], first["完成率"], first["滞后"]) == ("未开始", 0, False)
    assert first["截止"] == int(task.due_at.timestamp() * 1000)
    assert first["交付标准"] == "12月10日18点前提交测试"
    [risk] = bw.fake.records(board.app_token, "风险")
    assert risk["fields"]["风险"] == "测试延迟" and risk["fields"]["负责人"] == [{"id": TECH_HEAD}]
    assert (risk["fields"]["可能性"], risk["fields"]["影响"], risk["fields"]["状态"]) == ("中", "高", "未关闭")
    [node] = bw.fake.records(board.app_token, "关键节点")
    assert node["fields"]["节点"] == "上线"
    # one batch_create per table, each with a uuid token derived from our key
    creates = [c for c in bw.fake.calls_to("/open-apis/bitable/v1/apps/") if c.path.endswith("/batch_create")]
    assert len(creates) == 4   # 任务, 风险, 关键节点, 总览
    task_create = [c for c in creates if c.path.endswith(f"/{board.tables['task']}/records/batch_create")][0]
    assert len(task_create.json["records"]) == 2
    assert task_create.query["client_token"] == records_token(_tenant(bw), case_id, "task",
                                                              [t1, t2])
    # the lead got the link once
    ready = [t for t in bw.texts() if fits(texts.BOARD_READY, t)]
    assert len(ready) == 1 and base["url"] in ready[0]
    assert audit(bw, "board.on") == [texts.AUDIT_BOARD_ON]


def _tenant(w):
    with w.state.factory() as s:
        return s.scalar(select(FeishuBoard)).tenant_key


def test_bot_changes_reach_the_board_with_batch_update_only_for_what_changed(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    bw.say(TECH_DEV, "/进度")
    card = case_card(bw)
    bw.press(TECH_DEV, card["message_id"], "更新我的进度")
    form = bw.last_card(title_contains="更新进度")
    before = len(bw.fake.calls_to("/open-apis/bitable/v1/apps/"))
    bw.submit(TECH_DEV, form["message_id"], {f"s{t1}": "doing", f"p{t1}": "40"}, form_name=f"f{t1}")
    rec = _task_record(bw, t1)["fields"]
    assert (rec["状态"], rec["完成率"]) == ("进行中", 40)
    updates = [c for c in bw.fake.calls_to("/open-apis/bitable/v1/apps/")[before:] if c.path.endswith("/batch_update")]
    task_updates = [c for c in updates if f"/{_board(bw).tables['task']}/" in c.path]
    assert len(task_updates) == 1 and [r["record_id"] for r in task_updates[0].json["records"]] == [
        _rows(bw)[t1].record_id]
    assert not [c for c in bw.fake.calls_to("/open-apis/bitable/v1/apps") if c.path.endswith("/batch_create")
                and c.time > bw.fake.calls[before].time]   # nothing created again


def test_a_lost_create_answer_is_asked_again_with_the_same_token(bw):
    """The answer of batch_create is lost (the row's record id never stored, as after a crash
    between the call and the commit): the next run asks with the stored token and gets the same
    records back — the board never has a task twice."""
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    first = _rows(bw)[t1].record_id
    with bw.state.factory() as s, s.begin():
        for r in s.scalars(select(FeishuBoardRow).where(FeishuBoardRow.kind == "task")):
            r.record_id = None
    _turn_off_and_on(bw)
    assert len(bw.fake.records(_board(bw).app_token, "任务")) == 2
    assert _rows(bw)[t1].record_id == first


def _turn_off_and_on(w):
    w.press(LEAD, case_card(w)["message_id"], texts.BTN_BOARD_OFF)
    w.press(LEAD, case_card(w)["message_id"], texts.BTN_BOARD_ON)


def test_a_transient_failure_is_retried_without_duplicates(bw):
    published(bw)
    bw.fake.fail_next(1, status=503)   # the base create fails once
    _turn_on(bw)
    bw.clock.advance(timedelta(seconds=5))
    bw.drain()
    assert len(bw.fake.bases()) == 2   # the case's board and the overview, once each
    assert len(bw.fake.records(_board(bw).app_token, "任务")) == 2


def test_overview_has_one_row_per_case_and_one_base_per_tenant(bw):
    published(bw)
    _turn_on(bw)
    now = bw.clock.now()
    other = make_case_at_step4(bw.state.factory, now=now, title="报销流程卡顿", chat_id=OTHER_CHAT)
    make_plan_published(bw.state.factory, other, now=now, tasks=[
        TaskSpec("梳理审批节点", TECH_DEV, now - timedelta(days=3), now - timedelta(days=1))])   # lagging
    bw.say(LEAD, "/进度", chat=OTHER_CHAT)
    card = bw.last_card(title_contains="报销流程卡顿", chat=OTHER_CHAT)
    bw.press(LEAD, card["message_id"], texts.BTN_BOARD_ON, chat=OTHER_CHAT)
    with bw.state.factory() as s:
        [ov] = s.scalars(select(FeishuOverview)).all()
    assert [b["name"] for b in bw.fake.bases()].count(texts.BOARD_OVERVIEW_NAME) == 1
    rows = {r["fields"]["协作问题"]: r["fields"] for r in bw.fake.records(ov.app_token, texts.BOARD_OVERVIEW_TABLE)}
    assert set(rows) == {TITLE, "报销流程卡顿"}
    assert rows["报销流程卡顿"]["滞后任务"] == 1 and rows[TITLE]["滞后任务"] == 0
    assert rows[TITLE]["负责人"] == [{"id": LEAD}] and rows[TITLE]["阶段"] == texts.STEP_SHORT[5]
    assert rows[TITLE]["下一个关键节点"].startswith("上线 ")


@pytest.mark.parametrize(("who", "which", "progress"), [(TECH_DEV, 0, 30), (LEAD, 1, 10)], ids=["owner", "lead"])
def test_the_owner_or_the_lead_edits_a_task_in_the_board_and_it_comes_back_within_a_minute(bw, who, which,
                                                                                            progress):
    case_id, ids = published(bw)
    task_id = ids[which]   # the lead may edit any task, the owner their own
    _turn_on(bw)
    bw.clock.advance(timedelta(minutes=20))
    _edit(bw, task_id, {"状态": "进行中", "完成率": progress}, who)
    _poll(bw)
    task = task_row(bw, task_id)
    assert (task.status, task.progress) == ("doing", progress)
    with bw.state.factory() as s:
        [update] = s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == task_id)).all()
    assert (update.actor_open_id, update.progress) == (who, progress)   # who edited, from last_modified_by
    assert audit(bw, "board.edit") == [texts.AUDIT_BOARD_EDIT.format(seq=which + 1)]
    _poll(bw)   # seen once: a second read-back changes nothing
    with bw.state.factory() as s:
        assert len(s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == task_id)).all()) == 1


def test_someone_else_editing_a_task_is_reverted_and_told_once(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    _edit(bw, t1, {"完成率": 80}, DESIGN_HEAD)   # not the owner, not the lead
    _poll(bw)
    _poll(bw)
    assert task_row(bw, t1).progress == 0
    assert _task_record(bw, t1)["fields"]["完成率"] == 0   # written back over
    said = [t for t in bw.texts() if fits(texts.BOARD_EDIT_REFUSED, t)]
    assert len(said) == 1 and texts.BOARD_WHY_NOT_OWNER in said[0] and "#1" in said[0]


def test_a_lagging_task_needs_a_reason_in_the_board_too(bw):
    now = bw.clock.now()
    case_id, (t1,) = published(bw, [TaskSpec("接口开发", TECH_DEV, now - timedelta(days=3), now - timedelta(hours=1),
                                              status="doing", progress=50)])
    _turn_on(bw)
    _edit(bw, t1, {"完成率": 60}, TECH_DEV)
    _poll(bw)
    assert task_row(bw, t1).progress == 50
    assert _task_record(bw, t1)["fields"]["完成率"] == 50
    assert len([t for t in bw.texts() if fits(texts.BOARD_EDIT_REFUSED, t)]) == 1
    bw.clock.advance(timedelta(minutes=1))
    _edit(bw, t1, {"完成率": 60, "滞后原因": "联调环境没准备好", "调整措施": "周三前补齐"}, TECH_DEV)
    _poll(bw)
    task = task_row(bw, t1)
    assert (task.progress, task.lag_reason, task.adjustment) == (60, "联调环境没准备好", "周三前补齐")


def test_a_deleted_record_is_told_to_the_lead_once_and_never_recreated(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    board = _board(bw)
    bw.fake.user_delete_record(board.app_token, board.tables["task"], _rows(bw)[t1].record_id)
    _poll(bw)
    _poll(bw)
    bw.say(TECH_DEV, "/进度")
    update_progress(bw, TECH_DEV, t1, "doing", 50)
    said = [t for t in bw.texts() if fits(texts.BOARD_RECORD_DELETED, t)]
    assert len(said) == 1 and f'<at user_id="{LEAD}"></at>' in said[0] and "#1" in said[0]
    assert len(bw.fake.records(board.app_token, "任务")) == 1
    assert _rows(bw)[t1].deleted_at is not None
    assert task_row(bw, t1).progress == 50


def test_missing_scope_tells_the_lead_once_and_the_case_carries_on(bw):
    case_id, (t1, t2) = published(bw)
    bw.fake.revoke_scope("bitable:app")
    _turn_on(bw)
    said = [t for t in bw.texts() if fits(texts.BOARD_SCOPE_MISSING, t)]
    assert len(said) == 1 and "bitable:app" in said[0]
    assert _board(bw).problem == "scope:bitable:app"
    calls = len(bw.fake.calls_to("/open-apis/bitable"))
    _poll(bw)
    assert len(bw.fake.calls_to("/open-apis/bitable")) == calls
    assert len([t for t in bw.texts() if fits(texts.BOARD_SCOPE_MISSING, t)]) == 1
    bw.fake.grant_scopes("bitable:app")
    _turn_on(bw)
    assert len(bw.fake.records(_board(bw).app_token, "任务")) == 2


def test_approved_changes_move_the_owner_drop_and_add_records(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    approve_change(bw, LEAD, "", {"task": str(t1), "owner": TECH_HEAD, "due": "2026-12-11 18:00 +0800",
                                  "reason": "人手调整"}, "change_edit")
    rec = _task_record(bw, t1)["fields"]
    assert rec["负责人"] == [{"id": TECH_HEAD}] and rec["截止"] == int(task_row(bw, t1).due_at.timestamp() * 1000)
    approve_change(bw, LEAD, "取消任务", {"task": str(t2), "reason": "页面不再需要适配"}, "change_drop")
    assert _task_record(bw, t2)["fields"]["任务"].startswith(texts.FTASK_CANCELLED_PREFIX)
    approve_change(bw, LEAD, "新增任务", {"content": "紧急推广功能", "owner": TECH_HEAD,
                                          "due": "2026-12-10 12:00 +0800", "standard": "功能上线",
                                          "reason": "竞品提前发布"}, "change_add")
    names = [r["fields"]["任务"] for r in bw.fake.records(_board(bw).app_token, "任务")]
    assert len(names) == 3 and "紧急推广功能" in names


def test_closing_a_risk_reaches_the_board(bw):
    case_id, _ids = published(bw)
    _turn_on(bw)
    with bw.state.factory() as s, s.begin():
        from bot.models import Risk
        s.scalar(select(Risk)).status = "closed"
    _poll(bw)   # the minute's read-back also writes what changed in the bot
    [risk] = bw.fake.records(_board(bw).app_token, "风险")
    assert risk["fields"]["状态"] == "已关闭"


def test_default_setting_creates_the_board_without_a_click(database_url, clock):
    with sync_world(database_url, clock, feishu_board="default") as w:
        case_id, (t1, t2) = published(w)
        assert texts.BTN_BOARD_OFF in card_text(case_card(w)["content"])
        update_progress(w, TECH_DEV, t1, "doing", 20)
        assert _task_record(w, t1)["fields"]["完成率"] == 20


def test_two_senders_racing_create_each_record_once(bw):
    """Two processes' senders claim at once: the case's chat chain lets one write at a time, and
    each sync either creates the board or finds it made — never twice."""
    from bot.models import Case
    from bot.sync_board import TARGET

    case_id, _ids = published(bw)
    with bw.state.factory() as s, s.begin():
        case = s.get(Case, case_id)
        s.add(FeishuBoard(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id, enabled=True,
                          changed_at=bw.clock.now(), tables={}, url=""))
    queue_syncs(bw, case_id, TARGET, "race-a", "race-b")
    one, two = two_senders_at_once(bw)
    # the chat chain lets one racer write at a time: whatever each claimed was delivered, none failed,
    # and both sync rows were among them
    assert all(d.status == "sent" for d in one) and all(d.status == "sent" for d in two)
    assert len(one) + len(two) >= 2
    bw.drain()
    assert len(bw.fake.bases()) == 2   # the board and the overview, once each
    assert len(bw.fake.records(_board(bw).app_token, "任务")) == 2


def test_the_last_task_done_in_the_board_ends_execution_and_the_overview_says_so(bw):
    now = bw.clock.now()
    case_id, (t1,) = published(bw, [TaskSpec("接口开发", TECH_DEV, now, now + timedelta(days=2))])
    _turn_on(bw)
    bw.clock.advance(timedelta(minutes=1))
    _edit(bw, t1, {"状态": "已完成", "完成率": 100}, TECH_DEV)
    _poll(bw)
    from bot.models import Case
    with bw.state.factory() as s:
        assert s.get(Case, case_id).step == 6
        ov = s.scalar(select(FeishuOverview))
    bw.clock.advance(timedelta(minutes=1))
    _poll(bw)   # moved on since the last sync: one more, for the overview
    [row] = bw.fake.records(ov.app_token, texts.BOARD_OVERVIEW_TABLE)
    assert row["fields"]["阶段"] == texts.STEP_SHORT[6]
    assert poll_tick(bw.state.factory, bw.clock.now() + timedelta(minutes=1)) == 0   # and no more after that
    # closed later (nothing in the board changed): the next tick syncs once more, then stops
    with bw.state.factory() as s, s.begin():
        case = s.get(Case, case_id)
        case.step, case.step_entered_at = 7, bw.clock.now() + timedelta(minutes=2)
    bw.clock.advance(timedelta(minutes=3))
    assert poll_tick(bw.state.factory, bw.clock.now()) == 1
    bw.drain()
    [row] = bw.fake.records(ov.app_token, texts.BOARD_OVERVIEW_TABLE)
    assert row["fields"]["阶段"] == texts.STEP_SHORT[7]
    assert poll_tick(bw.state.factory, bw.clock.now() + timedelta(minutes=1)) == 0


def test_an_impossible_value_in_the_board_is_refused_and_reverted(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    _edit(bw, t1, {"完成率": 150}, TECH_DEV)
    _poll(bw)
    assert task_row(bw, t1).progress == 0 and _task_record(bw, t1)["fields"]["完成率"] == 0
    bw.clock.advance(timedelta(minutes=1))
    _edit(bw, t2, {"状态": "差不多了"}, DESIGN_HEAD)
    _poll(bw)
    assert task_row(bw, t2).status == "todo" and _task_record(bw, t2)["fields"]["状态"] == "未开始"
    said = [t for t in bw.texts() if fits(texts.BOARD_EDIT_REFUSED, t)]
    assert len(said) == 2 and "150" in said[0]


def test_a_deleted_overview_row_is_told_once_and_the_board_carries_on(bw):
    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    with bw.state.factory() as s:
        ov = s.scalar(select(FeishuOverview))
    bw.fake.user_delete_record(ov.app_token, ov.table_id, _rows(bw, "overview")[case_id].record_id)
    with bw.state.factory() as s, s.begin():   # the overview has something new to say: a task falls behind
        s.get(Task, t2).due_at = bw.clock.now() - timedelta(days=1)
    _edit(bw, t1, {"状态": "进行中", "完成率": 30}, TECH_DEV)
    _poll(bw)
    assert _task_record(bw, t1)["fields"]["完成率"] == 30
    assert not [t for t in bw.texts() if fits(texts.BOARD_FAILED, t)]
    said = [t for t in bw.texts() if fits(texts.BOARD_RECORD_DELETED, t)]
    assert len(said) == 1 and texts.BOARD_KIND_NAMES["overview"] in said[0]


def test_a_conflict_writing_the_overview_does_not_bother_the_lead(bw):
    """A write of the overview refused by Feishu (here a conflict) is planned again on the case's
    next sync, and the lead hears nothing of it."""
    from bot.sync_board import TARGET

    case_id, _ids = published(bw)
    _turn_on(bw)
    with bw.state.factory() as s, s.begin():
        s.scalar(select(FeishuBoardRow).where(FeishuBoardRow.kind == "overview")).pushed_hash = ""
    before = len(bw.fake.calls)
    bw.fake.fail_next(1, status=400, code=1254291)   # approx.: a write conflict on the table

    def sync(key):
        queue_syncs(bw, case_id, TARGET, key)
        bw.drain()

    sync("again-1")
    [failed] = [c for c in bw.fake.calls[before:] if c.path.endswith("/batch_update")]
    assert failed.code == 1254291
    assert not [t for t in bw.texts() if fits(texts.BOARD_FAILED, t)]
    sync("again-2")
    assert _rows(bw, "overview")[case_id].pushed_hash != ""   # written the next time


def test_both_sides_changed_the_later_group_update_wins_and_the_audit_says_so(bw):
    """The board was edited, then the owner updated the task in the group before the read-back:
    the group's later update stays, is written over the board's, and the audit trail says so."""
    from bot.sync_board import TARGET

    case_id, (t1, t2) = published(bw)
    _turn_on(bw)
    bw.clock.advance(timedelta(minutes=1))
    _edit(bw, t1, {"完成率": 70, "状态": "进行中"}, TECH_DEV)
    bw.clock.advance(timedelta(minutes=1))
    # the group update is queued but its board write has not run yet when the read-back comes
    syncer = bw.state.sender.syncers.pop(TARGET)
    try:
        update_progress(bw, TECH_DEV, t1, "doing", 40)
    finally:
        bw.state.sender.syncers[TARGET] = syncer
    _poll(bw)
    assert task_row(bw, t1).progress == 40
    assert _task_record(bw, t1)["fields"]["完成率"] == 40
    [note] = audit(bw, "board.conflict")
    assert "#1" in note and "较晚的群内更新" in note
    with bw.state.factory() as s:
        assert len(s.scalars(select(TaskUpdate).where(TaskUpdate.task_id == t1)).all()) == 1


def test_two_cases_changing_at_once_never_write_the_overview_together(bw):
    """Two processes' senders, two cases changing at once (each in its own chat, so their boards are
    written side by side): the shared overview base has one write in flight at a time, and each
    case's row says what that case says at the end."""
    import asyncio

    import httpx

    from bot.feishu import FeishuClient
    from bot.models import Case, Outbox
    from bot.outbox import OutboxSender
    from bot.sync_board import OVERVIEW_CHAIN, TARGET, BoardSync, overview_of
    from tests.driver import APP_ID, APP_SECRET

    now = bw.clock.now()
    first, _ = published(bw)
    second = make_case_at_step4(bw.state.factory, now=now, title="报销流程卡顿", chat_id=OTHER_CHAT)
    make_plan_published(bw.state.factory, second, now=now, tasks=[
        TaskSpec("梳理审批节点", TECH_DEV, now - timedelta(days=3), now - timedelta(days=1))])   # lagging

    def change_both(key):
        for case_id in (first, second):
            if key == "on":
                with bw.state.factory() as s, s.begin():
                    case = s.get(Case, case_id)
                    s.add(FeishuBoard(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id,
                                      enabled=True, changed_at=now, tables={}, url=""))
            queue_syncs(bw, case_id, TARGET, f"{key}-{case_id}")

    def replica(name):   # its own client, whose calls wait on the network without blocking the other's
        client = FeishuClient(app_id=APP_ID, app_secret=APP_SECRET, base_url=bw.settings.feishu_base_url,
                              transport=httpx.MockTransport(bw.fake.ahandle), pacer=None)
        sync = BoardSync(bw.state.factory, client, bw.clock, apply_edit=bw.state.sender.syncers[TARGET].apply_edit)
        # one chain at a time each, so neither takes all the rows and the two really share the work
        return OutboxSender(bw.state.factory, client, bw.clock, me=name, renderers=bw.state.sender.renderers,
                            context=bw.state.sender.context, syncers={TARGET: sync}, concurrency=1)

    senders = [replica("replica-a"), replica("replica-b")]

    async def race():
        delivered = []
        while True:   # a racer ends when it has nothing to do; its rival's later rows need another round
            rounds = await asyncio.gather(*(s.run_once() for s in senders))
            if not any(rounds):
                return delivered
            delivered.append(rounds)

    bw.fake.hold_writes(0.02)
    change_both("on")
    first_race = bw.http.portal.call(race)
    bw.clock.advance(timedelta(minutes=1))
    with bw.state.factory() as s, s.begin():   # both cases change again, at once
        for task in s.scalars(select(Task).where(Task.case_id.in_((first, second)))):
            task.content += "（改）"
        s.get(Case, second).title = "报销流程卡顿（二）"
    change_both("again")
    second_race = bw.http.portal.call(race)

    for rounds in (first_race, second_race):
        assert all(d.status == "sent" for pair in rounds for deliveries in pair for d in deliveries)
        assert all(rounds[0]), "each replica delivered rows in the first round"
    assert bw.fake.write_peak >= 2, "the two boards were written at the same time"
    assert bw.fake.write_overlaps == []
    with bw.state.factory() as s:
        [ov] = s.scalars(select(FeishuOverview)).all()
        wants = {}
        for case_id in (first, second):
            case, board = s.get(Case, case_id), s.scalar(select(FeishuBoard).where(FeishuBoard.case_id == case_id))
            wants[case.title] = overview_of(s, case, board.url, bw.clock.now())
        chains = {o.chat_id for o in s.scalars(select(Outbox)) if o.payload.get("op") == "sync_feishu"}
        assert s.scalar(select(Outbox.id).where(Outbox.status != "sent")) is None
    assert chains == {CHAT, OTHER_CHAT, OVERVIEW_CHAIN}   # the overview written in its own chain
    assert [b["name"] for b in bw.fake.bases()].count(texts.BOARD_OVERVIEW_NAME) == 1
    rows = {r["fields"]["协作问题"]: r["fields"] for r in bw.fake.records(ov.app_token, texts.BOARD_OVERVIEW_TABLE)}
    assert rows == wants
    assert wants["报销流程卡顿（二）"]["滞后任务"] == 1 and wants[TITLE]["滞后任务"] == 0
    assert all(_rows(bw, "overview")[c].pushed_hash for c in (first, second))
    with bw.state.factory() as s:
        for case_id in (first, second):
            board = s.scalar(select(FeishuBoard).where(FeishuBoard.case_id == case_id))
            names = sorted(r["fields"]["任务"] for r in bw.fake.records(board.app_token, "任务"))
            assert names and all(n.endswith("（改）") for n in names)
