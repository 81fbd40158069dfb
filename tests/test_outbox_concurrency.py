"""The sender never waits for one call: groups are served concurrently, one chain per group, so
a hanging Open API call (F3) or a group whose sends keep failing (F1, F2) holds up only its own
group; a group's messages keep their order; and when the pacer is the bottleneck, replies to
people go before reminders and hints last."""
from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import httpx
import pytest
from sqlalchemy import select

from bot import outbox
from bot.feishu import FeishuClient
from bot.models import Outbox
from bot.outbox import OutboxSender, SendText
from bot.pacer import Pacer
from feishu_fake import events as ev
from tests.driver import APP_ID, APP_SECRET, LEAD, NAMES, TECH_HEAD, TENANT, card_text

MSG_PATH = "/open-apis/im/v1/messages"
_CHAT_IN_PATH = re.compile(r"/chats/([^/]+)/")


# ---------------------------------------------------------------- a gate in front of the fake
class Gate:
    """Async transport in front of the fake Open API: holds the calls a rule picks until
    released, adds optional latency, and counts calls in flight per chat."""

    def __init__(self, fake, latency: Callable[[], float] = lambda: 0.0) -> None:
        self.fake, self.latency = fake, latency
        self.rule: Callable[[str, str], bool] = lambda _chat, _path: False
        self.answer: Callable[[str, str], httpx.Response | None] = lambda _chat, _path: None
        self.opened = threading.Event()
        self.held: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.most_per_chat: dict[str, int] = {}
        self.most_overall = 0

    def hold(self, rule: Callable[[str, str], bool]) -> None:
        self.rule = rule

    def release(self) -> None:
        self.opened.set()

    def waiting(self, chat: str) -> bool:
        return self.held.get(chat, 0) > 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        chat = _chat_of(request)
        if not chat:
            return await self.fake.ahandle(request)
        self.in_flight[chat] = self.in_flight.get(chat, 0) + 1
        self.most_per_chat[chat] = max(self.most_per_chat.get(chat, 0), self.in_flight[chat])
        self.most_overall = max(self.most_overall, sum(self.in_flight.values()))
        try:
            if self.rule(chat, request.url.path):
                self.held[chat] = self.held.get(chat, 0) + 1
                try:
                    while not self.opened.is_set():
                        await asyncio.sleep(0.01)
                finally:
                    self.held[chat] -= 1
            await asyncio.sleep(self.latency())
            failed = self.answer(chat, request.url.path)
            return failed if failed is not None else await self.fake.ahandle(request)
        finally:
            self.in_flight[chat] -= 1


def _chat_of(request: httpx.Request) -> str:
    match = _CHAT_IN_PATH.search(request.url.path)
    if match:
        return match.group(1)
    if request.content:
        body = json.loads(request.content)
        if isinstance(body, dict):
            return body.get("receive_id", "")
    return ""


def sender_through(world, gate: Gate, *, pacer: Pacer | None = None, me: str = "worker-a",
                   **kw) -> OutboxSender:
    client = FeishuClient(app_id=APP_ID, app_secret=APP_SECRET, transport=httpx.MockTransport(gate.handle),
                          timeout=60, pacer=pacer)
    return OutboxSender(world.state.factory, client, world.clock, me=me, renderers=world.state.sender.renderers,
                        context=world.state.sender.context, **kw)


@contextmanager
def running(world, sender: OutboxSender, idle_seconds: float = 0.05) -> Iterator[None]:
    """The sender's claim loop in the app's event loop, kicked by the dispatcher as in serve."""
    async def start():
        return asyncio.ensure_future(sender.run_forever(idle_seconds=idle_seconds))

    task = world.http.portal.call(start)
    world.state.dispatcher.on_outbox = sender.kick
    try:
        yield
    finally:
        async def stop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sender.client.aclose()

        world.http.portal.call(stop)


def wait_until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def event_common(world) -> dict:
    return {"app_id": APP_ID, "tenant_key": TENANT, "token": "test-verification-token",
            "create_ms": int(world.clock.now().timestamp() * 1000)}


def say(world, chat: str, user: str, text: str, **kw) -> None:
    """A message event through the real webhook, handled after the answer (no draining)."""
    assert world.post(ev.message_event(chat_id=chat, sender_open_id=user, text=text, **event_common(world),
                                       **kw)).status_code == 200


def help_cards(world, chat: str) -> list[dict]:
    return [m for m in world.cards(chat) if "使用说明" in card_text(m["content"])]


def add_chats(world, chats: list[str]) -> None:
    for chat in chats:
        world.fake.add_chat(chat, members=list(NAMES.items()))


# ---------------------------------------------------------------- one slow group
SLOW = "oc_slow_group"
QUICK = [f"oc_quick_{i}" for i in range(5)]


