"""A form that cannot be shown privately in the group (a topic group, someone outside it, an error)
goes to the person's 1:1 chat with the bot; if that fails too, one @-line in the group tells them.
Nobody is left with a 「表单已单独发给你」 toast and no form."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import ChangeRequest
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import CHAT, LEAD, TECH_DEV, TECH_HEAD, card_text, card_title, find_submit


def _published(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    return case_id, make_plan_published(world.state.factory, case_id, now=now)


def _ask_for_change(world, user=TECH_DEV):
    world.clock.advance(timedelta(seconds=5))
    world.say(user, "/调整")


def test_in_a_topic_group_the_form_goes_to_the_1to1_chat_and_works_there(world):
    _case_id, (t1, _t2) = _published(world)
    world.fake.add_chat(CHAT, topic=True)     # 话题群: ephemeral/v1/send does not serve it
    n_group = len(world.messages())
    _ask_for_change(world)
    assert world.fake.private(CHAT, TECH_DEV) == [] and len(world.messages()) == n_group
    p2p = world.fake.p2p_chat_id(TECH_DEV)
    [form] = world.cards(chat=p2p)
    assert card_title(form["content"]).startswith("调整申请 · ")
    # submitted from the 1:1 chat, it acts in the group the form belongs to
    ans = world.click(TECH_DEV, form["message_id"], chat=p2p, name=find_submit(form["content"], "change_edit"),
                      form={"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "加密方案变更"})
    assert ans["toast"] == {"type": "success", "content": texts.CHANGE_SUBMITTED}, ans
    assert card_title(world.card(form["message_id"])) == texts.CHANGE_SUBMITTED    # the form is done
    request = world.last_card(title_contains="调整申请 #1")
    assert f"<at id={LEAD}></at>" in card_text(request["content"])             # in the group, for the lead
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.requested_by)) == TECH_DEV


def test_someone_else_clicking_that_form_acts_on_nothing(world):
    _case_id, (t1, _t2) = _published(world)
    world.fake.add_chat(CHAT, topic=True)
    _ask_for_change(world)
    p2p = world.fake.p2p_chat_id(TECH_DEV)
    [form] = world.cards(chat=p2p)
    ans = world.click(TECH_HEAD, form["message_id"], chat=p2p, name=find_submit(form["content"], "change_edit"),
                      form={"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "冒充"})
    assert ans["toast"]["type"] == "error", ans
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.id)) is None


def test_when_the_1to1_chat_fails_too_one_line_in_the_group_tells_the_person(world):
    _published(world)
    world.fake.add_chat(CHAT, topic=True)
    world.fake.make_unreachable(TECH_DEV)     # outside the app's availability range
    n_texts = len(world.texts())
    _ask_for_change(world)
    told = world.texts()[n_texts:]
    assert told == [texts.PRIVATE_FORM_UNDELIVERED.format(who=f'<at user_id="{TECH_DEV}"></at>')], told
    assert world.fake.private(CHAT, TECH_DEV) == []
    assert world.fake.p2p_chat_id(TECH_DEV) not in world.fake._chats          # no 1:1 chat was opened
    # the line is the outbox row's own send: nothing was left failed or retrying
    from bot.models import Outbox
    with world.state.factory() as s:
        assert not s.scalars(select(Outbox).where(Outbox.status.in_(("failed", "pending")),
                                                  Outbox.kind == "immediate")).all()


def test_a_form_from_a_shared_card_for_someone_outside_the_group_reaches_them_1to1(world):
    _published(world)
    world.say(TECH_DEV, "/进度")
    case_mid = world.last_card(title_contains="「")["message_id"]
    with world.fake._lock:                       # 刘洋 has left the group (the private card is refused)
        world.fake._chats[CHAT].members.pop(TECH_DEV, None)
    ans = world.press(TECH_DEV, case_mid, "更新我的进度")
    assert ans["toast"]["content"] == texts.FORM_OPENED_PRIVATELY
    assert world.fake.private(CHAT, TECH_DEV) == []
    forms = world.cards(chat=world.fake.p2p_chat_id(TECH_DEV))
    assert len(forms) == 1 and "更新进度" in card_title(forms[0]["content"])
