"""A quiet bot: reminders that fall due for a group in one tick are one card."""
from __future__ import annotations

from bot import reminders as plan
from bot import texts
from cards.rules import validate_card
from tests.driver import DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, card_text, card_title
from tests.test_reminders_standup import at, make_case, rows, tick


def test_reminders_due_together_are_one_card(world):
    """The clock jumps to 24 hours before 上线 (a restart after downtime, the sandbox's jump):
    the key-node check and two due-soon reminders fall due in the same tick (the overdue one from
    the day before is past its use and skipped, as before). (The
    standup is paused here: its close posts the day's 《进度跟踪表》, an output of its own.)"""
    make_case(world, key_node_offsets_h=[24], standup_paused=True,
              tasks=[(DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 12)),
                     (TECH_HEAD, "接口开发", at(2026, 12, 10, 16)),
                     (TECH_DEV, "联调测试", at(2026, 12, 8, 17))],
              nodes=[("上线", at(2026, 12, 10, 18))])
    tick(world)
    before = len(world.cards())
    world.clock.set(at(2026, 12, 9, 18, 0))
    tick(world)
    new = world.cards()[before:]
    assert len(new) == 1, [card_title(m["content"]) for m in new]
    card = new[0]["content"]
    assert validate_card(card) == []
    text = card_text(card)
    assert "进度确认会" in card_title(card)                        # the most urgent one leads
    assert texts.REMINDER_BUNDLE_MORE.format(n=2) in card["header"]["subtitle"]["content"]
    for task in ("页面设计稿", "接口开发", "联调测试"):
        assert task in text, task
    assert f"<at id={LEAD}></at>" in text
    sent = [r for r in rows(world) if r.status == "sent" and r.sent_at == world.clock.now()]
    assert sorted(r.kind for r in sent) == [plan.KEYNODE, plan.TASK_DUE, plan.TASK_DUE]   # two due-soon slots
    assert len({r.message_id for r in sent}) == 1 and sent[0].message_id == new[0]["message_id"]
    # the key node's button still works on the combined card
    ok = world.press(LEAD, new[0]["message_id"], "确认可以按期进行")
    assert ok["toast"]["content"] == texts.KEYNODE_CONFIRMED_TOAST.format(node="上线")
