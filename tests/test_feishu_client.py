"""FeishuClient against the stateful fake: contract, token handling, typed errors, retries (F1–F3)."""
import asyncio
import random
from datetime import datetime, timezone

import httpx
import pytest

from bot.clock import ManualClock
from bot.feishu import (
    BotInfo,
    FeishuClient,
    Member,
    Permanent,
    RateLimited,
    TokenInvalid,
    Transient,
    User,
    normalize_uuid,
)
from bot.pacer import Pacer

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MSG_PATH = "/open-apis/im/v1/messages"
CARD = {"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "日报"}},
        "body": {"elements": [{"tag": "markdown", "content": "今天 **3** 件"}]}}


class VirtualTime:
    """Injected sleep/monotonic; sleeping also moves the fake server's clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.t = 5000.0
        self.clock = clock
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        if d > 0:
            self.t += d
            self.clock.advance(d)
        await asyncio.sleep(0)

    def advance(self, d: float) -> None:
        self.t += d
        self.clock.advance(d)


@pytest.fixture
def clock():
    return ManualClock(datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc))


@pytest.fixture
def vt(clock):
    return VirtualTime(clock)


@pytest.fixture
def fake(fake):
    fake.add_chat("oc_1", [("ou_1", "Alice"), ("ou_2", "Bob")])
    return fake


@pytest.fixture
async def make(fake, vt):
    clients = []

    def _make(handler=None, **kw):
        kw.setdefault("random", random.Random(42).random)
        c = FeishuClient(app_id="cli_a", app_secret="s3cret",
                         transport=httpx.MockTransport(handler or fake.handle),
                         sleep=vt.sleep, monotonic=vt.monotonic, **kw)
        clients.append(c)
        return c

    yield _make
    for c in clients:
        await c.aclose()


def sends(fake):
    return [c for c in fake.calls if c.path == MSG_PATH]


# ----------------------------------------------------------------------------- contract
async def test_send_card_contract(fake, make):
    client = make()
    mid = await client.send_card("oc_1", CARD, uuid="daily-1")
    [m] = fake.messages("oc_1")
    assert m.message_id == mid and m.content == CARD and m.msg_type == "interactive" and m.uuid == "daily-1"
    call = sends(fake)[0]
    assert call.query == {"receive_id_type": "chat_id"}
    assert isinstance(call.json["content"], str) and "日报" in call.json["content"]  # ensure_ascii=False


async def test_text_reply_patch_pin_delayed_update(fake, make):
    client = make()
    await client.send_text("oc_1", "你好", uuid="t-1")
    user_mid = fake.post_user_message("oc_1", "ou_1", "求助")
    reply = await client.reply_card(user_mid, CARD, uuid="r-1", chat_id="oc_1")
    done = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "已处理"}]}}
    await client.patch_card(reply, done)
    await client.pin(reply)
    await client.pin(reply)  # idempotent
    seen = fake.visible("oc_1")
    assert [v["content"] for v in seen] == [{"text": "你好"}, {"text": "求助"}, done]
    assert seen[2]["parent_id"] == user_mid and seen[2]["pinned"]
    token = fake.issue_card_token(reply)
    await client.delayed_update(token, CARD)
    await client.delayed_update(token, done)
    assert fake.visible("oc_1")[2]["content"] == done
    with pytest.raises(Permanent):  # 2 uses only; not retried
        await client.delayed_update(token, CARD)


async def test_private_card_send_and_delete(fake, make):
    """ephemeral/v1/send takes the card as an object (Card JSON 2.0) and answers a message_id;
    only that person sees it; deleting twice is done, not an error (18051 消息已删除)."""
    client = make()
    mid = await client.send_private("oc_1", "ou_1", CARD)
    call = [c for c in fake.calls if c.path == "/open-apis/ephemeral/v1/send"][0]
    assert call.json == {"chat_id": "oc_1", "open_id": "ou_1", "msg_type": "interactive", "card": CARD}
    assert [v["message_id"] for v in fake.visible("oc_1", viewer="ou_1")] == [mid]
    assert fake.visible("oc_1") == [] and fake.visible("oc_1", viewer="ou_2") == []
    await client.delete_private(mid)
    await client.delete_private(mid)
    assert fake.visible("oc_1", viewer="ou_1") == []
    with pytest.raises(Permanent):   # someone outside the group gets no private card
        await client.send_private("oc_1", "ou_stranger", CARD)


async def test_reads(fake, make):
    fake.add_chat("oc_big", [(f"ou_{i:03d}", f"U{i}") for i in range(230)])
    client = make()
    members = await client.chat_members("oc_big")
    assert len(members) == 230 and members[0] == Member("ou_000", "U0")
    pages = [c for c in fake.calls if c.path.endswith("/members")]
    assert len(pages) == 3 and all(c.query["page_size"] == "100" for c in pages)
    assert await client.user("ou_1") == User("ou_1", "Alice")
    assert await client.bot_info() == BotInfo("ou_bot", "Fake Bot")


async def test_long_uuid_is_hashed_not_truncated(fake, make):
    client = make()
    a = "remind-" + "x" * 60 + "-a"
    b = "remind-" + "x" * 60 + "-b"
    assert len(normalize_uuid(a)) == 50 and normalize_uuid(a) == normalize_uuid(a)
    assert normalize_uuid(a) != normalize_uuid(b) and normalize_uuid("short") == "short"
    m1 = await client.send_text("oc_1", "1", uuid=a)
    m2 = await client.send_text("oc_1", "2", uuid=b)
    m3 = await client.send_text("oc_1", "1", uuid=a)
    assert m1 != m2 and m1 == m3 and len(fake.messages("oc_1")) == 2


# -------------------------------------------------------------------------------- token
async def test_token_cached_renewed_and_single_flight(fake, make, vt):
    client = make()
    await asyncio.gather(*(client.send_text("oc_1", str(i), uuid=f"u{i}") for i in range(4)))
    fake.limits_enabled = False
    await asyncio.gather(*(client.send_text("oc_1", str(i), uuid=f"v{i}") for i in range(10)))
    assert len(fake.calls_to(TOKEN_PATH)) == 1
    vt.advance(7200 - 300 - 1)          # still inside the 5-minute renewal margin
    await client.send_text("oc_1", "x", uuid="w1")
    assert len(fake.calls_to(TOKEN_PATH)) == 1
    vt.advance(2)                       # past it: renewed before the server would reject it
    await client.send_text("oc_1", "y", uuid="w2")
    assert len(fake.calls_to(TOKEN_PATH)) == 2
    assert all(c.code == 0 for c in sends(fake))


async def test_rejected_token_is_refetched_once(fake, make):
    client = make()
    await client.send_text("oc_1", "a", uuid="a")
    fake.revoke_tokens()
    await client.send_text("oc_1", "b", uuid="b")
    assert len(fake.calls_to(TOKEN_PATH)) == 2
    assert [c.code for c in sends(fake)] == [0, 99991663, 0]
    assert len(fake.messages("oc_1")) == 2


async def test_token_rejected_twice_raises(fake, make):
    def handler(request):
        if request.url.path == TOKEN_PATH:
            return fake.handle(request)
        return httpx.Response(400, json={"code": 99991663, "msg": "Invalid access token"})

    client = make(handler)
    with pytest.raises(TokenInvalid) as e:
        await client.send_text("oc_1", "a", uuid="a")
    assert isinstance(e.value, Permanent) and e.value.code == 99991663
    assert len(fake.calls_to(TOKEN_PATH)) == 2


async def test_bad_secret_is_permanent(fake, vt):
    client = FeishuClient(app_id="cli_a", app_secret="wrong", transport=httpx.MockTransport(fake.handle),
                          sleep=vt.sleep, monotonic=vt.monotonic)
    with pytest.raises(Permanent) as e:
        await client.send_text("oc_1", "a", uuid="a")
    await client.aclose()
    assert e.value.code == 10014 and "wrong" not in str(e.value)
    assert sends(fake) == []


# ---------------------------------------------------------------------------- typed errors
async def test_permanent_error_not_retried(fake, make, vt):
    fake.remove_bot("oc_1")
    client = make()
    with pytest.raises(Permanent) as e:
        await client.send_card("oc_1", CARD, uuid="p")
    err = e.value
    assert (err.code, err.http_status) == (230002, 400) and err.log_id and err.path == MSG_PATH
    assert len(sends(fake)) == 1 and vt.sleeps == []


async def test_html_502_is_transient_and_retried(fake, make):
    fake.fail_next(1, status=502, html=True)
    client = make()
    await client.send_card("oc_1", CARD, uuid="h")
    assert [c.status for c in sends(fake)] == [502, 200]


async def test_network_error_retried(fake, make):
    failures = iter([httpx.ConnectError("boom")])

    def handler(request):
        if request.url.path == MSG_PATH:
            exc = next(failures, None)
            if exc:
                raise exc
        return fake.handle(request)

    client = make(handler)
    await client.send_text("oc_1", "x", uuid="n")
    assert len(fake.messages("oc_1")) == 1


async def test_secrets_never_logged(fake, make, caplog):
    fake.fail_next(2, status=503)
    client = make()
    with caplog.at_level("DEBUG"):
        await client.send_text("oc_1", "x", uuid="l")
    text = caplog.text
    assert "503" in text and "log_id" in text
    issued = [c for c in fake.calls if c.path == TOKEN_PATH]
    assert issued and fake._current_token  # the token that was in every Authorization header
    assert "s3cret" not in text and fake._current_token not in text


# ------------------------------------------------------------------------ F1: 5xx bursts
async def test_f1_gives_up_after_six_attempts(fake, make, vt):
    fake.fail_next(10, status=503)
    client = make()
    with pytest.raises(Transient) as e:
        await client.send_card("oc_1", CARD, uuid="give-up")
    assert e.value.http_status == 503
    attempts = sends(fake)
    assert len(attempts) == 6 and {c.uuid for c in attempts} == {"give-up"}
    assert len(vt.sleeps) == 5
    for k, s in enumerate(vt.sleeps, start=1):
        assert 0.25 <= s < min(8.0, 0.25 * 2 ** k)   # full jitter over [base, base·2^k), cap 8
    assert fake.messages("oc_1") == []


async def test_f1_backoff_gaps_grow(fake, make, vt):
    fake.limits_enabled = False
    client = make(random=random.Random(1).random)
    gaps: dict[int, list[float]] = {k: [] for k in range(1, 6)}
    for i in range(120):
        fake.fail_next(5, status=503)
        before = len(vt.sleeps)
        await client.send_text("oc_1", str(i), uuid=f"g{i}")
        for k, s in enumerate(vt.sleeps[before:], start=1):
            gaps[k].append(s)
    p95 = [sorted(gaps[k])[int(0.95 * len(gaps[k]))] for k in range(1, 6)]
    assert p95 == sorted(p95) and p95[-1] > 4 * p95[0]
    assert min(min(v) for v in gaps.values()) >= 0.25
    assert len(fake.messages("oc_1")) == 120


async def test_f1_burst_every_message_delivered_once(fake, make, vt):
    chats = [f"oc_f1_{i}" for i in range(100)]
    for c in chats:
        fake.add_chat(c)
    fake.fail_rate(0.3, status=503, seed=11)
    client = make(pacer=Pacer(monotonic=vt.monotonic, sleep=vt.sleep))
    await asyncio.gather(*(client.send_card(c, CARD, uuid=f"f1-{c}") for c in chats))
    msgs = fake.messages()
    assert len(msgs) == 100 and len({m.uuid for m in msgs}) == 100
    per_uuid: dict[str, list] = {}
    for c in sends(fake):
        per_uuid.setdefault(c.uuid, []).append(c)
    assert all(len(v) <= 6 for v in per_uuid.values())
    assert any(c.status == 503 for c in sends(fake))
    for calls in per_uuid.values():   # two attempts of one message are never < 0.25 s apart
        times = [c.time for c in calls]
        assert all(b - a >= 0.25 - 1e-6 for a, b in zip(times, times[1:]))


# ------------------------------------------------------------------- F2: throttling
async def test_f2_429_reset_header_honoured(fake, make, vt):
    fake.fail_next(1, status=429, reset=3)
    client = make()
    await client.send_card("oc_1", CARD, uuid="rl")
    first, second = sends(fake)
    assert (first.status, first.code) == (429, 99991400) and second.code == 0
    assert 3.0 <= second.time - first.time <= 3.5
    assert first.uuid == second.uuid and len(fake.messages("oc_1")) == 1


async def test_f2_one_429_costs_the_other_sends_a_second_not_a_minute(fake, make, vt):
    """1,000 paced sends — the minute's whole budget — and one 429 from the per-second window
    on the way: the refused attempt does not count against the pacer's minute and every send
    waits the reset Feishu gave (1 s), so the last goes out ~22 s after the first. Counting
    it made the last send wait for the minute window (61 s)."""
    chats = [f"oc_m{i:04d}" for i in range(1000)]
    for c in chats:
        fake.add_chat(c)
    attempts: list[tuple[float, int]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        """Feishu's gateway in front of the fake: turns the 500th message away (not counted)."""
        if request.url.path == MSG_PATH:
            attempts.append((vt.t, 429 if len(attempts) == 500 else 200))
            if attempts[-1][1] == 429:
                return httpx.Response(429, json={"code": 99991400, "msg": "request trigger frequency limit"},
                                      headers={"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"})
        return fake.handle(request)

    client = make(gateway, pacer=Pacer(monotonic=vt.monotonic, sleep=vt.sleep))
    for c in chats:
        await client.send_text(c, "站会", uuid=f"m-{c}")
    assert [code for _t, code in attempts].count(429) == 1 and len(attempts) == 1001
    assert sum(len(fake.messages(c)) for c in chats) == 1000
    assert {c.code for c in sends(fake)} == {0}   # the fake's own limits never tripped
    assert attempts[-1][0] - attempts[0][0] < 999 / 48 + 1.0 + 0.5 + 0.5   # reset, jitter, a wider spread
    assert 1.0 <= attempts[501][0] - attempts[500][0] <= 1.5 + 1e-6


