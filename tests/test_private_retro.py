"""The retrospective form is private: two members write at the same time and neither wipes
what the other typed, nor is refused."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import RetroEntry
from tests.casefactory import open_retro_card
from tests.driver import DESIGN_HEAD, TECH_DEV, card_text, card_title, walk
from tests.racing import submit_private_forms_at_once

TYPED = {
    TECH_DEV: {"add_success": "每日站会让滞后提前暴露\n接口联调提前一天", "add_weakness": "需求变更未提前评估风险"},
    DESIGN_HEAD: {"add_outcome": "推广页面按期上线", "add_improve": "建立需求变更评审流程\n设计稿提前两天确认"},
}


def _has_form(card: dict) -> bool:
    return any(n.get("tag") == "form" for n in walk(card.get("body", {})))


def _lines(typed: dict[str, str]) -> set[tuple[str, str]]:
    return {(k.removeprefix("add_"), line) for k, box in typed.items() for line in box.splitlines()}


@pytest.mark.usefixtures("paced")
def test_two_members_fill_the_retrospective_at_once(world):
    _case_id, retro = open_retro_card(world, TECH_DEV)   # the case card's 「填写复盘」 opens TECH_DEV's form
    answer = world.press(DESIGN_HEAD, retro, texts.BTN_RETRO_FILL)
    assert answer["toast"] == {"type": "info", "content": texts.FORM_OPENED_PRIVATELY}
    assert "card" not in answer                           # the shared card is not replaced
    shared = world.card(retro)
    assert not _has_form(shared)                          # nobody types into the card the group shares
    forms = {}
    for who in TYPED:
        mine = [m for m in world.private_cards(who) if _has_form(m["content"])]
        assert len(mine) == 1, who
        forms[who] = mine[0]
    assert forms[TECH_DEV]["message_id"] != forms[DESIGN_HEAD]["message_id"]
    assert not any(m["visible_to"] for m in world.messages())   # the group's view has no private card

    # both submit at the same moment (threads on the real database), each once
    answers = submit_private_forms_at_once(world, forms, TYPED, "retro_entry")

    expected_toast = {
        TECH_DEV: texts.RETRO_MULTI_ADDED.format(n=3, kinds="成功经验 2 · 不足之处 1"),
        DESIGN_HEAD: texts.RETRO_MULTI_ADDED.format(n=3, kinds="成果 1 · 改进方向 2"),
    }
    for who, answer in answers.items():
        assert (answer.toast, answer.toast_type) == (expected_toast[who], "success"), who   # nobody refused
        result = world.card(forms[who]["message_id"])
        assert not _has_form(result) and card_title(result) == answer.toast, who      # one line for that person
    with world.state.factory() as s:
        stored = {who: {(e.kind, e.content) for e in s.scalars(select(RetroEntry).where(
            RetroEntry.author_open_id == who))} for who in TYPED}
        assert s.scalar(select(RetroEntry.id).where(RetroEntry.author_open_id.not_in(list(TYPED)))) is None
    for who, typed in TYPED.items():                      # every line stored exactly as typed, once
        assert stored[who] == _lines(typed), who
    text = card_text(world.card(retro))                   # the shared card shows both, patched
    for typed in TYPED.values():
        for _kind, line in _lines(typed):
            assert line in text, line
    assert not _has_form(world.card(retro))
