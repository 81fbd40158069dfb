from bot import texts
from tests.driver import CHAT, LEAD, card_text


def test_welcome_when_added(world):
    assert world.add_bot().status_code == 200
    cards = world.cards()
    assert len(cards) == 1
    assert "/问题" in card_text(cards[0]["content"])


def test_help_card(world):
    world.say(LEAD, "/帮助")
    assert texts.HELP_TITLE in card_text(world.cards()[-1]["content"])


def test_unknown_command_hint(world):
    world.say(LEAD, "/不存在")
    assert world.texts() == [texts.UNKNOWN_COMMAND.format(command="/不存在")]


def test_chatter_ignored(world):
    world.say(LEAD, "大家早上好")
    assert world.messages(CHAT) == []
