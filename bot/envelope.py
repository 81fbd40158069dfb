"""Small typed views of the Feishu payloads we consume (platform.md §3, §4.1).
Anything we cannot read raises Malformed (→ 400); event types we do not handle are `None`."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot.security import Malformed

MAX_TEXT = 4000  # characters of a chat message we read (S9)


@dataclass(frozen=True)
class Header:
    event_id: str
    event_type: str
    tenant_key: str
    app_id: str
    create_time_ms: int


@dataclass(frozen=True)
class Mention:
    key: str
    open_id: str
    name: str


@dataclass(frozen=True)
class MessageEvent:
    header: Header
    chat_id: str
    chat_type: str
    message_id: str
    sender_open_id: str
    sender_type: str
    message_type: str
    text: str                      # mention placeholders replaced by "@名字"
    mentions: tuple[Mention, ...] = ()
    thread_id: str | None = None


@dataclass(frozen=True)
class BotAddedEvent:
    header: Header
    chat_id: str
    operator_open_id: str
    chat_name: str


@dataclass(frozen=True)
class BotRemovedEvent:
    header: Header
    chat_id: str


@dataclass(frozen=True)
class CardAction:
    header: Header
    operator_open_id: str
    token: str
    tag: str
    name: str
    value: Any
    form_value: dict[str, Any] = field(default_factory=dict)
    option: str | None = None
    chat_id: str = ""
    message_id: str = ""


Event = MessageEvent | BotAddedEvent | BotRemovedEvent | CardAction


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _str(obj: dict[str, Any], key: str, *, required: bool = True, limit: int = 256) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise Malformed(f"{key} missing")
    return value[:limit]


def parse_header(payload: dict[str, Any]) -> Header:
    if payload.get("schema") != "2.0":
        raise Malformed("only schema 2.0 events are supported")
    h = _obj(payload.get("header"), "header")
    try:
        created = int(h.get("create_time") or 0)
    except (TypeError, ValueError) as exc:
        raise Malformed("create_time") from exc
    return Header(event_id=_str(h, "event_id", limit=128), event_type=_str(h, "event_type", limit=64),
                  tenant_key=_str(h, "tenant_key", required=False, limit=64),
                  app_id=_str(h, "app_id", required=False, limit=64), create_time_ms=created)


def parse_event(payload: dict[str, Any]) -> Event | None:
    header = parse_header(payload)
    event = _obj(payload.get("event"), "event")
    parser = _PARSERS.get(header.event_type)
    return parser(header, event) if parser else None


_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")


def _message(header: Header, event: dict[str, Any]) -> MessageEvent:
    sender = _obj(event.get("sender"), "sender")
    msg = _obj(event.get("message"), "message")
    sender_id = _obj(sender.get("sender_id"), "sender_id")
    mentions = []
    for m in msg.get("mentions") or []:
        m = _obj(m, "mention")
        ident = m.get("id") if isinstance(m.get("id"), dict) else {}
        mentions.append(Mention(key=str(m.get("key", ""))[:32], open_id=str(ident.get("open_id") or "")[:64],
                                name=str(m.get("name") or "")[:64]))
    text = ""
    if msg.get("message_type") == "text":
        try:
            content = json.loads(_str(msg, "content", limit=MAX_TEXT * 4))
        except ValueError as exc:
            raise Malformed("content is not JSON") from exc
        raw = content.get("text", "") if isinstance(content, dict) else ""
        if not isinstance(raw, str):
            raise Malformed("text")
        by_key = {m.key: m for m in mentions}
        text = _PLACEHOLDER.sub(lambda mo: "@" + (by_key[mo.group(0)].name if mo.group(0) in by_key else "所有人"),
                                raw[:MAX_TEXT])
    return MessageEvent(header=header, chat_id=_str(msg, "chat_id", limit=64),
                        chat_type=_str(msg, "chat_type", required=False, limit=16),
                        message_id=_str(msg, "message_id", limit=128),
                        sender_open_id=_str(sender_id, "open_id", required=False, limit=64),
                        sender_type=_str(sender, "sender_type", required=False, limit=16),
                        message_type=_str(msg, "message_type", limit=32), text=text,
                        mentions=tuple(mentions), thread_id=msg.get("thread_id") or None)


def _bot_added(header: Header, event: dict[str, Any]) -> BotAddedEvent:
    op = event.get("operator_id") if isinstance(event.get("operator_id"), dict) else {}
    return BotAddedEvent(header=header, chat_id=_str(event, "chat_id", limit=64),
                         operator_open_id=str(op.get("open_id") or "")[:64],
                         chat_name=_str(event, "name", required=False, limit=200))


def _bot_removed(header: Header, event: dict[str, Any]) -> BotRemovedEvent:
    return BotRemovedEvent(header=header, chat_id=_str(event, "chat_id", limit=64))


def _card_action(header: Header, event: dict[str, Any]) -> CardAction:
    operator = _obj(event.get("operator"), "operator")
    action = _obj(event.get("action"), "action")
    context = event.get("context") if isinstance(event.get("context"), dict) else {}
    form_value = action.get("form_value") or {}
    if not isinstance(form_value, dict):
        raise Malformed("form_value")
    option = action.get("option")
    return CardAction(header=header, operator_open_id=_str(operator, "open_id", limit=64),
                      token=_str(event, "token", required=False, limit=256),
                      tag=_str(action, "tag", required=False, limit=32),
                      name=_str(action, "name", required=False, limit=128),
                      value=action.get("value"), form_value=form_value,
                      option=option if isinstance(option, str) else None,
                      chat_id=_str(context, "open_chat_id", required=False, limit=64),
                      message_id=_str(context, "open_message_id", required=False, limit=128))


_PARSERS = {
    "im.message.receive_v1": _message,
    "im.chat.member.bot.added_v1": _bot_added,
    "im.chat.member.bot.deleted_v1": _bot_removed,
    "card.action.trigger": _card_action,
}
