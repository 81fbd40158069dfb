"""The attacks on the front door (S1–S4, S7, S9, S14): a padding oracle, hostile numbers, depths,
types and characters, another app's events, a bad row among good ones. Each is refused with a
clear answer and changes nothing; no input is a 500."""
from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.envelope import parse_event
from bot.models import Case, InboxEvent
from bot.security import encrypt, seal, signature
from feishu_fake import events as ev
from tests.casefactory import make_case_at_step4
from tests.driver import APP_ID, CHAT, ENCRYPT_KEY, LEAD, TENANT, VERIFICATION_TOKEN


def _common(world) -> dict:
    return {"app_id": APP_ID, "tenant_key": TENANT, "token": VERIFICATION_TOKEN,
            "create_ms": int(world.clock.now().timestamp() * 1000)}


def _msg(world, text="/帮助", **kw) -> dict:
    return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=text, **_common(world), **kw)


def _inbox_count(world) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent))


def _sealed_raw(world, payload_bytes: bytes) -> tuple[bytes, dict]:
    """Encrypt and sign arbitrary plaintext bytes, as a holder of the Encrypt Key could."""
    body = json.dumps({"encrypt": encrypt(payload_bytes, ENCRYPT_KEY)}).encode()
    ts, nonce = str(int(world.clock.now().timestamp())), "n-raw"
    return body, {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
                  "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": signature(ts, nonce, ENCRYPT_KEY, body)}


def _answer_shape(resp) -> tuple:
    headers = tuple(sorted((k, v) for k, v in resp.headers.items() if k.lower() not in ("date",)))
    return resp.status_code, resp.content, headers


# ---------------------------------------------------------------- the padding oracle
def _tamper_last_byte(ciphertext_b64: str, guess: int) -> str:
    raw = bytearray(base64.b64decode(ciphertext_b64))
    raw[-17] ^= guess  # the byte of the previous block that XORs into the last padding byte
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("signed_badly", [False, True])
def test_padding_oracle_learns_nothing(world, signed_badly):
    """The classic CBC attack: flip the last byte of the second-to-last block 256 ways and watch
    which variant has valid padding. Every variant must get the very same answer."""
    captured, _ = seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=int(world.clock.now().timestamp()))
    ciphertext = json.loads(captured)["encrypt"]
    answers = set()
    for guess in range(256):
        body = json.dumps({"encrypt": _tamper_last_byte(ciphertext, guess)}).encode()
        headers = {"Content-Type": "application/json"}
        if signed_badly:
            headers.update({"X-Lark-Request-Timestamp": str(int(world.clock.now().timestamp())),
                            "X-Lark-Request-Nonce": "n", "X-Lark-Signature": "0" * 64})
        answers.add(_answer_shape(world.http.post("/feishu/events", content=body, headers=headers)))
    # guess 0 is the untouched (valid) ciphertext: unsigned, it must be refused like the rest
    assert len(answers) == 1, answers
    status, content, _ = answers.pop()
    assert status == 401 and json.loads(content) == {"msg": "unauthorized"}
    assert _inbox_count(world) == 0


def test_full_last_block_attack_recovers_nothing(world):
    """Run the byte-by-byte recovery of the last plaintext block against the webhook as the
    oracle; it never finds a 'valid padding' candidate, so it learns no byte."""
    captured, _ = seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=0)
    raw = base64.b64decode(json.loads(captured)["encrypt"])
    prev, last = raw[-32:-16], raw[-16:]
    learned = 0
    for position in range(15, 11, -1):  # four bytes are enough to show it: 1,024 requests
        hits = []
        for guess in range(256):
            forged = bytearray(16)
            forged[position] = guess
            body = json.dumps({"encrypt": base64.b64encode(bytes(forged) + last).decode()}).encode()
            resp = world.http.post("/feishu/events", content=body, headers={"Content-Type": "application/json"})
            if resp.status_code != 401:
                hits.append(guess)
        learned += len(hits) == 1
        assert hits == []
    assert learned == 0 and prev  # nothing about the block was learned