def test_a_hanging_call_in_one_group_does_not_hold_up_replies_in_five_others(world):
    add_chats(world, [SLOW, *QUICK])
    gate = Gate(world.fake)
    gate.hold(lambda chat, path: chat == SLOW and path.endswith("/members"))  # the member list hangs
    sender = sender_through(world, gate)
    with running(world, sender):
        assert world.post(ev.bot_added_event(chat_id=SLOW, operator_open_id=LEAD, chat_name="慢群",
                                             **event_common(world))).status_code == 200
        wait_until(lambda: gate.waiting(SLOW), "the slow group's member list call is in flight")
        for chat in QUICK:
            say(world, chat, LEAD, "/帮助")
        wait_until(lambda: all(help_cards(world, chat) for chat in QUICK), "five help cards", timeout=5)
        assert gate.waiting(SLOW), "the replies went out while the slow call was still hanging"
        with world.state.factory() as s:
            assert s.scalar(select(Outbox.status).where(Outbox.chat_id == SLOW, Outbox.status == "sending"))
        gate.release()
        wait_until(lambda: _statuses(world, SLOW) == {"sent"}, "the slow group's rows finish once released")
    assert all(len(help_cards(world, chat)) == 1 for chat in QUICK)
    assert len(world.cards(SLOW)) == 1  # the welcome card, before the member list was read


@pytest.mark.parametrize("failure", ["5xx", "230020"])
def test_a_group_whose_sends_keep_failing_does_not_hold_up_the_others(world, failure):
    """Every send to one group fails (a 503, or Feishu's per-group throttle 230020 with a long
    reset): its retries wait in its own chain — and a 230020 pauses that group's pacing, not the
    app's — so replies in five other groups go out at once (F1, F2)."""
    add_chats(world, [SLOW, *QUICK])
    gate = Gate(world.fake)
    failures = []

    def fail(chat: str, path: str) -> httpx.Response | None:
        if chat != SLOW or not path.endswith("/messages"):
            return None
        failures.append(time.monotonic())
        if failure == "5xx":
            return httpx.Response(503, json={"code": -1, "msg": "unavailable"})
        return httpx.Response(400, json={"code": 230020, "msg": "frequency limit"},
                              headers={"x-ogw-ratelimit-reset": "8"})

    gate.answer = fail
    sender = sender_through(world, gate, pacer=Pacer(rate=48.0))
    with world.state.factory() as s, s.begin():
        outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=SLOW, key="doomed", now=world.clock.now(),
                           ops=[SendText("发不出去")])
    with running(world, sender):
        wait_until(lambda: len(failures) >= 1, "the failing group's first send failed")
        started = time.monotonic()
        for chat in QUICK:
            say(world, chat, LEAD, "/帮助")
        wait_until(lambda: all(help_cards(world, chat) for chat in QUICK), "five help cards", timeout=5)
        took = time.monotonic() - started
        retrying = _statuses(world, SLOW) == {"sending"}
    assert retrying, "the failing group was still retrying when the others were answered"
    assert took < 2.0, took
    assert all(len(help_cards(world, chat)) == 1 for chat in QUICK)


def test_one_429_in_a_fan_out_holds_the_sends_a_second_not_a_minute(world):
    """A fan-out that uses the pacer's whole minute (here 20 a minute) meets one 429 from
    Feishu's per-second window: the sender retries that send after the reset (1 s) and the
    others wait as long — the refused attempt does not use the minute, so no send waits for
    the minute window to roll (61 s)."""
    chats = [f"oc_min_{i:02d}" for i in range(20)]
    add_chats(world, chats)
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key="standup",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("今日站会")))
    gate = Gate(world.fake)
    refused: list[float] = []

    def throttle_once(chat: str, path: str) -> httpx.Response | None:
        if refused or chat != chats[10] or not path.endswith("/messages"):
            return None
        refused.append(time.monotonic())
        return httpx.Response(429, json={"code": 99991400, "msg": "request trigger frequency limit"},
                              headers={"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"})

    gate.answer = throttle_once
    sender = sender_through(world, gate, pacer=Pacer(rate=48.0, per_minute=20))
    started = time.monotonic()
    with running(world, sender):
        wait_until(lambda: len(_sent_to(world)) == len(chats), "every group's standup", timeout=20)
    took = time.monotonic() - started
    assert refused and sorted(_sent_to(world)) == sorted(chats)
    assert 1.0 <= took < 15.0, took


def _statuses(world, chat: str) -> set[str]:
    with world.state.factory() as s:
        return set(s.scalars(select(Outbox.status).where(Outbox.chat_id == chat)))


