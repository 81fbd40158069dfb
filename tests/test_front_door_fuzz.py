"""Property: no sealed, signed event of any type the bot handles — with any field replaced by a
hostile value — reaches an unhandled exception. The answer is 200, 400 or 401 (never 5xx), no
error or traceback is logged while it is received and handled, and no inbox row ends 'dead'
(S1, S7, S9, S10, and the design notes' "poison event": a signed event we cannot read is never a 500).

Derandomised so CI sees the same examples every run; FUZZ_EXAMPLES=2000 explores further.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.models import InboxEvent
from bot.security import encrypt, signature
from feishu_fake import events as ev
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import APP_ID, CHAT, ENCRYPT_KEY, NAMES, TENANT, VERIFICATION_TOKEN

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))

HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\ud83d\ude00", "😀" * 50, "x" * 5000,
                     "<at id=all></at>", 'ou_x"></at><at user_id="all"></at>', "'; DROP TABLE cases;--",
                     "%s%n{0}", "2026-02-30", "9" * 400, "-1", "0", "", " ", "\n\t", "ou_lead_market",
                     "oc_group_main", "Infinity", "NaN", "null", "²", "#²", "١٢", "9" * 30]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 20), max_value=10 ** 20),
                    st.floats(allow_nan=False, allow_infinity=False), HOSTILE_TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=8)


def _nested(depth: int) -> Any:
    node: Any = []
    for _ in range(depth):
        node = [node]
    return node


# Values json.dumps cannot write (too deep, not finite, too long): placeholders that
# _seal_raw turns into the raw JSON text an attacker would send.
RAW = st.one_of(st.integers(min_value=30, max_value=6000).map(lambda n: f"__RAW__{'[' * n}{']' * n}"),
                st.sampled_from(["__RAW__Infinity", "__RAW__-Infinity", "__RAW__NaN", "__RAW__1e999",
                                 "__RAW__" + "9" * 400, "__RAW__-" + "1" * 30]))
HOSTILE = st.one_of(JSON, JSON, RAW)

# Form field names the bot's cards use, and what Feishu's form components submit.
FORM_NAMES = ["title", "background", "current_state", "impact", "goal", "goal_date", "expected_outcome",
              "dept1_name", "dept1_head", "dept2_name", "dept2_head", "reason", "dept", "resources",
              "constraints", "demands", "decision", "req", "priority", "task", "owner", "start", "due",
              "standard", "depends", "status", "progress", "lag_reason", "adjustment", "kind", "content",
              "name", "lead", "member", "role", "duty", "who", "when", "item", "note", "days", "risk"]
FORM_VALUE = st.one_of(HOSTILE_TEXT, st.lists(HOSTILE_TEXT, max_size=3), st.booleans(),
                       st.integers(min_value=-10 ** 6, max_value=10 ** 6), st.sampled_from(list(NAMES)))
FORM = st.dictionaries(st.sampled_from(FORM_NAMES), FORM_VALUE, max_size=6)
SMALL = st.integers(min_value=0, max_value=6)
ID = st.one_of(SMALL, SMALL, SMALL, SMALL, st.integers(min_value=-5, max_value=10 ** 13), HOSTILE_TEXT)


def _common(world) -> dict[str, Any]:
    return {"app_id": APP_ID, "tenant_key": TENANT, "token": VERIFICATION_TOKEN,
            "create_ms": int(world.clock.now().timestamp() * 1000)}


@st.composite
def events(draw, world, actions: list[str], commands: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["message", "added", "removed", "click"]))
    user = draw(st.sampled_from(list(NAMES)))
    if kind == "message":
        text = draw(st.sampled_from(commands)) + " " + draw(HOSTILE_TEXT) if draw(st.booleans()) \
            else draw(HOSTILE_TEXT)
        payload = ev.message_event(chat_id=CHAT, sender_open_id=user, text=text, **_common(world))
    elif kind == "added":
        payload = ev.bot_added_event(chat_id=CHAT, operator_open_id=user, chat_name=draw(HOSTILE_TEXT),
                                     **_common(world))
    elif kind == "removed":
        payload = ev.bot_added_event(chat_id=CHAT, operator_open_id=user, chat_name="群", **_common(world))
        payload["header"]["event_type"] = "im.chat.member.bot.deleted_v1"
    else:
        case_id = draw(st.one_of(st.just(world.fuzz_case_id), st.just(world.fuzz_case_id), ID))
        value = {"a": draw(st.sampled_from(actions)), "c": case_id, "v": draw(ID), "r": draw(ID)}
        if draw(st.booleans()):
            value["x"] = draw(st.dictionaries(st.text(max_size=4), HOSTILE_TEXT, max_size=2))
        form = draw(st.none() | FORM)
        name = f"{value['a']}~{value['c']}~{value['v']}~{value['r']}" if form is not None else None
        payload = ev.card_action_event(chat_id=CHAT, message_id="om_fuzz", operator_open_id=user,
                                       value=None if form is not None else value, form_value=form, name=name,
                                       option=draw(st.none() | HOSTILE_TEXT), **_common(world))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        _replace_somewhere(draw, payload)
    return payload


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append(prefix + (key,))
            out.extend(_paths(value, prefix + (key,)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append(prefix + (i,))
            out.extend(_paths(value, prefix + (i,)))
    return out


# The fields the bot reads, where a wrong type is most likely to slip through.
READ_FIELDS = [("header", "create_time"), ("header", "event_id"), ("header", "tenant_key"),
               ("header", "event_type"), ("event",), ("event", "message"), ("event", "message", "mentions"),
               ("event", "message", "content"), ("event", "message", "chat_id"), ("event", "message", "message_id"),
               ("event", "message", "message_type"), ("event", "message", "chat_type"),
               ("event", "message", "thread_id"), ("event", "sender"), ("event", "sender", "sender_id"),
               ("event", "sender", "sender_type"), ("event", "chat_id"), ("event", "operator_id"),
               ("event", "name"), ("event", "operator"), ("event", "operator", "open_id"), ("event", "action"),
               ("event", "action", "value"), ("event", "action", "form_value"), ("event", "action", "name"),
               ("event", "action", "option"), ("event", "action", "tag"), ("event", "context"),
               ("event", "context", "open_chat_id"), ("event", "token"), ("schema",)]


def _replace_somewhere(draw, payload: dict[str, Any]) -> None:
    every = [p for p in _paths(payload) if p[:2] != ("header", "token") and p != ("header", "app_id")]
    read = [p for p in READ_FIELDS if _exists(payload, p[:-1])]
    path = draw(st.sampled_from(read)) if read and draw(st.booleans()) else draw(st.sampled_from(every))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(HOSTILE)


def _exists(payload: Any, path: tuple) -> bool:
    node = payload
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return isinstance(node, dict)


def _seal_raw(payload: dict[str, Any], timestamp: int) -> tuple[bytes, dict[str, str]]:
    """seal(), but writing the __RAW__ placeholders as raw JSON text."""
    text = json.dumps(payload)
    text = re.sub(r'"__RAW__([^"]*)"', lambda m: m.group(1), text)
    body = json.dumps({"encrypt": encrypt(text.encode(), ENCRYPT_KEY)}).encode()
    ts, nonce = str(timestamp), "n-fuzz"
    return body, {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
                  "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": signature(ts, nonce, ENCRYPT_KEY, body)}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture
def busy_world(world):
    """A group with a case in step 5, so clicks and commands reach real handlers with real rows."""
    world.fuzz_case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    make_plan_published(world.state.factory, world.fuzz_case_id, now=world.clock.now())
    return world


def test_no_event_reaches_an_unhandled_exception(busy_world):
    world = busy_world
    actions = sorted(world.state.dispatcher.router.actions)
    commands = sorted(world.state.dispatcher.router.commands)
    errors = _Errors()
    logging.getLogger().addHandler(errors)

    async def settle() -> None:
        while world.state.tasks:
            await asyncio.gather(*list(world.state.tasks), return_exceptions=True)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(payload=events(world, actions, commands))
    def check(payload: dict[str, Any]) -> None:
        body, headers = _seal_raw(payload, int(world.clock.now().timestamp()))
        resp = world.http.post("/feishu/events", content=body, headers=headers)
        world.http.portal.call(settle)
        assert resp.status_code in (200, 400, 401), (resp.status_code, resp.text)
        assert not errors.records, [r.getMessage() for r in errors.records]

    try:
        check()
    finally:
        logging.getLogger().removeHandler(errors)
    with world.state.factory() as s:
        assert set(s.scalars(select(InboxEvent.status))) <= {"done"}
