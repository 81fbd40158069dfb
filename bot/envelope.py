"""Small typed views of the Feishu payloads we consume (platform.md §3, §4.1).
Anything we cannot read raises Malformed (→ 400); event types we do not handle are `None`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from bot import jsonsafe
from bot.jsonsafe import REPLACEMENT
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
    unreadable: bool = False       # the text had characters we cannot store (NUL, lone surrogates)
    too_long: bool = False         # the text had more than MAX_TEXT characters: `text` is only its start


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
    unreadable: bool = False       # a typed value had characters we cannot store


Event = MessageEvent | BotAddedEvent | BotRemovedEvent | CardAction


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _opt_obj(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    return _obj(value, what)


# Feishu's ids (event, app, tenant, chat, message, open_id) are printable ASCII; anything else
# — a NUL, a lone surrogate (scrubbed to U+FFFD by jsonsafe), a space — is not from Feishu.
_IDENT = re.compile(r"[!-~]*")


def _ident(obj: dict[str, Any], key: str, *, required: bool = True, limit: int = 64) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise Malformed(f"{key} missing")
    if len(value) > limit or not _IDENT.fullmatch(value):
        raise Malformed(f"{key} is not an id")
    return value


def _text(obj: dict[str, Any], key: str, *, limit: int) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{key} is not text")
    return value[:limit]


MAX_CREATE_TIME_MS = 10 ** 14  # the year 5138


def parse_header(payload: dict[str, Any]) -> Header:
    if payload.get("schema") != "2.0":
        raise Malformed("only schema 2.0 events are supported")
    h = _obj(payload.get("header"), "header")
    raw = h.get("create_time") or "0"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not str(raw).isascii() \
            or not str(raw).isdigit() \
            or int(raw) >= MAX_CREATE_TIME_MS:
        raise Malformed("create_time")
    return Header(event_id=_ident(h, "event_id", limit=128), event_type=_ident(h, "event_type", limit=64),
                  tenant_key=_ident(h, "tenant_key", required=False, limit=64),
                  app_id=_ident(h, "app_id", required=False, limit=64), create_time_ms=int(raw))


def parse_event(payload: dict[str, Any]) -> Event | None:
    header = parse_header(payload)
    event = _obj(payload.get("event"), "event")
    parser = _PARSERS.get(header.event_type)
    return parser(header, event) if parser else None


_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")


def _mentions(raw: Any) -> tuple[Mention, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 100:
        raise Malformed("mentions")
    out = []
    for item in raw:
        m = _obj(item, "mention")
        ident = _opt_obj(m.get("id"), "mention id")
        name = _text(m, "name", limit=64)
        out.append(Mention(key=_ident(m, "key", required=False, limit=32),
                           open_id=_ident(ident, "open_id", required=False, limit=64),
                           name="" if REPLACEMENT in name else name))
    return tuple(out)


def _post_text(content: Any) -> str:
    """A rich-text (`post`) message as one text: its text runs (and links' text) joined, each
    paragraph a line, @mentions as their `@_user_N` placeholder (or the name Feishu gave), the title
    dropped. Received posts are `{"title", "content": [[run, …], …]}`; a locale wrapper
    (`{"zh_cn": {…}}`, the shape posts are *sent* in) is read too. Images, emoji and the rest add nothing."""
    if not isinstance(content, dict):
        return ""
    if "content" not in content:
        inner = next((v for v in content.values() if isinstance(v, dict) and "content" in v), None)
        content = inner or {}
    paragraphs = content.get("content") or []
    if not isinstance(paragraphs, list):
        raise Malformed("post content")
    lines = []
    for para in paragraphs:
        if not isinstance(para, list):
            raise Malformed("post paragraph")
        parts = []
        for run in para:
            if not isinstance(run, dict):
                raise Malformed("post element")
            tag = run.get("tag")
            if tag in ("text", "a", "md"):
                value = run.get("text")
                parts.append(value if isinstance(value, str) else "")
            elif tag == "at":
                uid = run.get("user_id")
                if isinstance(uid, str) and _PLACEHOLDER.fullmatch(uid):
                    parts.append(uid)
                elif uid == "all":
                    parts.append("@_all")
                else:
                    name = run.get("user_name")
                    parts.append("@" + name if isinstance(name, str) and name else "")
        lines.append("".join(parts))
    return "\n".join(lines).strip()


def _message_text(msg: dict[str, Any], mentions: tuple[Mention, ...]) -> tuple[str, bool]:
    kind = msg.get("message_type")
    if kind not in ("text", "post"):
        return "", False
    try:
        content = jsonsafe.loads(_text(msg, "content", limit=1 << 20))  # the body cap bounds it
    except jsonsafe.Unreadable as exc:
        raise Malformed("content is not JSON") from exc
    if kind == "post":
        raw: Any = _post_text(content)
    else:
        raw = content.get("text", "") if isinstance(content, dict) else ""
    if not isinstance(raw, str):
        raise Malformed("text")
    by_key = {m.key: m for m in mentions}
    return _PLACEHOLDER.sub(lambda mo: "@" + (by_key[mo.group(0)].name if mo.group(0) in by_key else "所有人"),
                            raw[:MAX_TEXT]), len(raw) > MAX_TEXT


def _message(header: Header, event: dict[str, Any]) -> MessageEvent:
    sender = _obj(event.get("sender"), "sender")
    msg = _obj(event.get("message"), "message")
    sender_id = _obj(sender.get("sender_id"), "sender_id")
    mentions = _mentions(msg.get("mentions"))
    text, too_long = _message_text(msg, mentions)
    thread_id = _ident(msg, "thread_id", required=False, limit=128)
    return MessageEvent(header=header, chat_id=_ident(msg, "chat_id", limit=64),
                        chat_type=_ident(msg, "chat_type", required=False, limit=16),
                        message_id=_ident(msg, "message_id", limit=128),
                        sender_open_id=_ident(sender_id, "open_id", required=False, limit=64),
                        sender_type=_ident(sender, "sender_type", required=False, limit=16),
                        message_type=_ident(msg, "message_type", limit=32), text=text,
                        mentions=mentions, thread_id=thread_id or None, unreadable=REPLACEMENT in text,
                        too_long=too_long)


def _bot_added(header: Header, event: dict[str, Any]) -> BotAddedEvent:
    op = _opt_obj(event.get("operator_id"), "operator_id")
    name = _text(event, "name", limit=200)
    return BotAddedEvent(header=header, chat_id=_ident(event, "chat_id", limit=64),
                         operator_open_id=_ident(op, "open_id", required=False, limit=64),
                         chat_name="" if REPLACEMENT in name else name)


def _bot_removed(header: Header, event: dict[str, Any]) -> BotRemovedEvent:
    return BotRemovedEvent(header=header, chat_id=_ident(event, "chat_id", limit=64))


MAX_FORM_FIELDS = 100


def _form_value(raw: Any) -> tuple[dict[str, Any], bool]:
    """What Feishu's form components submit: text, a number, a checkbox, or a list of texts
    (multi-selects). Returns the form and whether any text in it was unreadable."""
    if raw is None:
        return {}, False
    if not isinstance(raw, dict) or len(raw) > MAX_FORM_FIELDS:
        raise Malformed("form_value")
    unreadable = False
    for name, value in raw.items():
        texts = value if isinstance(value, list) else [value]
        for item in texts:
            if isinstance(item, str):
                unreadable = unreadable or REPLACEMENT in item
            elif isinstance(value, list) or not (item is None or isinstance(item, (bool, int, float))):
                raise Malformed(f"form field {name[:32]}")
        unreadable = unreadable or REPLACEMENT in name
    return raw, unreadable


def _card_action(header: Header, event: dict[str, Any]) -> CardAction:
    operator = _obj(event.get("operator"), "operator")
    action = _obj(event.get("action"), "action")
    context = _opt_obj(event.get("context"), "context")
    form_value, unreadable = _form_value(action.get("form_value"))
    option = action.get("option")
    return CardAction(header=header, operator_open_id=_ident(operator, "open_id", limit=64),
                      token=_ident(event, "token", required=False, limit=256),
                      tag=_ident(action, "tag", required=False, limit=32),
                      name=_text(action, "name", limit=128),
                      value=action.get("value"), form_value=form_value,
                      option=option if isinstance(option, str) else None,
                      chat_id=_ident(context, "open_chat_id", required=False, limit=64),
                      message_id=_ident(context, "open_message_id", required=False, limit=128),
                      unreadable=unreadable or (isinstance(option, str) and REPLACEMENT in option))


_PARSERS: dict[str, Callable[[Header, dict[str, Any]], Event]] = {
    "im.message.receive_v1": _message,
    "im.chat.member.bot.added_v1": _bot_added,
    "im.chat.member.bot.deleted_v1": _bot_removed,
    "card.action.trigger": _card_action,
}