# ---------------------------------------------------------------- order within a group
def test_each_groups_messages_keep_their_order_while_groups_run_concurrently(world):
    chats = [f"oc_order_{i:02d}" for i in range(12)]
    add_chats(world, chats)
    world.fake.limits_enabled = False  # its clock stands still: 120 sends would all fall in one "second"
    rng = random.Random(5)
    gate = Gate(world.fake, latency=lambda: rng.uniform(0, 0.015))
    sender = sender_through(world, gate, concurrency=4)
    _enqueue_texts(world, chats, "first", range(1, 7))

    async def run_while_more_arrive():
        first = asyncio.ensure_future(sender.run_once(batch=5))
        await asyncio.sleep(0.03)  # a second event per group while the first ones are in flight
        await asyncio.to_thread(_enqueue_texts, world, chats, "second", range(7, 11))
        sender.kick()
        done = await first
        return done + await sender.run_once(batch=5)

    deliveries = world.http.portal.call(run_while_more_arrive)
    assert sorted(d.status for d in deliveries) == ["sent"] * (12 * 10)
    for chat in chats:
        assert world.texts(chat) == [str(n) for n in range(1, 11)], chat
    assert max(gate.most_per_chat.values()) == 1, "never two sends of one group at once"
    assert 1 < gate.most_overall <= 4, "groups were served concurrently, within the bound"


def _enqueue_texts(world, chats: list[str], key: str, numbers) -> None:
    with world.state.factory() as s, s.begin():
        for chat in chats:
            outbox.enqueue_ops(s, tenant_key=TENANT, chat_id=chat, key=f"{key}-{chat}", now=world.clock.now(),
                               ops=[SendText(str(n)) for n in numbers])


# ---------------------------------------------------------------- priority under a slow pacer
def test_a_reply_overtakes_a_reminder_fan_out_and_the_hint_waits_for_it(world):
    fan = [f"oc_fan_{i:02d}" for i in range(40)]
    reply_chat, hint_chat = "oc_asks_for_help", "oc_just_mentions"
    add_chats(world, [*fan, reply_chat, hint_chat])
    with world.state.factory() as s, s.begin():
        for chat in fan:  # a reminder per group, due now, written before anyone spoke
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key="standup",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("今日站会")))
    sender = sender_through(world, Gate(world.fake), pacer=Pacer(rate=20.0))  # the quota is the bottleneck
    with running(world, sender):
        wait_until(lambda: len(_sent_to(world)) >= 5, "the fan-out is under way")
        sent_before = len(_sent_to(world))
        bot = world.fake.bot_open_id
        say(world, hint_chat, TECH_HEAD, "@_user_1 在吗", mentions=[{"key": "@_user_1", "open_id": bot, "name": "b"}])
        say(world, reply_chat, LEAD, "/帮助")
        wait_until(lambda: len(_sent_to(world)) == len(fan) + 2, "everything sent", timeout=20)
    order = _sent_to(world)
    assert order.index(reply_chat) <= sent_before + 5, (sent_before, order)
    assert order.index(reply_chat) < len(fan) - 10, "the reply did not queue behind the reminders"
    assert order[-1] == hint_chat, "the hint goes after every reminder"


def _sent_to(world) -> list[str]:
    return [c.json["receive_id"] for c in world.fake.calls_to(MSG_PATH, "POST") if c.status == 200]


def test_claims_come_most_urgent_first_and_skip_busy_groups(world):
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        for fire_key, chat, priority in [("hint", "oc_a", outbox.Priority.HINT), ("bulk", "oc_b", outbox.Priority.BULK),
                                         ("reply", "oc_c", outbox.Priority.REPLY),
                                         ("later", "oc_busy", outbox.Priority.REPLY)]:
            outbox.enqueue(s, tenant_key=TENANT, chat_id=chat, kind="immediate", fire_key=fire_key, due_at=now,
                           payload=outbox.dump_op(SendText(fire_key)), priority=priority)
        outbox.enqueue(s, tenant_key=TENANT, chat_id="oc_busy", kind="immediate", fire_key="in-flight",
                       due_at=now, payload=outbox.dump_op(SendText("x")))
    first = outbox.claim_due(world.state.factory, me="other-worker", now=now, batch=1)
    assert [c.chat_id for c in first] == ["oc_c"]  # a reply first
    # another worker is sending in oc_busy: its next row waits; the rest by priority
    with world.state.factory() as s, s.begin():
        row = s.scalar(select(Outbox).where(Outbox.fire_key == "in-flight"))
        row.status, row.claimed_by, row.claimed_at = "sending", "other-worker", now
    rest = outbox.claim_due(world.state.factory, me="me", now=now)
    assert [c.chat_id for c in rest] == ["oc_b", "oc_a"]
    with world.state.factory() as s, s.begin():
        for row in s.scalars(select(Outbox).where(Outbox.chat_id != "oc_busy")):  # delivered
            row.status = "sent"
    # once that worker's lease has run out, the group is free again: both its rows, in order
    later = outbox.claim_due(world.state.factory, me="me", now=now + outbox.LEASE + outbox.LEASE)
    with world.state.factory() as s:
        keys = [s.get(Outbox, c.id).fire_key for c in later]
    assert keys == ["later", "in-flight"]  # the reply first, then the one taken over
