"""A group can never be stuck with a case: the lead cancels it (/取消) or ends it early (/结案) with a
reason, from any step; every reminder stops, the case is archived read-only and the group is free
for the next /问题. /回退 in step 1 and an over-long title get a clear answer instead of a trap."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.models import AuditEntry, Case, Outbox, Signoff
from cards.rules import validate_card
from handlers.jobs import plan_tick
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, TECH_HEAD, card_text, card_title, find_button, has_button, walk
from tests.test_steps13_support import fill_consensus, open_case, sign


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


def _in_step_five_with_reminders_planned(world) -> int:
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    plan_tick(world.state.factory, now, world.state.dispatcher.router)
    return case_id


@pytest.mark.usefixtures("paced")
def test_ending_a_case_in_step_five_stops_every_reminder(world):
    now = world.clock.now()
    case_id = _in_step_five_with_reminders_planned(world)
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
    help_text = card_text(world.cards()[-1]["content"])
    assert "/取消 原因" in help_text and texts.BTN_END_CASE in help_text


# ---------------------------------------------------------------- the case card's 「结束问题」
def _end_form(world, user: str = LEAD) -> str:
    """The private form 「结束问题」 opens for `user` (from the live case card)."""
    world.press(user, _case(world).card_message_id, texts.BTN_END_CASE)
    return world.private_with(user, lambda c: texts.END_TITLE.format(title=_case(world).title) in card_title(c))


def _confirm(card: dict) -> dict | None:
    """The form's submit button (「确认结束」), if the card still has it."""
    found = [n for n in walk(card) if n.get("tag") == "button" and n.get("form_action_type") == "submit"]
    return found[0] if found else None


@pytest.mark.usefixtures("paced")
def test_the_case_card_button_cancels_after_a_reason_and_a_confirmation(world):
    fill_consensus(world, open_case(world, title="测试"), title="测试")
    case = _case(world)
    card = world.card(case.card_message_id)
    assert has_button(card, texts.BTN_END_CASE)
    # only the lead: a head's click is refused and opens nothing
    refused = world.press(TECH_HEAD, case.card_message_id, texts.BTN_END_CASE)
    assert refused["toast"]["type"] == "error" and refused["toast"]["content"].startswith("只有协作组长")
    assert not [m for m in world.private_cards(TECH_HEAD) if texts.BTN_END_CASE in card_title(m["content"])]
    mid = _end_form(world)
    form = world.card(mid)
    assert validate_card(form) == []
    button = _confirm(form)
    assert button["text"]["content"] == texts.BTN_CONFIRM_END
    assert button["confirm"]["title"]["content"] == texts.END_CONFIRM_TITLE   # asks once more before anything
    assert button["confirm"]["text"]["content"] == texts.END_CONFIRM_TEXT.format(title="测试")
    submit = button["name"]
    # no choice, no reason, or a reason over the limit: refused, the typing kept, nothing changes
    nohow = world.click(LEAD, mid, form={"reason": "发错了"}, name=submit)
    assert nohow["toast"] == {"type": "error", "content": texts.END_NEED_HOW}
    empty = world.click(LEAD, mid, form={"how": "cancel", "reason": "  "}, name=submit)
    assert empty["toast"] == {"type": "error", "content": texts.END_NEED_REASON}
    long = "因" * 501
    over = world.click(LEAD, mid, form={"how": "cancel", "reason": long}, name=submit)
    assert over["toast"] == {"type": "error", "content": texts.S_FIELD_TOO_LONG.format(field="原因", max=500)}
    assert long in str(over["card"]["data"])
    assert _case(world).status == "active"
    done = world.click(LEAD, mid, form={"how": "cancel", "reason": "发错了"}, name=submit)
    assert done["toast"]["content"] == texts.END_DONE_CANCELLED.format(title="测试")
    assert texts.END_DONE_CANCELLED.format(title="测试") in card_title(world.card(mid))   # the form became one line
    assert _confirm(world.card(mid)) is None
    assert world.texts()[-1] == texts.CASE_CANCELLED.format(title="测试", seq=case.seq, reason="发错了")
    ended = _case(world)
    assert (ended.status, ended.step) == ("cancelled", 7)
    with world.state.factory() as s:
        assert s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "case.cancel")).all() == ["1 → 7：发错了"]
    world.drain()
    old = world.card(case.card_message_id)       # the live card: cancelled, no buttons left
    assert texts.CASE_CARD_CANCELLED in card_text(old) and not has_button(old, texts.BTN_END_CASE)
    # the old form clicked again: nothing more happens
    again = world.click(LEAD, mid, form={"how": "close", "reason": "再点一次"}, name=submit)
    assert again["toast"]["content"] == texts.END_ALREADY
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.in_(("case.cancel", "case.close_early")))) == 1
    world.say(LEAD, "/问题 新品推广页面延迟")
    assert _case(world).status == "active" and _case(world).seq == case.seq + 1


