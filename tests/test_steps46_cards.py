"""Card rules and snapshots for the step 4–6 cards not covered by the flow tests, and the
Markdown exports of steps 4 and 5."""
from datetime import timedelta

from bot.actions import ActionValue
from cards.templates import TemplateRow, templates_card
from cards.tracking import ChangeFormView, TaskRow, TrackingView, change_form_card, tracking_card
from tests.cardsnap import assert_snapshot
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD, TECH_DEV

OPTIONS = (("#1 接口开发", "1"), ("#2 页面适配", "2"))


def test_templates_card_snapshots():
    assert_snapshot("steps46_templates_empty", templates_card([]))
    assert_snapshot("steps46_templates_list", templates_card([
        TemplateRow(name="跨部门需求对接SOP", departments="市场部、技术部", tasks=2, length_seconds=2.4 * 86400,
                    saved="2026-12-10")]))


def test_change_forms_snapshots():
    for mode in ("add", "drop"):
        card = change_form_card(ChangeFormView(case_id=1, title="新品推广页面延迟", mode=mode, task_options=OPTIONS,
                                               mode_action="change.mode",
                                               submit=ActionValue("change.submit", case_id=1, row_id=1)))
        assert_snapshot(f"steps46_change_form_{mode}", card)


def test_archived_tracking_card_has_no_buttons():
    card = tracking_card(TrackingView(case_id=1, case_version=3, title="新品推广页面延迟", when="12-10 17:00",
                                      tasks=(TaskRow(1, 1, "接口开发<at id=ou_x></at>", TECH_DEV, "done", 100,
                                                     "12-10 18:00"),), archived=True))
    assert card["header"]["template"] == "grey"
    assert "button" not in str(card)
    assert_snapshot("steps46_tracking_archived", card)


def test_markdown_exports_of_plan_and_tracking(world):
    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    make_plan_published(world.state.factory, case_id, now=world.clock.now())
    world.say(LEAD, "/导出 4")
    plan = world.texts()[-1]
    assert "# 《跨部门协作行动方案》" in plan and "| #1 完成用户数据加密接口开发 |" in plan
    assert "| 上线 |" in plan and "| 测试延迟 |" in plan
    world.clock.advance(timedelta(seconds=5))
    world.say(LEAD, "/导出 5")
    track = world.texts()[-1]
    assert "# 《进度跟踪表》" in track and "| 未开始 | 0% |" in track


def test_every_steps46_form_is_short():
    """cards.md "short forms": at most six fields in any form of steps 4–6 (every reviewed snapshot)."""
    import json
    from pathlib import Path

    from cards.rules import FORM_FIELDS
    from tests.driver import walk

    checked = 0
    for path in sorted(Path(__file__).parent.glob("snapshots/steps46_*.json")):
        card = json.loads(path.read_text(encoding="utf-8"))
        for form in (n for n in walk(card) if n.get("tag") == "form"):
            fields = [n["name"] for n in walk(form["elements"]) if n.get("tag") in FORM_FIELDS]
            # the plan form takes several tasks at once: six fields at most per task row
            rows: dict[str, list[str]] = {}
            for name in fields:
                head, _, n = name.rpartition("_")
                rows.setdefault(n if form["name"] == "plan_task" and head and n.isdigit() else "1", []).append(name)
            assert all(len(r) <= 6 for r in rows.values()), (path.name, form["name"], fields)
            assert len(rows) <= 3, (path.name, form["name"], fields)
            checked += 1
    assert checked >= 10  # the plan, change, update, risk, retro and template forms are all there
