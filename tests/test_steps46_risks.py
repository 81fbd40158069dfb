"""Open risks in step 5: shown right after the lagging tasks and highlighted, on 《进度跟踪表》 and
on the plan card; closed from the tracking card by the risk's 负责人 or the lead."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot import texts
from bot.actions import ActionValue, to_name
from bot.models import AuditEntry, Case, Risk
from handlers.plan import plan_card_for
from tests.cardsnap import assert_snapshot
from tests.casefactory import TaskSpec, make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, walk
from tests.racing import process_at_once, stored_click

TZ = ZoneInfo("Asia/Shanghai")


def _setup(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    tasks = [TaskSpec("页面适配", DESIGN_HEAD, now - timedelta(days=2), now + timedelta(days=2), progress=60,
                      status="doing"),
             TaskSpec("接口开发", TECH_DEV, now - timedelta(days=2), now + timedelta(days=2), progress=10,
                      status="doing")]
    make_plan_published(world.state.factory, case_id, now=now, tasks=tasks)
    with world.state.factory() as s:
        risk_id = s.scalar(select(Risk.id).where(Risk.case_id == case_id))
    return case_id, risk_id


def _tracking(world):
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    return world.last_card(title_contains="《进度跟踪表》")["message_id"]


def _status(world, risk_id):
    with world.state.factory() as s:
        return s.get(Risk, risk_id).status


def _audits(world):
    with world.state.factory() as s:
        return [a.detail for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "risk.close"))]


def _tables(card):
    return [n for n in card["body"]["elements"] if n.get("tag") == "table"]


def test_only_owner_or_lead_closes_a_risk_with_a_note(world):
    case_id, risk_id = _setup(world)
    mid = _tracking(world)
    card = world.card(mid)
    assert "risk_close" in {n.get("name") for n in walk(card) if n.get("tag") == "form"}
    # someone else: a toast naming who may, nothing changes
    ans = world.submit(TECH_DEV, mid, {"risk": str(risk_id), "note": "我来关"}, form_name="risk_close")
    assert ans["toast"]["type"] == "error"
    assert ans["toast"]["content"] == texts.RISK_CLOSE_NOT_ALLOWED.format(owner="技术部技术负责人",
                                                                         lead=texts.S1_LEAD_WORD,
                                                                          risk="测试延迟")
    assert _status(world, risk_id) == "open" and _audits(world) == []
    # nothing picked: the form comes back with the note that was typed
    ans = world.submit(TECH_HEAD, mid, {"note": "测试人员已到位"}, form_name="risk_close")
    assert ans["toast"]["content"] == texts.RISK_PICK_MISSING
    note = next(n for n in walk(ans["card"]["data"]) if n.get("name") == "note")
    assert note["default_value"] == "测试人员已到位"
    # the owner closes it; the card updates in place
    ans = world.submit(TECH_HEAD, mid, {"risk": str(risk_id), "note": "测试人员已到位"}, form_name="risk_close")
    assert ans["toast"] == {"type": "success", "content": texts.RISK_CLOSED.format(risk="测试延迟")}
    assert _status(world, risk_id) == "closed"
    assert _audits(world) == ["测试延迟：测试人员已到位"]
    card = world.card(mid)
    assert "risk_close" not in {n.get("name") for n in walk(card)}   # no open risk left to close
    closed = _tables(card)[-1]
    assert closed["rows"][0]["status"] == [{"text": "已关闭", "color": "green"}]
    assert "已关闭风险" in card_text(card)
    assert_snapshot("steps46_tracking_risk_closed", card)
    # a second submit of the old form: one effect only
    name = to_name(ActionValue("risk.close", case_id=case_id))
    again = world.click(LEAD, mid, form={"risk": str(risk_id)}, name=name)
    assert again["toast"]["content"] == texts.RISK_ALREADY_CLOSED.format(risk="测试延迟")
    assert len(_audits(world)) == 1


def test_lead_may_close_and_outsiders_and_other_chats_may_not(world):
    case_id, risk_id = _setup(world)
    mid = _tracking(world)
    name = to_name(ActionValue("risk.close", case_id=case_id))
    ans = world.click(OUTSIDER, mid, form={"risk": str(risk_id)}, name=name)
    assert ans["toast"] == {"type": "error", "content": texts.RISK_CLOSE_NOT_ALLOWED.format(
        owner="技术部技术负责人", lead=texts.S1_LEAD_WORD, risk="测试延迟")}
    assert _status(world, risk_id) == "open"
    ans = world.click(LEAD, mid, form={"risk": "999999"}, name=name)
    assert ans["toast"]["content"] == texts.RISK_NOT_FOUND
    ans = world.submit(LEAD, mid, {"risk": str(risk_id)}, form_name="risk_close")
    assert ans["toast"]["content"] == texts.RISK_CLOSED.format(risk="测试延迟")
    assert _audits(world) == ["测试延迟"]


def test_concurrent_close_clicks_close_once(world):
    case_id, risk_id = _setup(world)
    mid = _tracking(world)
    name = to_name(ActionValue("risk.close", case_id=case_id))
    ids = [stored_click(world, user, mid, form={"risk": str(risk_id)}, name=name)
           for user in (LEAD, TECH_HEAD, LEAD)]
    answers = process_at_once(world, ids)
    toasts = sorted(a.toast for a in answers)
    assert toasts.count(texts.RISK_CLOSED.format(risk="测试延迟")) == 1, toasts
    assert toasts.count(texts.RISK_ALREADY_CLOSED.format(risk="测试延迟")) == 2, toasts
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "risk.close")) == 1


def test_plan_card_in_step5_lists_lagging_tasks_then_open_risks(world):
    case_id, risk_id = _setup(world)
    with world.state.factory() as s:
        card = plan_card_for(s, s.get(Case, case_id), TZ, now=world.clock.now())
    heads = [n["content"] for n in card["body"]["elements"] if n.get("tag") == "markdown"]
    assert heads[1:4] == ["**滞后任务 1 项**", "**风险预判**", "**任务清单**"]
    lagging, risks, others, _nodes = _tables(card)
    assert [r["task"] for r in lagging["rows"]] == ["#2 接口开发 · 滞后"]
    assert risks["rows"][0]["status"][0] == {"text": "未关闭", "color": "orange"}
    assert [r["task"] for r in others["rows"]] == ["#1 页面适配"]
    assert_snapshot("steps46_plan_step5_lagging", card)