# ---------------------------------------------------------------- one uniform 401
def test_every_authentication_failure_is_the_same_401(world):
    now = int(world.clock.now().timestamp())
    good_body, good_headers = seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=now)
    other_app = _msg(world)
    other_app["header"]["app_id"] = "cli_another_app"
    wrong_token = _msg(world)
    wrong_token["header"]["token"] = "forged"
    cases = {
        "no headers": (good_body, {"Content-Type": "application/json"}),
        "bad signature": (good_body, {**good_headers, "X-Lark-Signature": "f" * 64}),
        "stale": seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=now - 301),
        "future": seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=now + 301),
        "400-digit timestamp": seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=int("9" * 400)),
        "wrong token": seal(wrong_token, encrypt_key=ENCRYPT_KEY, timestamp=now),
        "another app": seal(other_app, encrypt_key=ENCRYPT_KEY, timestamp=now),
        "sealed with another key": seal(_msg(world), encrypt_key="not-our-key", timestamp=now),
        "unsigned garbage": (b'{"encrypt": "AAAA"}', {"Content-Type": "application/json"}),
        "unsigned [[[": (b"[" * 50_000, {"Content-Type": "application/json"}),
        "non-ascii signature": (good_body, {**good_headers, "X-Lark-Signature": "签名".encode()}),
    }
    shapes = {}
    for name, (body, headers) in cases.items():
        resp = world.http.post("/feishu/events", content=body, headers=headers)
        shapes[name] = (resp.status_code, resp.content)
    assert set(shapes.values()) == {(401, b'{"msg":"unauthorized"}')}, shapes
    assert _inbox_count(world) == 0
    assert world.http.post("/feishu/events", content=good_body, headers=good_headers).status_code == 200


# ---------------------------------------------------------------- hostile but signed
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("name, plaintext", [
    ("[ 40 KB", b"[" * 40_000),
    ("Infinity create_time", json.dumps({"schema": "2.0", "header": {"event_id": "e1", "event_type":
                                         "im.message.receive_v1", "create_time": 1, "token": VERIFICATION_TOKEN,
                                         "app_id": APP_ID, "tenant_key": TENANT}, "event": {}}
                                        ).encode().replace(b'"create_time": 1', b'"create_time": Infinity')),
    ("NaN", b'{"schema": "2.0", "header": NaN}'),
    ("huge number", b'{"schema": "2.0", "n": ' + b"9" * 4000 + b"}"),
    ("1e999", b'{"schema": "2.0", "n": 1e999}'),
    ("nested 5000", ('{"schema": "2.0", "x": ' + _nested(5000) + "}").encode()),
    ("not an object", b'"just a string"'),
    ("invalid utf-8", b'{"schema": "2.0", "x": "\xff\xfe"}'),
])
def test_unreadable_signed_plaintext_is_400(world, name, plaintext):
    body, headers = _sealed_raw(world, plaintext)
    resp = world.http.post("/feishu/events", content=body, headers=headers)
    assert resp.status_code == 400 and resp.json() == {"msg": "bad request"}, name
    assert _inbox_count(world) == 0


def _with(payload: dict, path: tuple, value) -> dict:
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return payload


@pytest.mark.parametrize("path, value", [
    (("header", "create_time"), "9" * 400),
    (("header", "create_time"), -5),
    (("header", "create_time"), {"x": 1}),
    (("header", "tenant_key"), "tenant\x00a"),
    (("header", "tenant_key"), "tenant\ud800"),
    (("header", "event_id"), ["e"]),
    (("header", "event_id"), "e" * 129),
    (("event", "message", "chat_id"), "oc_\x00group"),
    (("event", "message", "chat_id"), "oc group"),
    (("event", "message", "mentions"), 5),
    (("event", "message", "mentions"), [5]),
    (("event", "message", "mentions"), [{"key": {"a": 1}, "id": {"open_id": "ou_x"}}]),
    (("event", "message", "content"), '{"text": ' + _nested(5000) + "}"),
    (("event", "message", "content"), '{"text": 12}'),
    (("event", "message", "content"), "not json"),
    (("event", "message", "thread_id"), {"t": 1}),
    (("event", "sender"), "ou_lead"),
    (("event",), []),
])
def test_hostile_message_fields_are_400_and_store_nothing(world, path, value):
    resp = world.post(_with(_msg(world), path, value))
    assert resp.status_code == 400 and resp.json() == {"msg": "bad request"}, (path, value)
    assert _inbox_count(world) == 0


@pytest.mark.parametrize("text", ["/问题 新品\x00推广", "/问题 新品\ud800推广"])
def test_command_with_unstorable_characters_gets_a_clear_answer(world, text):
    resp = world.say(LEAD, text)
    assert resp.status_code == 200
    assert world.texts() == [texts.UNREADABLE_TEXT]
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0
        statuses = set(s.scalars(select(InboxEvent.status)))
    assert statuses == {"done"}


def _click(world, **kw) -> dict:
    return ev.card_action_event(chat_id=CHAT, message_id="om_card", operator_open_id=LEAD, **_common(world), **kw)


SIGN = "consensus.sign"  # a real button: an id in range reaches its handler


