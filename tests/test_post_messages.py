"""Commands sent as rich text (`post`) are read like text messages: text runs joined, @ as names."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot import texts
from bot.envelope import parse_event
from bot.models import Case
from feishu_fake import events as ev
from tests.driver import APP_ID, LEAD, TENANT, VERIFICATION_TOKEN, card_text


def _post(world, content: dict, *, mentions: list[dict] | None = None) -> None:
    payload = ev.message_event(chat_id="oc_group_main", sender_open_id=LEAD, text="", app_id=APP_ID,
                               tenant_key=TENANT, token=VERIFICATION_TOKEN,
                               create_ms=int(world.clock.now().timestamp() * 1000), mentions=mentions)
    payload["event"]["message"]["message_type"] = "post"
    payload["event"]["message"]["content"] = json.dumps(content, ensure_ascii=False)
    assert world.post(payload).status_code == 200
    world.drain()


def test_help_sent_as_post(world):
    _post(world, {"title": "", "content": [[{"tag": "text", "text": "/帮助"}]]})
    assert any(texts.HELP_TITLE in card_text(c["content"]) for c in world.cards())


@pytest.mark.usefixtures("paced")
def test_command_after_mention_in_post_opens_case(world):
    bot = world.fake.bot_open_id
    _post(world, {"title": "紧急", "content": [[{"tag": "at", "user_id": "@_user_1", "user_name": "协作助手"},
                                              {"tag": "text", "text": " /问题 新品"},
                                              {"tag": "text", "text": "推广", "style": ["bold"]},
                                              {"tag": "a", "text": "页面延迟", "href": "https://example.com"},
                                              {"tag": "img", "image_key": "img_x"}]]},
          mentions=[{"key": "@_user_1", "open_id": bot, "name": "协作助手"}])
    with world.state.factory() as s:
        assert s.scalar(select(Case.title)) == "新品推广页面延迟"
    assert world.last_card(title_contains="新建协作问题")       # the opener's form


def test_post_text_is_joined_and_mentions_named():
    body = {"schema": "2.0",
            "header": {"event_id": "e1", "event_type": "im.message.receive_v1", "tenant_key": "t",
                       "app_id": "cli_x", "create_time": "1", "token": "x"},
            "event": {"sender": {"sender_id": {"open_id": "ou_a"}, "sender_type": "user"},
                      "message": {"message_id": "om_1", "chat_id": "oc_1", "chat_type": "group",
                                  "message_type": "post",
                                  "content": json.dumps({"zh_cn": {"title": "t", "content": [
                                      [{"tag": "text", "text": "/进度 "}, {"tag": "at", "user_id": "@_user_1"}],
                                      [{"tag": "emotion", "emoji_type": "OK"}, {"tag": "text", "text": "谢谢"}]]}}),
                                  "mentions": [{"key": "@_user_1", "id": {"open_id": "ou_b"}, "name": "李娜"}]}}}
    event = parse_event(body)
    assert event.text == "/进度 @李娜\n谢谢"
