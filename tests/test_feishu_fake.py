"""The fake keeps Feishu's contract: envelopes, codes, limits, dedupe, state."""
import json
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bot.clock import ManualClock
from feishu_fake import FakeFeishu

BASE = "https://open.feishu.cn"
CARD = {"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "标题"}},
        "body": {"elements": [{"tag": "markdown", "content": "**hi**"}]}}


@pytest.fixture
def clock():
    return ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))


@pytest.fixture
def fake(fake):
    fake.add_chat("oc_1", [("ou_1", "Alice"), ("ou_2", "Bob")])
    return fake


@pytest.fixture
def http(fake):
    with httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake.handle)) as c:
        yield c


def token(http, secret="s3cret"):
    return http.post("/open-apis/auth/v3/tenant_access_token/internal",
                     json={"app_id": "cli_a", "app_secret": secret})


def auth(http):
    return {"Authorization": f"Bearer {token(http).json()['tenant_access_token']}"}


def send(http, h, chat="oc_1", content=None, msg_type="interactive", uuid=None):
    body = {"receive_id": chat, "msg_type": msg_type,
            "content": json.dumps(CARD) if content is None else content}
    if uuid:
        body["uuid"] = uuid
    return http.post("/open-apis/im/v1/messages", params={"receive_id_type": "chat_id"}, json=body, headers=h)


def test_token_contract(fake, http, clock):
    r = token(http)
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0 and body["expire"] == 7200
    assert body["tenant_access_token"].startswith("t-") and "data" not in body
    # >= 30 min left: the same token comes back with the remaining lifetime
    clock.advance(600)
    again = token(http).json()
    assert again["tenant_access_token"] == body["tenant_access_token"] and again["expire"] == 6600
    # < 30 min left: a new token; the old one keeps working until it expires
    clock.advance(5400)
    new = token(http).json()
    assert new["tenant_access_token"] != body["tenant_access_token"] and new["expire"] == 7200
    old_h = {"Authorization": f"Bearer {body['tenant_access_token']}"}
    assert send(http, old_h).json()["code"] == 0
    clock.advance(1201)
    r = send(http, old_h)
    assert r.status_code == 400 and r.json()["code"] == 99991663
    assert token(http, "wrong").json()["code"] == 10014


def test_auth_required(fake, http):
    r = send(http, {})
    assert r.status_code == 400 and r.json()["code"] == 99991661
    assert send(http, {"Authorization": "Bearer t-forged"}).json()["code"] == 99991663
    h = auth(http)
    fake.revoke_tokens()
    assert send(http, h).json()["code"] == 99991663


def test_send_message_envelope_and_state(fake, http):
    r = send(http, auth(http), uuid="u-1")
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0 and body["msg"] == "success"
    data = body["data"]
    assert data["message_id"].startswith("om_") and data["chat_id"] == "oc_1"
    assert data["msg_type"] == "interactive" and data["create_time"].isdigit()
    assert data["sender"]["sender_type"] == "app"
    assert r.headers["x-tt-logid"]
    [m] = fake.messages("oc_1")
    assert m.content == CARD and m.uuid == "u-1" and m.sender == "bot"
    call = fake.calls[-1]
    assert (call.method, call.path, call.uuid, call.status, call.code) == \
        ("POST", "/open-apis/im/v1/messages", "u-1", 200, 0)
    assert call.query == {"receive_id_type": "chat_id"}


@pytest.mark.parametrize("kwargs,status,code", [
    ({"content": CARD}, 400, 99992402),                         # dict, not a JSON string
    ({"content": "{not json"}, 400, 230001),
    ({"msg_type": "fancy"}, 400, 230001),
    ({"content": json.dumps({"x": "a" * 31_000})}, 400, 230025),  # card > 30 KB
    ({"content": json.dumps({"text": "hi"}), "msg_type": "text", "chat": "oc_nope"}, 400, 230001),
    ({"content": json.dumps({"nope": 1}), "msg_type": "text"}, 400, 230001),
    ({"uuid": "x" * 51}, 400, 99992402),
])
def test_send_validation(fake, http, kwargs, status, code):
    r = send(http, auth(http), **kwargs)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert fake.messages("oc_1") == []


def test_text_up_to_150kb_and_receive_id_type(fake, http):
    h = auth(http)
    assert send(http, h, content=json.dumps({"text": "a" * 100_000}), msg_type="text").json()["code"] == 0
    r = http.post("/open-apis/im/v1/messages", json={"receive_id": "oc_1", "msg_type": "text",
                                                      "content": "{\"text\":\"x\"}"}, headers=h)
    assert r.json()["code"] == 99992402


def test_bot_not_in_chat(fake, http):
    fake.remove_bot("oc_1")
    r = send(http, auth(http))
    assert (r.status_code, r.json()["code"]) == (400, 230002)