def test_a_number_no_id_can_have_is_400(world):
    assert world.post(_click(world, value={"a": SIGN, "c": 10 ** 30})).status_code == 400
    assert _inbox_count(world) == 0


@pytest.mark.parametrize("value", [
    {"a": SIGN, "c": 2 ** 31},
    {"a": SIGN, "c": 10 ** 12},
    {"a": SIGN, "c": "1" * 40},
    {"a": SIGN, "c": "²"},
    {"a": SIGN, "c": -1},
    {"a": SIGN, "c": "CASE", "v": 2 ** 40},
    {"a": SIGN, "c": "CASE", "r": 2 ** 31},
    {"a": "x" * 200},
    {"a": SIGN, "c": True},
    {"a": SIGN, "c": "CASE", "x": {"k": 5}},
])
def test_out_of_range_card_values_are_refused_with_a_toast(world, value):
    """S7: ids and versions are range-checked where the card value is parsed; the same click with
    the numbers in range reaches the sign-off handler, which answers otherwise (S1_SIGNED…)."""
    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    value = {k: case_id if v == "CASE" else v for k, v in value.items()}
    resp = world.post(_click(world, value=value))
    assert resp.status_code == 200
    assert resp.json()["toast"] == {"type": "error", "content": texts.UNKNOWN_ACTION}
    control = world.post(_click(world, value={"a": SIGN, "c": case_id})).json()
    assert control["toast"]["content"] != texts.UNKNOWN_ACTION, control
    missing = world.post(_click(world, value={"a": SIGN, "c": 2 ** 31 - 1})).json()
    assert missing["toast"]["content"] == texts.CASE_NOT_FOUND, missing


@pytest.mark.parametrize("form", [{"title": "a\x00b"}, {"title": ["ok", "b\udc00"]}])
def test_form_text_with_unstorable_characters_gets_a_toast(world, form):
    resp = world.post(_click(world, form_value=form, name="s1.submit~~~"))
    assert resp.status_code == 200
    assert resp.json()["toast"] == {"type": "error", "content": texts.UNREADABLE_INPUT}


@pytest.mark.parametrize("form", [{"title": {"nested": 1}}, {"title": [1, 2]}, {"t": [["x"]]}])
def test_form_values_of_impossible_types_are_400(world, form):
    assert world.post(_click(world, form_value=form, name="s1.submit~~~")).status_code == 400
    assert _inbox_count(world) == 0


# ---------------------------------------------------------------- app_id
def test_event_for_another_app_is_refused_and_not_stored(world):
    payload = _msg(world)
    payload["header"]["app_id"] = "cli_someone_else"
    resp = world.post(payload)
    assert resp.status_code == 401 and resp.json() == {"msg": "unauthorized"}
    assert _inbox_count(world) == 0


# ---------------------------------------------------------------- a bad row among good ones
def test_one_refused_row_does_not_fail_its_batch(world):
    """The group commit of concurrent inbox inserts: a row the database refuses is answered on
    its own (None) and its 30 neighbours are stored."""
    good = [_msg(world) for _ in range(30)]
    bad = _msg(world)
    bad_event = parse_event(bad)
    bad["unserialisable"] = object()  # a row the JSON column cannot store
    items = [(p, parse_event(p)) for p in good[:15]] + [(bad, bad_event)] + \
            [(p, parse_event(p)) for p in good[15:]]

    async def race():
        return await asyncio.gather(*(world.state.dispatcher.astore(p, e) for p, e in items))

    results = world.http.portal.call(race)
    assert results[15] is None
    assert results[:15] + results[16:] == [True] * 30
    assert _inbox_count(world) == 30


@pytest.mark.skipif("not __import__('tests.conftest', fromlist=['PG_URL']).PG_URL",
                    reason="PostgreSQL refuses NUL and over-long text; SQLite stores them")
def test_database_data_error_refuses_only_that_row(world):
    good = [_msg(world) for _ in range(10)]
    items = [(p, parse_event(p)) for p in good]
    bad = _msg(world)
    event = parse_event(bad)
    from dataclasses import replace

    items.insert(4, (bad, replace(event, chat_id="oc_\x00" + "x" * 10)))
    results = world.state.dispatcher.store_many(items)
    assert results[4] is None and results[:4] + results[5:] == [True] * 10


# ---------------------------------------------------------------- logs
def test_no_hostile_request_logs_a_traceback(world, caplog):
    caplog.set_level(logging.INFO)
    for body in (b"[" * 50_000, b"\x00" * 100, b'{"encrypt": 5}'):
        world.http.post("/feishu/events", content=body, headers={"Content-Type": "application/json"})
    payload = _msg(world)
    payload["event"]["message"]["mentions"] = 5
    world.post(payload)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
