"""Closed cases stay readable: `/导出 #N` and `/进度 #N` reach any case of the group while another
one is open, and a click on an archived case's old card shows what that card was about, read-only
(no live buttons, only the way to the case's other contents), and changes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.models import AuditEntry, Signoff
from cards import kit
from cards.rules import validate_card
from tests.cardsnap import assert_snapshot
from tests.driver import LEAD, TECH_HEAD, card_text, card_title, find_button, walk
from tests.test_steps13_support import open_case, reach_step2, team_card_mid


def _actions(card: dict) -> set[str]:
    return {b["behaviors"][0]["value"]["a"] for b in walk(card["body"]) if b.get("tag") == "button"}


def _forms(card: dict) -> list[dict]:
    return [n for n in walk(card["body"]) if n.get("tag") in ("form", "input", "select_static", "select_person")]


def _counts(world) -> tuple[int, int]:
    with world.state.factory() as s:
        return (s.scalar(select(func.count()).select_from(AuditEntry)),
                s.scalar(select(func.count()).select_from(Signoff)))


@pytest.fixture
def two_cases(world):
    """Case #1 reached step 2 and was cancelled; case #2 is open in step 1. `team` is the
    team card's message and the value of its 「确认分工」 button as drawn before the case ended
    (the card in the chat loses its buttons when the case is archived; a phone that has not
    redrawn it, or a card past Feishu's update window, still sends that value)."""
    table = reach_step2(world)
    team = team_card_mid(world)
    confirm = find_button(world.card(team), texts.S2_BTN_CONFIRM)
    world.say(LEAD, "/取消 与新问题合并")
    open_case(world, title="第二个问题")
    return table, (team, confirm)


@pytest.mark.usefixtures("paced")
def test_export_reaches_a_closed_case_while_another_is_open(world, two_cases):
    world.say(LEAD, "/导出 #1")
    out = world.texts()[-1]
    assert texts.EXP_HEADER.format(title="新品推广页面延迟", output="《问题共识表》") in out
    assert "推广活动延迟3天" in out and "第二个问题" not in out
    world.say(LEAD, "/导出 #1 1")
    assert "《问题共识表》" in world.texts()[-1] and "《协作小组分工表》" not in world.texts()[-1]
    world.say(LEAD, "/导出 2 ＃1")                         # either order, full-width ＃ too
    assert texts.EXP_HEADER.format(title="新品推广页面延迟", output="《协作小组分工表》") in world.texts()[-1]
    world.say(LEAD, "/导出")                               # no number: the open case
    assert "第二个问题" in world.texts()[-1]
    for bad, answer in (("#7", texts.CASE_SEQ_NOT_FOUND.format(seq=7)), ("#1 9", texts.EXP_USAGE),
                        ("#1 1 2", texts.EXP_USAGE), ("#x", texts.EXP_USAGE)):
        world.say(LEAD, f"/导出 {bad}")
        assert world.texts()[-1] == answer, bad


@pytest.mark.usefixtures("paced")
def test_progress_shows_any_case_an_archived_one_read_only(world, two_cases):
    world.say(TECH_HEAD, "/进度 #1")
    card = world.cards()[-1]["content"]
    assert_snapshot("archived_case_card", card)
    assert card["header"]["template"] == "grey" and texts.ARCHIVE_NOTE.format(seq=1) in card_text(card)
    assert _actions(card) == {"archive.view"} and not _forms(card)
    labels = [b["text"]["content"] for b in walk(card["body"]) if b.get("tag") == "button"]
    assert labels == [texts.BTN_ARCHIVE_CASE, "《问题共识表》", "《协作小组分工表》"]
    world.say(TECH_HEAD, "/进度 #2")
    live = world.cards()[-1]["content"]
    assert card_title(live) == "「第二个问题」" and live["header"]["template"] != "grey"
    world.say(TECH_HEAD, "/进度 第一个")
    assert world.texts()[-1] == texts.PROGRESS_USAGE
    world.say(TECH_HEAD, "/进度 #3")
    assert world.texts()[-1] == texts.CASE_SEQ_NOT_FOUND.format(seq=3)


@pytest.mark.usefixtures("paced")
def test_archived_card_buttons_show_the_outputs(world, two_cases):
    world.say(TECH_HEAD, "/进度 #1")
    mid = world.cards()[-1]["message_id"]
    world.press(TECH_HEAD, mid, "《问题共识表》")
    table = world.card(mid)
    assert "《问题共识表》" in card_title(table) and table["header"]["template"] == "grey"
    assert "推广活动延迟3天" in card_text(table) and _actions(table) == {"archive.view"}
    assert not validate_card(table)
    world.press(TECH_HEAD, mid, texts.BTN_ARCHIVE_CASE)
    assert card_title(world.card(mid)) == "「新品推广页面延迟」"


@pytest.mark.usefixtures("paced")
def test_a_click_on_an_old_card_of_an_archived_case_shows_it_read_only_and_changes_nothing(world, two_cases):
    _table, (team, confirm) = two_cases
    before = _counts(world)
    answer = world.click(LEAD, team, value=confirm)
    assert answer["toast"] == {"type": "info", "content": texts.ARCHIVED_SHOWN}
    shown = world.card(team)
    assert "协作小组分工表" in card_title(shown) and shown["header"]["template"] == "grey"
    assert _actions(shown) == {"archive.view"} and not _forms(shown)
    assert not validate_card(shown)
    assert _counts(world) == before


def test_read_only_copy_drops_everything_to_click_or_fill_in():
    from bot.actions import ActionValue
    value = ActionValue("x.y", case_id=1)
    live = kit.card("t", template="orange", elements=[
        kit.md("正文"),
        kit.columns([[kit.md("左")], [kit.button("签字", value)]]),
        kit.columns([[kit.button("a", value)], [kit.button("b", value)]]),
        kit.form("f", [kit.text_input("n", "名字"), kit.submit_button("提交", "x")]),
        kit.collapsible("更多", [kit.columns([[kit.md("行")], [kit.button("删", value)]])]),
    ])
    plain = kit.read_only(live, "只读")
    assert plain["header"]["template"] == "grey" and live["header"]["template"] == "orange"
    assert not [n for n in walk(plain["body"]) if n.get("tag") in ("button", "form", "input")]
    assert [n["content"] for n in walk(plain["body"]) if n.get("tag") == "markdown"] == ["正文", "左", "行", "只读"]
    assert not validate_card(plain)


@pytest.mark.usefixtures("paced")
def test_export_of_the_tracking_compares_with_the_baseline(world):
    from datetime import timedelta

    from bot.models import Task
    from tests.casefactory import TaskSpec, add_tasks, make_case_at_step4, make_plan_published
    from tests.driver import DESIGN_HEAD

    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    first, _second = make_plan_published(world.state.factory, case_id, now=now)
    with world.state.factory() as s, s.begin():   # an approved change moved #1 a day later
        s.get(Task, first).due_at = now + timedelta(days=3)
    add_tasks(world.state.factory, case_id, [TaskSpec("补充埋点", DESIGN_HEAD, now, now + timedelta(days=1))], now=now)
    world.clock.advance(timedelta(seconds=5))
    world.say(LEAD, "/导出 5")
    track = world.texts()[-1]
    assert texts.TRACK_BASELINE_LATE.format(n=1, seqs="#1") in track
    assert f"| {texts.COL_DUE} | {texts.COL_BASELINE_DUE} |" in track
    assert "| 12-11 09:00 | 12-10 09:00 |" in track                         # #1: current, baseline
    assert f"| {texts.EXP_TRACK_NOT_IN_BASELINE} |" in track                 # #3 came after the baseline


@pytest.mark.usefixtures("paced")
def test_buttons_of_an_ended_execution_show_the_tracking_read_only(world):
    from tests.casefactory import make_case_at_step4, make_plan_published

    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    mid = world.cards()[-1]["message_id"]
    world.say(LEAD, "/结案 供应商已解决")
    before = _counts(world)
    for value in ({"a": "track.open", "c": case_id},                         # 更新我的进度
                  {"a": "keynode.ok", "c": case_id, "r": 1, "x": {"h": "24"}},  # an old 进度确认会 card
                  {"a": "change.open", "c": case_id}):                       # 申请调整
        answer = world.click(TECH_HEAD, mid, value=value)
        assert answer["toast"] == {"type": "info", "content": texts.ARCHIVED_SHOWN}, value
        shown = answer["card"]["data"]
        assert "《进度跟踪表》" in card_title(shown) and _actions(shown) == {"archive.view"}, value
    assert _counts(world) == before
