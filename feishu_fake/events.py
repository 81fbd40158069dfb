"""Feishu-shaped inbound payloads (schema 2.0), as Feishu pushes them to the bot
(platform.md §1.2, §3.1, §3.2, §4.1). Used by tests, the sandbox and benchmarks; `seal`
from bot.security encrypts and signs them exactly as Feishu does."""
from __future__ import annotations

import json
import uuid
from typing import Any


def _header(event_type: str, *, app_id: str, tenant_key: str, token: str, create_ms: int,
            event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or uuid.uuid4().hex, "event_type": event_type, "create_time": str(create_ms),
            "token": token, "app_id": app_id, "tenant_key": tenant_key}


def message_event(*, chat_id: str, sender_open_id: str, text: str, app_id: str, tenant_key: str, token: str,
                  create_ms: int, mentions: list[dict[str, Any]] | None = None, message_id: str | None = None,
                  event_id: str | None = None, chat_type: str = "group") -> dict[str, Any]:
    """im.message.receive_v1. `mentions`: [{"key": "@_user_1", "open_id": "ou_…", "name": "…"}];
    the text should carry the same `@_user_N` placeholders, as Feishu sends it."""
    return {
        "schema": "2.0",
        "header": _header("im.message.receive_v1", app_id=app_id, tenant_key=tenant_key, token=token,
                          create_ms=create_ms, event_id=event_id),
        "event": {
            "sender": {"sender_id": {"open_id": sender_open_id, "union_id": "on_" + sender_open_id[3:],
                                     "user_id": ""},
                       "sender_type": "user", "tenant_key": tenant_key},
            "message": {
                "message_id": message_id or "om_" + uuid.uuid4().hex,
                "create_time": str(create_ms), "update_time": str(create_ms),
                "chat_id": chat_id, "chat_type": chat_type, "message_type": "text",
                "content": json.dumps({"text": text}, ensure_ascii=False),
                "mentions": [{"key": m["key"], "id": {"open_id": m["open_id"], "union_id": "", "user_id": ""},
                              "name": m.get("name", ""), "tenant_key": tenant_key} for m in (mentions or [])],
                "user_agent": "Mozilla/5.0 Lark/7.30",
            },
        },
    }


def bot_added_event(*, chat_id: str, operator_open_id: str, chat_name: str, app_id: str, tenant_key: str,
                    token: str, create_ms: int) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": _header("im.chat.member.bot.added_v1", app_id=app_id, tenant_key=tenant_key, token=token,
                          create_ms=create_ms),
        "event": {"chat_id": chat_id, "operator_id": {"open_id": operator_open_id, "union_id": "", "user_id": ""},
                  "external": False, "operator_tenant_key": tenant_key, "name": chat_name,
                  "i18n_names": {"zh_cn": chat_name}},
    }


def card_action_event(*, chat_id: str, message_id: str, operator_open_id: str, app_id: str, tenant_key: str,
                      token: str, create_ms: int, tag: str = "button", value: Any = None,
                      form_value: dict[str, Any] | None = None, name: str | None = None,
                      option: str | None = None) -> dict[str, Any]:
    """card.action.trigger. A form submit arrives as tag "button" with `name` and `form_value`."""
    action: dict[str, Any] = {"tag": tag}
    if value is not None:
        action["value"] = value
    if form_value is not None:
        action["form_value"] = form_value
    if name is not None:
        action["name"] = name
    if option is not None:
        action["option"] = option
        action["timezone"] = "Asia/Shanghai"
    return {
        "schema": "2.0",
        "header": _header("card.action.trigger", app_id=app_id, tenant_key=tenant_key, token=token,
                          create_ms=create_ms),
        "event": {
            "operator": {"tenant_key": tenant_key, "user_id": "", "open_id": operator_open_id,
                         "union_id": "on_" + operator_open_id[3:]},
            "token": "c-" + uuid.uuid4().hex,
            "action": action,
            "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": chat_id},
        },
    }


def url_verification(*, token: str, challenge: str) -> dict[str, Any]:
    return {"challenge": challenge, "token": token, "type": "url_verification"}
