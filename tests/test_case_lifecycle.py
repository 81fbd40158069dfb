"""A group can never be stuck with a case: the lead cancels it (/取消) or ends it early (/结案) with a
reason, from any step; every reminder stops, the case is archived read-only and the group is free
for the next /问题. /回退 in step 1 and an over-long title get a clear answer instead of a trap."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.models import AuditEntry, Case, Outbox
from handlers.jobs import plan_tick
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD, TECH_HEAD, card_text
from tests.test_steps13_support import fill_consensus, open_case


def _case(world) -> Case:
    with world.state.factory() as s:
        return s.scalars(select(Case).order_by(Case.id.desc())).first()


def _pending_reminders(world, case_id: int) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.case_id == case_id, Outbox.status == "pending", Outbox.kind != "immediate"))


@pytest.mark.usefixtures("paced")
def test_the_lead_cancels_a_case_opened_by_mistake_and_the_group_is_free(world):
    open_case(world, title="测试")
    case = _case(world)
    world.say(TECH_HEAD, "/取消 发错了")
    assert world.texts()[-1].startswith("只有协作组长")   # names the lead when the bot knows them
    assert _case(world).status == "active"
    world.say(LEAD, "/取消")
    assert world.texts()[-1] == texts.CANCEL_USAGE
    world.say(LEAD, "/取消 发错了，问题已合并到 #2")
    assert world.texts()[-1] == texts.CASE_CANCELLED.format(title="测试", seq=case.seq,
                                                            reason="发错了，问题已合并到 #2")
    ended = _case(world)
    assert (ended.status, ended.step) == ("cancelled", 7)
    with world.state.factory() as s:
        audit = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "case.cancel")).all()
    assert audit == ["1 → 7：发错了，问题已合并到 #2"]
    # the live case card says so, and shows no step as done
    card = world.card(ended.card_message_id)
    assert texts.CASE_CARD_CANCELLED in card_text(card) and "✅" not in card_text(card)
    # the group is free; the old case is listed as cancelled
    world.say(LEAD, "/问题 新品推广页面延迟")
    assert _case(world).title == "新品推广页面延迟" and _case(world).status == "active"
    world.say(LEAD, "/案例")
    assert "已取消" in str(world.cards()[-1]["content"])


@pytest.mark.usefixtures("paced")
def test_ending_a_case_in_step_five_stops_every_reminder(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    plan_tick(world.state.factory, now, world.state.dispatcher.router)
    assert _pending_reminders(world, case_id) > 0          # standups, task and key-node checks planned
    world.say(LEAD, "/结案 问题已由供应商解决，无需继续")
    assert world.texts()[-1].startswith("协作组长提前结案")
    assert _pending_reminders(world, case_id) == 0
    plan_tick(world.state.factory, now, world.state.dispatcher.router)
    assert _pending_reminders(world, case_id) == 0         # and planning does not bring them back
    ended = _case(world)
    assert (ended.status, ended.step) == ("closed", 7)
    # a click on the old case card answers read-only
    world.say(LEAD, "/进度")
    assert world.texts()[-1] == texts.NO_ACTIVE_CASE


@pytest.mark.usefixtures("paced")
def test_back_in_step_one_and_an_over_long_title_are_answered_clearly(world):
    world.say(LEAD, "/问题 " + "超长标题" * 75)
    assert world.texts()[-1] == texts.S1_TITLE_TOO_LONG.format(limit=60, n=300)
    assert _case(world) is None
    open_case(world)
    world.say(LEAD, "/回退 1 重新来")
    assert world.texts()[-1] == texts.BACK_NOTHING_EARLIER


@pytest.mark.usefixtures("paced")
def test_help_and_the_case_card_say_how_to_end_a_case(world):
    fill_consensus(world, open_case(world))   # the case card comes with the submitted table
    assert texts.CASE_CARD_HOW_TO_END in card_text(world.card(_case(world).card_message_id))
    world.say(LEAD, "/帮助")
    assert "/取消 原因" in card_text(world.cards()[-1]["content"])
