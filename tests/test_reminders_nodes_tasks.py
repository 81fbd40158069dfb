"""Key-node checks (24 h / 2 h before), grouped task reminders (due soon, overdue, escalation),
rescheduling, and sign-off nudges for steps 1 and 3."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Case, ConsensusVersion, Department, KeyNode, Signoff, Task
from tests.driver import CHAT, DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, TENANT, card_text, card_title, fits
from tests.test_reminders_standup import at, make_case, rows, run_until, tick, titled


def test_key_node_24h_and_2h_list_unfinished_tasks_before_the_node(world):
    make_case(world, key_node_offsets_h=[24, 2],
              tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 12)),
                     (TECH_HEAD, "接口开发", at(2026, 12, 10, 16)),
                     (TECH_DEV, "上线后回访", at(2026, 12, 12, 18))],
              nodes=[("上线", at(2026, 12, 10, 18))])
    run_until(world, at(2026, 12, 9, 17, 59), timedelta(minutes=30))
    assert titled(world, "进度确认会") == []
    run_until(world, at(2026, 12, 9, 18, 0), timedelta(minutes=1))
    first = titled(world, "进度确认会")
    assert [card_title(m["content"]) for m in first] == ["上线前 1 天 · 进度确认会"]
    text = card_text(first[0]["content"])
    assert "页面设计稿" in text and "接口开发" in text and "上线后回访" not in text
    assert f"<at id={DESIGN_HEAD}></at>" in text and f"<at id={LEAD}></at>" in text
    refused = world.press(TECH_HEAD, first[0]["message_id"], "确认可以按期进行")
    assert refused["toast"] == {"type": "error", "content": texts.NOT_LEAD}
    ok = world.press(LEAD, first[0]["message_id"], "确认可以按期进行")
    assert ok["toast"]["content"] == texts.KEYNODE_CONFIRMED_TOAST.format(node="上线")
    assert "已确认" in card_text(world.card(first[0]["message_id"]))
    run_until(world, at(2026, 12, 10, 19), timedelta(minutes=30))
    assert [card_title(m["content"]) for m in titled(world, "进度确认会")] == \
        ["上线前 1 天 · 进度确认会", "上线前 2 小时 · 进度确认会"]


def test_moving_a_key_node_reschedules_its_check(world):
    make_case(world, nodes=[("上线", at(2026, 12, 10, 18))])
    tick(world)
    with world.state.factory() as s, s.begin():
        s.scalars(select(KeyNode)).one().at = at(2026, 12, 11, 18)
    run_until(world, at(2026, 12, 10, 12), timedelta(minutes=30))
    assert titled(world, "进度确认会") == []                      # the old 24 h slot did not fire
    statuses = {r.fire_key: r.status for r in rows(world, "keynode")}
    assert sorted(statuses.values()) == ["cancelled", "pending"]
    run_until(world, at(2026, 12, 10, 18), timedelta(minutes=30))
    assert len(titled(world, "进度确认会")) == 1


def test_due_soon_is_one_card_per_slot_and_follows_a_moved_deadline(world):
    """With the standup paused, due-soon warnings are cards of their own."""
    make_case(world, standup_paused=True, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18)),
                            (TECH_HEAD, "接口开发", at(2026, 12, 10, 18)),
                            (TECH_DEV, "联调测试", at(2026, 12, 11, 12))])
    tick(world)
    with world.state.factory() as s, s.begin():   # the lead moves 联调测试 by a day
        s.scalars(select(Task).where(Task.content == "联调测试")).one().due_at = at(2026, 12, 12 + 2, 12)
    run_until(world, at(2026, 12, 9, 18), timedelta(minutes=30))
    due = titled(world, "任务即将到期")
    assert len(due) == 1                                          # two tasks, one card
    text = card_text(due[0]["content"])
    assert "页面设计稿" in text and "接口开发" in text and "联调测试" not in text
    run_until(world, at(2026, 12, 11, 12), timedelta(minutes=30))
    assert len(titled(world, "任务即将到期")) == 1                # old 12-10 12:00 slot cancelled
    assert any(r.status == "cancelled" for r in rows(world, "task_due"))
    run_until(world, at(2026, 12, 13, 12), timedelta(hours=1))    # new deadline Mon 12-14 12:00
    assert len(titled(world, "任务即将到期")) == 2                # warned Fri 18:00 (weekend is quiet)
    sent = [r for r in rows(world, "task_due") if r.status == "sent"]
    assert sent[-1].due_at == at(2026, 12, 11, 18)


def test_the_standup_carries_the_due_soon_warning_it_would_repeat(world):
    """With the standup running, a warning the next morning's standup would repeat before the
    deadline is on the standup card (flagged, owner @-mentioned) instead of a card of its own;
    a deadline too close to the standup keeps its own warning card."""
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18)),
                            (TECH_HEAD, "接口开发", at(2026, 12, 10, 12)),
                            (TECH_DEV, "联调测试", at(2026, 12, 10, 10))])
    run_until(world, at(2026, 12, 9, 18), timedelta(minutes=30))
    due = titled(world, "任务即将到期")
    # 联调测试 is due 30 minutes after Thursday's standup: warned on Wednesday, on a card of its own
    assert len(due) == 1 and "联调测试" in card_text(due[0]["content"])
    assert "页面设计稿" not in card_text(due[0]["content"]) and "接口开发" not in card_text(due[0]["content"])
    run_until(world, at(2026, 12, 10, 9, 30), timedelta(minutes=30))
    assert len(titled(world, "任务即将到期")) == 1
    standup = card_text(titled(world, "今日站会")[-1]["content"])
    for who, task in ((DESIGN_HEAD, "页面设计稿"), (TECH_HEAD, "接口开发")):
        assert f"<at id={who}></at>" in standup
        line = next(x for x in standup.splitlines() if task in x)
        assert texts.FLAG_DUE_SOON.strip(" ·").strip() in line, line
    carried = [r for r in rows(world, "task_due") if r.due_at == at(2026, 12, 10, 9, 30)]
    assert carried and all(r.status == "cancelled" for r in carried)   # the standup said it


def test_a_paused_standup_gives_the_warning_back_its_own_card(world):
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18))])
    run_until(world, at(2026, 12, 9, 12), timedelta(minutes=30))
    with world.state.factory() as s, s.begin():
        s.scalars(select(Case)).one().standup_paused = True
    run_until(world, at(2026, 12, 9, 18), timedelta(minutes=30))
    due = titled(world, "任务即将到期")
    assert len(due) == 1 and "页面设计稿" in card_text(due[0]["content"])


def test_done_task_is_not_reminded(world):
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18))])
    tick(world)
    with world.state.factory() as s, s.begin():
        task = s.scalars(select(Task)).one()
        task.status, task.progress = "done", 100
    run_until(world, at(2026, 12, 11, 10), timedelta(hours=1))
    assert titled(world, "任务即将到期") == [] and titled(world, "任务已逾期") == []


def test_overdue_once_then_daily_on_the_standup_then_escalated(world):
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 8, 18))])
    run_until(world, at(2026, 12, 8, 18), timedelta(minutes=30))
    over = titled(world, "任务已逾期")
    assert len(over) == 1 and f"<at id={DESIGN_HEAD}></at>" in card_text(over[0]["content"])
    run_until(world, at(2026, 12, 10, 10), timedelta(minutes=30))
    assert len(titled(world, "任务已逾期")) == 1                  # the daily repeat rides on the standup
    standups = titled(world, "今日站会")
    day9, day10 = (card_text(m["content"]) for m in standups[-2:])
    assert "已逾期 1 个工作日" in day9 and f"<at id={LEAD}></at>" not in day9
    assert "已逾期 2 个工作日" in day10 and f"请 <at id={LEAD}></at> 协调" in day10


def test_overdue_daily_card_when_standup_paused(world):
    make_case(world, standup_paused=True, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 8, 18))])
    run_until(world, at(2026, 12, 10, 10), timedelta(minutes=30))
    assert titled(world, "今日站会") == []
    over = titled(world, "任务已逾期")
    assert len(over) == 3                                         # 12-08 18:00, 12-09, 12-10 09:30
    assert f"<at id={LEAD}></at>" in card_text(over[-1]["content"])


def test_weekend_deadline_becomes_overdue_on_the_next_working_morning(world):
    make_case(world, tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 12, 12))])  # Saturday noon
    with world.state.factory() as s, s.begin():   # on track all week: it lags only once its deadline passes
        s.scalars(select(Task)).one().progress = 95
    run_until(world, at(2026, 12, 12, 0, 0), timedelta(hours=1))
    assert _lag_alerts(world) == []
    before = len(world.messages())
    run_until(world, at(2026, 12, 14, 8, 50), timedelta(hours=1))
    assert len(world.messages()) == before                        # nothing at all over the weekend
    assert titled(world, "任务已逾期") == []
    assert _lag_alerts(world) == []                               # Saturday 11:00, Monday 08:50: nothing
    run_until(world, at(2026, 12, 14, 9, 0), timedelta(minutes=10))
    assert len(titled(world, "任务已逾期")) == 1
    [alert] = _lag_alerts(world)                                  # the lead hears on Monday at 09:00
    assert f'<at user_id="{LEAD}"></at>' in alert and "页面设计稿" in alert


def _lag_alerts(world) -> list[str]:
    return [t for t in world.texts() if fits(texts.LAG_ALERT, t)]


def _step1_case(world) -> int:
    case_id = make_case(world, step=1)
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        depts = [Department(tenant_key=TENANT, chat_id=CHAT, case_id=case_id, name=n, head_open_id=h, position=i)
                 for i, (n, h) in enumerate((("市场部", LEAD), ("技术部", TECH_HEAD), ("设计部", DESIGN_HEAD)))]
        s.add_all(depts)
        s.add(ConsensusVersion(tenant_key=TENANT, chat_id=CHAT, case_id=case_id, version=1, background="b",
                               current_state="c", impact="i", goal="g", expected_outcome="o", departments=[],
                               created_by=LEAD, created_at=now))
        s.flush()
        s.add(Signoff(tenant_key=TENANT, chat_id=CHAT, case_id=case_id, artifact="consensus", artifact_version=1,
                      department_id=depts[0].id, status="signed", actor_open_id=LEAD, at=now))
    return case_id


def test_signoff_nudge_after_24h_names_only_the_missing(world):
    _step1_case(world)
    run_until(world, at(2026, 12, 9, 8, 59), timedelta(hours=1))
    assert titled(world, "待确认提醒") == []
    run_until(world, at(2026, 12, 10, 12), timedelta(minutes=30))
    nudges = titled(world, "待确认提醒")
    assert len(nudges) == 1                                       # one nudge, not one per day
    text = card_text(nudges[0]["content"])
    assert "技术部" in text and "设计部" in text and "市场部" not in text
    assert f"<at id={TECH_HEAD}></at>" in text and f"<at id={LEAD}></at>" not in text


def test_signoff_nudge_cancelled_when_everyone_signed(world):
    case_id = _step1_case(world)
    tick(world)
    with world.state.factory() as s, s.begin():
        for d in s.scalars(select(Department).where(Department.name != "市场部")):
            s.add(Signoff(tenant_key=TENANT, chat_id=CHAT, case_id=case_id, artifact="consensus", artifact_version=1,
                          department_id=d.id, status="signed", actor_open_id=d.head_open_id, at=world.clock.now()))
    run_until(world, at(2026, 12, 10, 12), timedelta(hours=1))
    assert titled(world, "待确认提醒") == []