def test_uuid_dedupe_for_one_hour(fake, http, clock):
    h = auth(http)
    a = send(http, h, uuid="remind-1").json()["data"]["message_id"]
    clock.advance(1)
    b = send(http, h, uuid="remind-1", content=json.dumps({"other": 1})).json()["data"]["message_id"]
    assert a == b and len(fake.messages("oc_1")) == 1
    clock.advance(3600)
    h = auth(http)
    c = send(http, h, uuid="remind-1").json()["data"]["message_id"]
    assert c != a and len(fake.messages("oc_1")) == 2


def test_reply_patch_visible(fake, http, clock):
    h = auth(http)
    user_mid = fake.post_user_message("oc_1", "ou_1", "help")
    r = http.post(f"/open-apis/im/v1/messages/{user_mid}/reply",
                  json={"msg_type": "interactive", "content": json.dumps(CARD), "uuid": "r1"}, headers=h)
    reply = r.json()["data"]
    assert reply["parent_id"] == user_mid
    new_card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "done"}]}}
    r = http.patch(f"/open-apis/im/v1/messages/{reply['message_id']}",
                   json={"content": json.dumps(new_card)}, headers=h)
    assert r.json() == {"code": 0, "msg": "success", "data": {}}
    seen = fake.visible("oc_1")
    assert [v["sender"] for v in seen] == ["ou_1", "bot"]
    assert seen[0]["content"] == {"text": "help"}
    assert seen[1]["content"] == new_card and seen[1]["updated"] is True
    # only own messages, only cards, only within 14 days
    r = http.patch(f"/open-apis/im/v1/messages/{user_mid}", json={"content": json.dumps(new_card)}, headers=h)
    assert r.json()["code"] == 230027
    text_mid = send(http, h, content=json.dumps({"text": "t"}), msg_type="text").json()["data"]["message_id"]
    r = http.patch(f"/open-apis/im/v1/messages/{text_mid}", json={"content": json.dumps(new_card)}, headers=h)
    assert r.json()["code"] == 230054
    clock.advance(timedelta(days=15))
    h = auth(http)
    r = http.patch(f"/open-apis/im/v1/messages/{reply['message_id']}",
                   json={"content": json.dumps(new_card)}, headers=h)
    assert r.json()["code"] == 230054


def test_card_token_two_uses_thirty_minutes(fake, http, clock):
    h = auth(http)
    mid = send(http, h).json()["data"]["message_id"]
    tok = fake.issue_card_token(mid)
    assert tok.startswith("c-")
    for n in range(2):
        card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": f"v{n}"}]}}
        r = http.post("/open-apis/interactive/v1/card/update", json={"token": tok, "card": card}, headers=h)
        assert r.json()["code"] == 0
        assert fake.visible("oc_1")[0]["content"] == card
    r = http.post("/open-apis/interactive/v1/card/update", json={"token": tok, "card": CARD}, headers=h)
    assert r.json()["code"] != 0
    tok2 = fake.issue_card_token(mid)
    clock.advance(1801)
    h = auth(http)
    r = http.post("/open-apis/interactive/v1/card/update", json={"token": tok2, "card": CARD}, headers=h)
    assert r.json()["code"] != 0


def test_pin_is_idempotent(fake, http):
    h = auth(http)
    mid = send(http, h).json()["data"]["message_id"]
    for _ in range(2):
        r = http.post("/open-apis/im/v1/pins", json={"message_id": mid}, headers=h)
        assert r.json()["code"] == 0 and r.json()["data"]["pin"]["message_id"] == mid
    assert fake.visible("oc_1")[0]["pinned"] is True


def test_members_paging_omits_bots(fake, http):
    fake.add_chat("oc_big", [(f"ou_{i}", f"U{i}") for i in range(5)])
    h = auth(http)
    got, token_, pages = [], None, 0
    while True:
        params = {"member_id_type": "open_id", "page_size": 2}
        if token_:
            params["page_token"] = token_
        data = http.get("/open-apis/im/v1/chats/oc_big/members", params=params, headers=h).json()["data"]
        pages += 1
        got += [i["member_id"] for i in data["items"]]
        assert data["member_total"] == 5
        if not data["has_more"]:
            break
        token_ = data["page_token"]
    assert pages == 3 and got == [f"ou_{i}" for i in range(5)]
    assert fake.bot_open_id not in got
    r = http.get("/open-apis/im/v1/chats/oc_big/members", params={"page_size": 101}, headers=h)
    assert r.json()["code"] == 99992402


def test_user_and_bot_info(fake, http):
    h = auth(http)
    r = http.get("/open-apis/contact/v3/users/ou_1", params={"user_id_type": "open_id"}, headers=h)
    assert r.json()["data"]["user"]["name"] == "Alice"
    r = http.get("/open-apis/contact/v3/users/ou_ghost", params={"user_id_type": "open_id"}, headers=h)
    assert r.json()["code"] == 41050
    bot = http.get("/open-apis/bot/v3/info", headers=h).json()
    assert bot["code"] == 0 and bot["bot"]["open_id"] == "ou_bot" and "data" not in bot


