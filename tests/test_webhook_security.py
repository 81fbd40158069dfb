"""S1–S5, S9 and the webhook's answers: verify before parsing, 401 on forgery, never a 500."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from bot.models import InboxEvent
from bot.security import encrypt, seal, signature
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, ENCRYPT_KEY, LEAD, TENANT, VERIFICATION_TOKEN


def _msg(world, text="/帮助", **kw):
    return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=text, app_id=APP_ID, tenant_key=TENANT,
                            token=VERIFICATION_TOKEN, create_ms=int(world.clock.now().timestamp() * 1000), **kw)


def _inbox_count(world) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent))


def _post_raw(world, body: bytes, headers: dict):
    return world.http.post("/feishu/events", content=body, headers=headers)


def test_url_verification_encrypted(world):
    body, _ = seal(ev.url_verification(token=VERIFICATION_TOKEN, challenge="c-123"), encrypt_key=ENCRYPT_KEY,
                   timestamp=0)
    resp = _post_raw(world, body, {"Content-Type": "application/json"})  # Feishu sends it unsigned
    assert resp.status_code == 200 and resp.json() == {"challenge": "c-123"}
    assert _inbox_count(world) == 0


def test_url_verification_wrong_token(world):
    body, _ = seal(ev.url_verification(token="nope", challenge="c"), encrypt_key=ENCRYPT_KEY, timestamp=0)
    assert _post_raw(world, body, {}).status_code == 401


def test_url_verification_plain_when_no_encrypt_key(database_url, clock):
    from tests.driver import FeishuWorld

    w = FeishuWorld(database_url, clock, feishu_encrypt_key="")
    try:
        resp = w.http.post("/feishu/events", json=ev.url_verification(token=VERIFICATION_TOKEN, challenge="abc"))
        assert resp.json() == {"challenge": "abc"}
        # without an Encrypt Key, events are plaintext and the token is the check (S3)
        assert w.http.post("/feishu/events", json=_msg(w)).status_code == 200
        bad = _msg(w)
        bad["header"]["token"] = "forged"
        assert w.http.post("/feishu/events", json=bad).status_code == 401
    finally:
        w.close()


def test_valid_event_accepted_and_stored_once(world):
    payload = _msg(world)
    assert world.post(payload).status_code == 200
    assert _inbox_count(world) == 1


@pytest.mark.parametrize("tamper", ["body", "signature", "nonce", "timestamp"])
def test_tampered_request_is_401_and_stores_nothing(world, tamper):
    ts = int(world.clock.now().timestamp())
    body, headers = seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=ts)
    if tamper == "body":
        body = body.replace(b'"}', b'A"}')
    elif tamper == "signature":
        headers["X-Lark-Signature"] = "0" * 64
    elif tamper == "nonce":
        headers["X-Lark-Request-Nonce"] += "x"
    else:
        headers["X-Lark-Request-Timestamp"] = str(ts + 1)
    resp = _post_raw(world, body, headers)
    assert resp.status_code == 401
    assert resp.json() == {"msg": "unauthorized"}  # generic: no internals (S1)
    assert _inbox_count(world) == 0


def test_missing_signature_headers_401(world):
    body, _ = seal(_msg(world), encrypt_key=ENCRYPT_KEY, timestamp=int(world.clock.now().timestamp()))
    assert _post_raw(world, body, {"Content-Type": "application/json"}).status_code == 401


@pytest.mark.parametrize("offset,status", [(-301, 401), (301, 401), (-299, 200), (299, 200)])
def test_timestamp_window(world, offset, status):
    now = int(world.clock.now().timestamp())
    assert world.post(_msg(world), timestamp=now + offset).status_code == status  # S2, clock injected


def test_old_but_correctly_signed_request_rejected(world):
    # lark-oapi alone accepts a 7-day-old signature; we do not (S2).
    now = int(world.clock.now().timestamp())
    assert world.post(_msg(world), timestamp=now - 7 * 86400).status_code == 401


def test_wrong_verification_token_401(world):
    payload = _msg(world)
    payload["header"]["token"] = "someone-elses-token"
    assert world.post(payload).status_code == 401  # S3


def test_plaintext_body_rejected_when_key_configured(world):
    body = json.dumps(_msg(world)).encode()
    ts, nonce = str(int(world.clock.now().timestamp())), "n1"
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": signature(ts, nonce, ENCRYPT_KEY, body)}
    assert _post_raw(world, body, headers).status_code == 401  # S4


def test_encrypted_with_another_key_is_401(world):
    body, headers = seal(_msg(world), encrypt_key="another-key", timestamp=int(world.clock.now().timestamp()))
    assert _post_raw(world, body, headers).status_code == 401


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'{"encrypt": 5}'])
def test_garbage_is_rejected_without_500(world, body):
    ts, nonce = str(int(world.clock.now().timestamp())), "n"
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": signature(ts, nonce, ENCRYPT_KEY, body)}
    resp = _post_raw(world, body, headers)
    assert resp.status_code in (400, 401)
    assert _inbox_count(world) == 0


def test_signed_but_undecryptable_is_400(world):
    body = json.dumps({"encrypt": "QUJD" * 8}).encode()  # valid base64, wrong padding after decrypt
    ts, nonce = str(int(world.clock.now().timestamp())), "n"
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": signature(ts, nonce, ENCRYPT_KEY, body)}
    assert _post_raw(world, body, headers).status_code == 400


def test_signed_but_malformed_event_is_400(world):
    payload = _msg(world)
    del payload["event"]["message"]["chat_id"]
    assert world.post(payload).status_code == 400
    assert _inbox_count(world) == 0


def test_unsubscribed_event_type_is_acknowledged(world):
    payload = _msg(world)
    payload["header"]["event_type"] = "im.message.reaction.created_v1"
    assert world.post(payload).status_code == 200  # no endless Feishu retries
    assert _inbox_count(world) == 0


def test_duplicate_delivery_has_one_effect(world):
    payload = _msg(world)
    statuses = [world.post(payload).status_code for _ in range(3)]  # sequential retries (S5/F9)
    with ThreadPoolExecutor(3) as pool:                            # and concurrent ones
        statuses += list(pool.map(lambda _: world.post(payload).status_code, range(3)))
    world.drain()
    assert statuses == [200] * 6
    assert _inbox_count(world) == 1
    assert len(world.cards()) == 1  # one help card


def test_same_message_under_new_event_id_has_one_effect(world):
    first = _msg(world, message_id="om_same")
    second = _msg(world, message_id="om_same")  # long-connection backfill: new event_id, same message
    assert world.post(first).status_code == 200 and world.post(second).status_code == 200
    world.drain()
    assert len(world.cards()) == 1


def test_our_sealing_matches_lark_oapi_decryptor():
    from lark_oapi.core.utils.decryptor import AESCipher

    plaintext = json.dumps({"hello": "飞书", "n": 1}, ensure_ascii=False)
    sealed = encrypt(plaintext.encode(), ENCRYPT_KEY)
    assert AESCipher(ENCRYPT_KEY).decrypt_str(sealed) == plaintext


def test_signature_matches_lark_oapi_verifier():
    """lark-oapi's own dispatcher accepts our signed requests (and rejects a tampered one)."""
    import lark_oapi as lark

    handler = lark.EventDispatcherHandler.builder(ENCRYPT_KEY, VERIFICATION_TOKEN).build()
    body, headers = seal({"schema": "2.0", "header": {"event_type": "x.y", "token": VERIFICATION_TOKEN,
                                                      "event_id": "e"}, "event": {}},
                         encrypt_key=ENCRYPT_KEY, timestamp=1_700_000_000)
    req = lark.RawRequest()
    req.uri, req.body, req.headers = "/", body, headers
    handler._verify_sign(req, ENCRYPT_KEY)
    req.headers = dict(headers, **{"X-Lark-Signature": "0" * 64})
    with pytest.raises(Exception):
        handler._verify_sign(req, ENCRYPT_KEY)