async def test_f2_chat_frequency_230020_retried(fake, make, vt):
    client = make()   # no pacer: the fake's 5/s per chat trips on the 6th send
    for i in range(7):
        await client.send_text("oc_1", str(i), uuid=f"c{i}")
    codes = [c.code for c in sends(fake)]
    assert codes.count(230020) == 1 and codes[-1] == 0
    assert len(fake.messages("oc_1")) == 7
    assert any(1.0 <= s <= 1.5 for s in vt.sleeps)


async def test_f2_rate_limited_after_max_attempts(fake, make):
    fake.fail_next(6, status=429, reset=1)
    client = make()
    with pytest.raises(RateLimited) as e:
        await client.send_text("oc_1", "x", uuid="rl6")
    assert e.value.code == 99991400 and e.value.retry_after == 1.0
    assert len(sends(fake)) == 6


async def test_f2_paced_fanout_never_throttled(fake, make, vt):
    chats = [f"oc_p{i}" for i in range(120)]
    for c in chats:
        fake.add_chat(c)
    client = make(pacer=Pacer(monotonic=vt.monotonic, sleep=vt.sleep))
    for c in chats:                          # plus a hot chat getting 12 messages in a row
        await client.send_text(c, "hi", uuid=f"p-{c}")
    for i in range(12):
        await client.send_text("oc_1", str(i), uuid=f"hot-{i}")
    assert {c.code for c in sends(fake)} == {0}
    times = [c.time for c in sends(fake)]
    assert min(b - a for a, b in zip(times, times[1:])) >= 1 / 48 - 1e-6