def test_app_rate_limit_per_second_and_minute(fake, http, clock):
    chats = [f"oc_r{i}" for i in range(60)]
    for c in chats:
        fake.add_chat(c)
    h = auth(http)
    codes = [send(http, h, chat=c).json()["code"] for c in chats[:51]]
    assert codes[:50] == [0] * 50
    r = send(http, h, chat=chats[55])
    assert r.status_code == 429 and r.json()["code"] == 99991400
    assert r.headers["x-ogw-ratelimit-reset"] == "1" and r.headers["x-ogw-ratelimit-limit"]
    clock.advance(1.0)
    assert send(http, h, chat=chats[56]).json()["code"] == 0
    # minute window: 1000 accepted (429s don't count), then 429 until the oldest leaves the window
    fake2 = FakeFeishu(app_id="cli_a", app_secret="s3cret", clock=clock)
    for c in chats:
        fake2.add_chat(c)
    with httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake2.handle)) as h2:
        hh = auth(h2)
        for i in range(1000):
            assert send(h2, hh, chat=chats[i % 60]).json()["code"] == 0
            clock.advance(0.05)
        r = send(h2, hh, chat=chats[0])
        assert r.status_code == 429 and int(r.headers["x-ogw-ratelimit-reset"]) >= 9
        clock.advance(int(r.headers["x-ogw-ratelimit-reset"]))
        assert send(h2, hh, chat=chats[1]).json()["code"] == 0


def test_per_chat_limit_and_toggle(fake, http, clock):
    h = auth(http)
    codes = [send(http, h).json()["code"] for _ in range(6)]
    assert codes == [0] * 5 + [230020]
    assert fake.calls[-1].status == 400
    clock.advance(1.0)
    assert send(http, h).json()["code"] == 0
    fake.limits_enabled = False
    assert all(send(http, h).json()["code"] == 0 for _ in range(60))


def test_fault_injection(fake, http):
    h = auth(http)
    fake.fail_next(2, status=503)
    assert [send(http, h).status_code for _ in range(3)] == [503, 503, 200]
    fake.fail_next(1, status=502, html=True)
    r = send(http, h)
    assert r.status_code == 502 and r.text.startswith("<html>")
    fake.fail_next(1, status=429, reset=3)
    r = send(http, h)
    assert r.status_code == 429 and r.headers["x-ogw-ratelimit-reset"] == "3"
    assert len(fake.messages("oc_1")) == 1
    fake.limits_enabled = False
    fake.fail_rate(0.5, seed=7)
    first = [send(http, h).status_code for _ in range(20)]
    fake.fail_rate(0.5, seed=7)
    assert [send(http, h).status_code for _ in range(20)] == first and 503 in first and 200 in first
    fake.fail_rate(0)
    assert token(http).status_code == 200  # token endpoint is never faulted


async def test_async_handler_delay_applies_after_effect(fake):
    fake.delay(0.05)
    async with httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(fake.ahandle)) as c:
        t = (await c.post("/open-apis/auth/v3/tenant_access_token/internal",
                          json={"app_id": "cli_a", "app_secret": "s3cret"})).json()["tenant_access_token"]
        r = await c.post("/open-apis/im/v1/messages", params={"receive_id_type": "chat_id"},
                         json={"receive_id": "oc_1", "msg_type": "text", "content": "{\"text\":\"x\"}"},
                         headers={"Authorization": f"Bearer {t}"})
        assert r.json()["code"] == 0


async def test_asgi_app_serves_same_logic(fake):
    transport = httpx.ASGITransport(app=fake.asgi_app())
    async with httpx.AsyncClient(base_url="http://127.0.0.1:18080", transport=transport) as c:
        t = (await c.post("/open-apis/auth/v3/tenant_access_token/internal",
                          json={"app_id": "cli_a", "app_secret": "s3cret"})).json()["tenant_access_token"]
        r = await c.post("/open-apis/im/v1/messages?receive_id_type=chat_id",
                         json={"receive_id": "oc_1", "msg_type": "interactive", "content": json.dumps(CARD)},
                         headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 200 and r.json()["code"] == 0 and r.headers["x-tt-logid"]
        r = await c.get("/open-apis/nope", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 404
    assert fake.visible("oc_1")[0]["content"] == CARD


def test_thread_safe_under_concurrent_clients(fake):
    fake.limits_enabled = False
    errors = []

    def worker(n):
        try:
            with httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake.handle)) as c:
                h = auth(c)
                for i in range(40):
                    assert send(c, h, uuid=f"w{n}-{i}").json()["code"] == 0
                    assert send(c, h, uuid="shared").json()["code"] == 0
        except Exception as e:  # noqa: BLE001  # pragma: no cover - any failure in a thread is surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    msgs = fake.messages("oc_1")
    assert len(msgs) == 8 * 40 + 1
    assert len({m.message_id for m in msgs}) == len(msgs)
