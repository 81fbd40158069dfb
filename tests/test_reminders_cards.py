"""Snapshots of the clock's cards (valid Card JSON 2.0, reviewed JSON), and user text stays inert."""
from datetime import date

from cards import reminders as c
from tests.cardsnap import assert_snapshot

A, B, L = "ou_head_tech", "ou_head_design", "ou_lead_market"
T1 = c.TaskLine(A, "接口开发", "12-11 18:00", 40, lagging=True)
T2 = c.TaskLine(B, "页面设计稿", "12-08 18:00", 80, overdue_days=2)


def test_standup_open():
    view = c.StandupView(case_id=1, title="新品推广页面延迟", day=date(2026, 12, 9), lead_open_id=L,
                         owners=(c.OwnerBlock(A, (T1,), True), c.OwnerBlock(B, (T2,), False)), escalate=(T2,))
    assert_snapshot("reminders_standup_open", c.standup_card(view))


def test_standup_missing_late_and_closed():
    view = c.StandupView(case_id=1, title="新品推广页面延迟", day=date(2026, 12, 9), lead_open_id=L,
                         owners=(c.OwnerBlock(A, (T1,), False),), show_missing=True, late=True)
    assert_snapshot("reminders_standup_missing_late", c.standup_card(view))
    closed = c.StandupView(case_id=1, title="x", day=date(2026, 12, 9), lead_open_id=L,
                           owners=(c.OwnerBlock(A, (T1,), True),), closed=True)
    assert_snapshot("reminders_standup_closed", c.standup_card(closed))


def test_keynode():
    view = c.KeyNodeView(case_id=1, node_id=3, node_name="上线", node_at="12-10 18:00", hours_before=24,
                         left_seconds=24 * 3600, lead_open_id=L, open_tasks=(T1, T2))
    assert_snapshot("reminders_keynode", c.keynode_card(view))
    done = c.KeyNodeView(case_id=1, node_id=3, node_name="上线", node_at="12-10 18:00", hours_before=2,
                         left_seconds=2 * 3600 - 15 * 60, lead_open_id=L, open_tasks=(), confirmed_by=L,
                         confirmed_at="12-10 16:05")
    assert_snapshot("reminders_keynode_confirmed", c.keynode_card(done))


def test_task_reminders_and_signoff():
    assert_snapshot("reminders_task_due", c.task_reminder_card(c.TaskReminderView(1, "due", (T1,))))
    assert_snapshot("reminders_overdue", c.task_reminder_card(
        c.TaskReminderView(1, "overdue", (T2,), lead_open_id=L, escalate_days=2)))
    view = c.SignoffNudgeView(step=1, output="《问题共识表》", hours=24,
                              missing=(c.MissingDept("技术部", A, "待签字"),))
    assert_snapshot("reminders_signoff", c.signoff_nudge_card(view))


def test_user_text_is_escaped():
    evil = c.TaskLine(A, "<at id=all></at> **粗体**", "12-11 18:00", 0)
    card = c.task_reminder_card(c.TaskReminderView(1, "due", (evil,)))
    body = str(card["body"])
    assert "<at id=all>" not in body and "**粗体**" not in body