# ---------------------------------------------------------------------- F3: timeouts
async def test_f3_timeout_retried_with_same_uuid_one_message(fake, make):
    fake.delay(5.0)                  # the first response never arrives in time; the send took effect
    client = make(fake.ahandle, timeout=0.05)
    mid = await client.send_card("oc_1", CARD, uuid="f3-once")
    attempts = sends(fake)
    assert len(attempts) == 2 and {c.uuid for c in attempts} == {"f3-once"}
    [m] = fake.messages("oc_1")
    assert m.message_id == mid


async def test_f3_timeout_exhausted_is_transient(fake, make):
    fake.delay(5.0, times=None)
    client = make(fake.ahandle, timeout=0.01, max_attempts=2)
    with pytest.raises(Transient) as e:
        await client.send_text("oc_1", "x", uuid="slow")
    assert "timeout" in e.value.msg
    assert len(fake.messages("oc_1")) == 1   # delivered once, even though we never heard back


def test_the_http_stack_finds_sniffio_instead_of_searching_for_it_on_every_request():
    """httpcore asks `import sniffio` on every request (connection pool and locks); without the
    package each ask is a failed import that walks sys.path (~45 µs, four times a call)."""
    import sys

    from httpcore._synchronization import current_async_library

    async def ask() -> str:
        return current_async_library()

    assert asyncio.run(ask()) == "asyncio"
    assert "sniffio" in sys.modules, "sniffio is a dependency: see pyproject.toml"