@pytest.mark.usefixtures("paced")
def test_the_button_closes_a_case_in_step_five_early_and_every_reminder_stops(world):
    now = world.clock.now()
    case_id = _in_step_five_with_reminders_planned(world)
    assert _pending_reminders(world, case_id) > 0
    world.say(LEAD, "/进度")
    live = _case(world).card_message_id
    update_mine = find_button(world.card(live), texts.BTN_UPDATE_MINE)   # as a slow client still shows it
    mid = _end_form(world)
    world.click(LEAD, mid, form={"how": "close", "reason": "供应商已修复"}, name=_confirm(world.card(mid))["name"])
    ended = _case(world)
    assert (ended.status, ended.step) == ("closed", 7)
    assert _pending_reminders(world, case_id) == 0
    for later in (now, now + timedelta(days=1), now + timedelta(days=3)):   # planning never brings them back
        world.clock.set(later)
        plan_tick(world.state.factory, later, world.state.dispatcher.router)
        assert _pending_reminders(world, case_id) == 0
    with world.state.factory() as s:
        assert s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "case.close_early")).all() == \
            ["5 → 7：供应商已修复"]
    # the archived case is read-only: a button its card showed before changes nothing, opens no form
    before = (_case(world).version, len(world.private_cards(LEAD)))
    answer = world.click(LEAD, live, value=update_mine)
    assert answer.get("toast", {}).get("type") != "success", answer
    assert (_case(world).version, len(world.private_cards(LEAD))) == before
    assert _case(world).status == "closed"


@pytest.mark.usefixtures("paced")
def test_the_opener_may_cancel_while_step_one_is_unsigned_but_not_after(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    with world.state.factory() as s, s.begin():   # the lead was handed over, then the case sent back to step 1
        s.get(Case, _case(world).id).lead_open_id = TECH_HEAD
    assert _case(world).opener_open_id == LEAD
    sign(world, DESIGN_HEAD, mid)
    world.say(LEAD, "/取消 发错了")              # somebody signed already: only the lead now
    assert world.texts()[-1].startswith("只有协作组长") and _case(world).status == "active"
    with world.state.factory() as s, s.begin():
        for so in s.scalars(select(Signoff)):
            s.delete(so)
    world.say(LEAD, "/取消 " + "长" * 501)       # the reason's limit is the button's
    assert world.texts()[-1] == texts.S_FIELD_TOO_LONG.format(field="原因", max=500)
    world.say(LEAD, "/取消 发错了")
    assert _case(world).status == "cancelled"


def _at_once(world, clicks):
    """Store every click first, then process them at the same moment on the real database;
    returns each racer's answer."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bot.envelope import parse_event
    from feishu_fake import events as ev
    from tests.driver import CHAT

    ids = []
    for user, mid, value, form, name in clicks:
        payload = ev.card_action_event(chat_id=CHAT, message_id=mid, operator_open_id=user, value=value,
                                       form_value=form, name=name, **world._common())
        event = parse_event(payload)
        assert world.state.dispatcher.store(payload, event)
        ids.append(event.header.event_id)
    barrier = threading.Barrier(len(ids))

    def run(event_id):
        barrier.wait()
        return world.state.dispatcher.process(event_id)

    with ThreadPoolExecutor(len(ids)) as pool:
        answers = list(pool.map(run, ids))
    world.drain()
    return answers


@pytest.mark.usefixtures("paced")
def test_the_lead_confirming_cancel_while_the_last_head_signs(world):
    table = open_case(world)
    fill_consensus(world, table)
    sign(world, LEAD, table)
    sign(world, TECH_HEAD, table)
    mid = _end_form(world)
    submit = _confirm(world.card(mid))["name"]
    sign_value = find_button(world.card(table), "签字确认")
    answers = _at_once(world, [
        (LEAD, mid, None, {"how": "cancel", "reason": "需求取消"}, submit),
        (DESIGN_HEAD, table, sign_value, None, None),
        (LEAD, mid, None, {"how": "close", "reason": "需求取消"}, submit),  # a second click, changed mind
    ])
    lead, head, double = (a.toast for a in answers)
    ended = _case(world)
    assert ended.status in ("cancelled", "closed") and ended.step == 7
    # exactly one of the lead's two clicks ended it; the other was told it is already over
    assert sorted([lead, double], key=lambda t: t == texts.END_ALREADY)[1] == texts.END_ALREADY, (lead, double)
    winner = lead if lead != texts.END_ALREADY else double
    assert winner == (texts.END_DONE_CANCELLED if ended.status == "cancelled" else texts.END_DONE_CLOSED).format(
        title=ended.title)
    with world.state.factory() as s:
        ends = s.scalars(select(AuditEntry.detail).where(
            AuditEntry.action.in_(("case.cancel", "case.close_early")))).all()
        signed = s.scalars(select(Signoff).where(Signoff.actor_open_id == DESIGN_HEAD,
                                                 Signoff.status == "signed")).all()
    assert len(ends) == 1
    # the head's signature either landed first (step 1 then complete: the case was in step 2 when
    # it ended) or was answered read-only after the end and stored nothing
    if signed:
        assert ends[0].startswith("2 → 7：") and answers[1].toast_type == "success", (ends, head)
    else:
        assert ends[0].startswith("1 → 7：") and head == texts.ARCHIVED_SHOWN, (ends, head)
    announced = [t for t in world.texts() if t.startswith(("协作组长取消了", "协作组长提前结案"))]
    assert len(announced) == 1
    assert _pending_reminders(world, ended.id) == 0
    world.say(LEAD, "/问题 新的问题")
    assert _case(world).status == "active" and _case(world).title == "新的问题"


@pytest.mark.usefixtures("paced")
def test_a_send_back_reason_over_the_limit_is_refused_not_cut(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    world.say(LEAD, "/回退 3 " + "因" * 501)
    assert world.texts()[-1] == texts.S_FIELD_TOO_LONG.format(field=texts.FIELD_BACK_REASON, max=500)
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 4
    world.say(LEAD, "/回退 3 " + "因" * 500)      # the limit itself is kept whole
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 3
        assert s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "step.back")).all() == \
            ["4 → 3：" + "因" * 500]
