"""Commands everyone sees from the first minute, and the cards behind them."""
from __future__ import annotations

from bot import texts
from bot.actions import ActionValue
from cards.case import CaseButton, CaseView, case_card
from cards.general import CaseRow, audit_card, cases_card, help_card, welcome_card
from tests.cardsnap import assert_snapshot
from tests.driver import CHAT, LEAD, OUTSIDER, card_text


def test_general_cards_snapshots():
    assert_snapshot("help", help_card())
    assert_snapshot("welcome", welcome_card())
    assert_snapshot("audit_empty", audit_card("新品推广页面延迟", []))
    assert_snapshot("cases", cases_card([CaseRow(1, "新品推广页面延迟", 3, "active", LEAD),
                                         CaseRow(2, "旧问题", 7, "closed", LEAD)]))
    view = CaseView(case_id=7, seq=1, title="新品推广页面延迟 <at id=all></at>", step=2, lead_open_id=LEAD,
                    missing=("技术部 接口人",), buttons=(CaseButton("填写分工", ActionValue("team.open", 7, 3), True),))
    card = case_card(view)
    assert_snapshot("case_step2", card)
    # user text is inert (S14): plain_text headers never render markup; markdown gets it escaped
    from tests.driver import walk
    markdown = [n["content"] for n in walk(card) if n.get("tag") == "markdown"]
    assert markdown and not any("<at id=all>" in m for m in markdown)


def test_bot_addressed_by_open_id_not_name(world):
    bot = world.fake.bot_open_id
    # Someone else who happens to be called like the bot: no answer.
    world.say(LEAD, "@_user_1 在吗", mentions=[{"key": "@_user_1", "open_id": OUTSIDER, "name": "Fake Bot"}])
    assert world.messages() == []
    # The bot itself (by open_id), whatever the display name: a short hint.
    world.say(LEAD, "@_user_1 在吗", mentions=[{"key": "@_user_1", "open_id": bot, "name": "别名"}])
    assert world.texts() == [texts.ADDRESSED_HINT]


def test_command_after_mention_and_without_space(world):
    bot = world.fake.bot_open_id
    world.say(LEAD, "@_user_1 /帮助", mentions=[{"key": "@_user_1", "open_id": bot, "name": "协作助手"}])
    world.say(LEAD, "/help")
    assert sum(texts.HELP_TITLE in card_text(c["content"]) for c in world.cards()) == 2


def test_progress_without_case(world):
    world.say(LEAD, "/进度")
    assert world.texts() == [texts.NO_ACTIVE_CASE]


def test_p2p_message_gets_hint(world):
    from feishu_fake import events as ev
    from tests.driver import APP_ID, TENANT, VERIFICATION_TOKEN

    payload = ev.message_event(chat_id="oc_p2p", sender_open_id=LEAD, text="@_user_1 你好", app_id=APP_ID,
                               tenant_key=TENANT, token=VERIFICATION_TOKEN, create_ms=0, chat_type="p2p",
                               mentions=[{"key": "@_user_1", "open_id": world.fake.bot_open_id, "name": "b"}])
    world.fake.add_chat("oc_p2p", members=[(LEAD, "陈静")])
    assert world.post(payload).status_code == 200
    world.drain()
    assert [m["content"].get("text") for m in world.fake.visible("oc_p2p")] == [texts.P2P_HINT]
    assert CHAT


def test_names_learned_from_members_and_mentions(world):
    from bot import repository
    from tests.driver import NAMES, TECH_HEAD, TENANT

    world.add_bot()  # the welcome card, then the member list is read
    with world.state.factory() as s:
        known = repository.names(s, tenant_key=TENANT, open_ids=list(NAMES))
    assert known[TECH_HEAD] == "李娜" and known[LEAD] == "陈静"
    world.say(LEAD, "@_user_1 看一下", mentions=[{"key": "@_user_1", "open_id": "ou_new_person", "name": "孙悦"}])
    with world.state.factory() as s:
        assert repository.name_of(s, tenant_key=TENANT, open_id="ou_new_person") == "孙悦"
        # another tenant learns nothing from ours (S8)
        assert repository.name_of(s, tenant_key="tenant_b", open_id=TECH_HEAD) == ""
