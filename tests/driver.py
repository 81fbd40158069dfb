"""Drives the bot as Feishu would: sealed (encrypted + signed) events and card callbacks in,
through the real webhook; the fake Open API records what each group sees."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

import httpx
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.clock import ManualClock
from bot.security import seal
from bot.settings import Settings
from feishu_fake import FakeFeishu
from feishu_fake import events as ev

APP_ID = "cli_test_app"
APP_SECRET = "test-app-secret-value"
ENCRYPT_KEY = "test-encrypt-key-value"
VERIFICATION_TOKEN = "test-verification-token"
TENANT = "tenant_a"
CHAT = "oc_group_main"
OTHER_CHAT = "oc_group_other"

# Sample people: department heads and members.
LEAD = "ou_lead_market"        # 市场部 陈静 (opens the case)
TECH_HEAD = "ou_head_tech"     # 技术部 李娜
DESIGN_HEAD = "ou_head_design"  # 设计部 王芳
TECH_DEV = "ou_dev_tech"       # 技术部 刘洋
OUTSIDER = "ou_someone_else"
NAMES = {LEAD: "陈静", TECH_HEAD: "李娜", DESIGN_HEAD: "王芳", TECH_DEV: "刘洋", OUTSIDER: "赵强"}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values = dict(feishu_app_id=APP_ID, feishu_app_secret=APP_SECRET, feishu_encrypt_key=ENCRYPT_KEY,
                  feishu_verification_token=VERIFICATION_TOKEN, database_url=database_url)
    values.update(overrides)
    return Settings(_env_file=None, **values)


class FeishuWorld:
    def __init__(self, database_url: str, clock: ManualClock, *, fake: FakeFeishu | None = None,
                 **settings: Any) -> None:
        self.clock = clock
        self.settings = make_settings(database_url, **settings)
        if fake is None:  # pass the previous world's fake to model a restart of the bot only
            fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, clock=clock, tenant_key=TENANT)
            for chat in (CHAT, OTHER_CHAT):
                fake.add_chat(chat, members=list(NAMES.items()))
            for open_id, name in NAMES.items():
                fake.add_user(open_id, name)
        self.fake = fake
        self.app = create_app(self.settings, clock=clock, transport=httpx.MockTransport(self.fake.handle),
                              background=False, pacer=None)
        self.state = self.app.state.bot
        self.state.dispatcher.bot_open_id = self.fake.bot_open_id
        self.http = TestClient(self.app)
        self.http.__enter__()

    def close(self) -> None:
        self.http.__exit__(None, None, None)

    # ------------------------------------------------------------ inbound
    def post(self, payload: dict[str, Any], *, timestamp: int | None = None) -> httpx.Response:
        ts = timestamp if timestamp is not None else int(self.clock.now().timestamp())
        body, headers = seal(payload, encrypt_key=ENCRYPT_KEY, timestamp=ts)
        return self.http.post("/feishu/events", content=body, headers=headers)

    def _common(self) -> dict[str, Any]:
        return {"app_id": APP_ID, "tenant_key": TENANT, "token": VERIFICATION_TOKEN,
                "create_ms": int(self.clock.now().timestamp() * 1000)}

    def say(self, user: str, text: str, *, chat: str = CHAT, mentions: list[dict] | None = None,
            **kw: Any) -> httpx.Response:
        self.fake.post_user_message(chat, user, text)
        resp = self.post(ev.message_event(chat_id=chat, sender_open_id=user, text=text, mentions=mentions,
                                          **self._common(), **kw))
        self.drain()
        return resp

    def add_bot(self, *, chat: str = CHAT, by: str = LEAD) -> httpx.Response:
        resp = self.post(ev.bot_added_event(chat_id=chat, operator_open_id=by, chat_name="新品推广协作群",
                                            **self._common()))
        self.drain()
        return resp

    def click(self, user: str, message_id: str, *, value: Any = None, form: dict | None = None,
              name: str | None = None, chat: str = CHAT, tag: str = "button") -> dict[str, Any]:
        """A card callback; returns Feishu's view of our answer (toast / card)."""
        payload = ev.card_action_event(chat_id=chat, message_id=message_id, operator_open_id=user,
                                       value=value, form_value=form, name=name, tag=tag, **self._common())
        resp = self.post(payload)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        if "card" in answer:  # Feishu replaces the clicked card with the returned one
            self.fake.apply_callback_card(message_id, answer["card"]["data"])
        self.drain()
        return answer

    def press(self, user: str, message_id: str, label: str, **kw: Any) -> dict[str, Any]:
        """Click the button labelled `label` on a message's current card — or, when that card
        has none, on the newest private card `user` sees (the form a button opened for them)."""
        card = self.card(message_id) if self._exists(message_id) else {}
        if not has_button(card, label):
            message_id = self.private_with(user, lambda c: has_button(c, label))
        return self.click(user, message_id, value=find_button(self.card(message_id), label), **kw)

    def submit(self, user: str, message_id: str, form: dict[str, Any], *, form_name: str | None = None
               ) -> dict[str, Any]:
        """Submit a form, as Feishu does (button name + form_value): on a private form `user` has
        open (a form opened from a shared card is shown to that person only) or on the message's
        current card — of those whose fields take `form`, the one with the fewest fields left
        empty (newest private form first on a tie)."""
        candidates = [m["message_id"] for m in reversed(self.private_cards(user))]
        candidates += [message_id] if self._exists(message_id) else []
        fitting = [(len(form_fields(self.card(mid), form_name) - set(form)), i, mid)
                   for i, mid in enumerate(candidates) if has_submit(self.card(mid), form_name)
                   and set(form) <= form_fields(self.card(mid), form_name)]
        message_id = (min(fitting)[2] if fitting else
                      ([mid for mid in candidates if has_submit(self.card(mid), form_name)] or [message_id])[0])
        return self.click(user, message_id, form=form, name=find_submit(self.card(message_id), form_name))

    def private_cards(self, user: str, chat: str = CHAT) -> list[dict[str, Any]]:
        """The private cards (仅对你可见) `user` sees in the chat now, oldest first."""
        return [m for m in self.fake.visible(chat, viewer=user) if m["visible_to"] == user]

    def form_of(self, user: str, chat: str = CHAT) -> dict[str, Any]:
        """The card of the newest form `user` has open (a private card with a form)."""
        return self.card(self.private_with(user, lambda c: has_submit(c), chat))

    def private_with(self, user: str, test: Any, chat: str = CHAT) -> str:
        for m in reversed(self.private_cards(user, chat)):
            if test(m["content"]):
                return m["message_id"]
        raise AssertionError(f"{user} has no private card that fits; private cards: "
                             f"{[card_title(m['content']) for m in self.private_cards(user, chat)]}")

    def _exists(self, message_id: str) -> bool:
        try:
            self.fake.message(message_id)
        except KeyError:
            return False
        return True

    # ------------------------------------------------------------ background work
    def drain(self) -> None:
        """Finish work done after the answer and deliver the outbox (no sleeping)."""
        state = self.state

        async def _drain() -> None:
            import asyncio

            while state.tasks:
                await asyncio.gather(*list(state.tasks), return_exceptions=True)
            await state.sender.run_once()

        self.http.portal.call(_drain)

    # ------------------------------------------------------------ what the group sees
    def messages(self, chat: str = CHAT) -> list[dict[str, Any]]:
        return [m for m in self.fake.visible(chat) if m["sender"] == "bot"]

    def cards(self, chat: str = CHAT) -> list[dict[str, Any]]:
        return [m for m in self.messages(chat) if m["msg_type"] == "interactive"]

    def announced(self, chat: str = CHAT) -> list[str]:
        """The step changes the group was told of, in order: the line at the top of each case
        card the bot sent (a step change is that one card; older case cards later shrink)."""
        lines = []
        for c in self.fake.calls_to("/open-apis/im/v1/messages", "POST"):
            body = c.json if isinstance(c.json, dict) else {}
            if c.code != 0 or body.get("receive_id") != chat or body.get("msg_type") != "interactive":
                continue
            text = card_text(json.loads(body["content"]))
            lines += [step_entered(n) for n in range(2, 7) if step_entered(n) in text]
        return lines

    def texts(self, chat: str = CHAT) -> list[str]:
        return [m["content"]["text"] for m in self.messages(chat) if m["msg_type"] == "text"]

    def card(self, message_id: str) -> dict[str, Any]:
        return self.fake.message(message_id).content

    def last_card(self, chat: str = CHAT, title_contains: str = "") -> dict[str, Any]:
        for m in reversed(self.cards(chat)):
            if title_contains in card_title(m["content"]):
                return m
        for m in reversed(self.fake.messages(chat)):  # or a form shown to one person only
            if m.visible_to and m.msg_type == "interactive" and title_contains in card_title(m.content):
                return {"message_id": m.message_id, "content": m.content, "visible_to": m.visible_to}
        raise AssertionError(f"no card titled {title_contains!r}; titles: "
                             f"{[card_title(m['content']) for m in self.cards(chat)]}")


# ---------------------------------------------------------------- reading texts and toasts
def fits(template: str, text: str) -> bool:
    """Whether `text` is the bot.texts format string `template` with every field filled in, e.g.
    `fits(texts.STANDUP_NUDGE, t)`: a toast or reply checked against its constant, not a copy of it."""
    parts = re.split(r"\{[^{}]*\}", template)
    return re.fullmatch("(.+?)".join(re.escape(p) for p in parts), text, re.S) is not None


def step_entered(step: int) -> str:
    """The group's line when a case enters `step` (the previous step's output is done)."""
    from bot import texts

    return texts.STEP_ENTERED.format(done=texts.OUTPUTS.get(step - 1, ""), step=step, name=texts.STEP_NAMES[step])


# ---------------------------------------------------------------- card reading helpers
def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def card_title(card: dict[str, Any]) -> str:
    return card.get("header", {}).get("title", {}).get("content", "")


def card_text(card: dict[str, Any]) -> str:
    """All human-readable text of a card, for assertions."""
    parts = [card_title(card)]
    for node in walk(card.get("body", {})):
        if node.get("tag") in ("markdown", "plain_text", "lark_md") and isinstance(node.get("content"), str):
            parts.append(node["content"])
        if node.get("tag") == "table":
            parts.append(json.dumps(node.get("rows", []), ensure_ascii=False))
    return "\n".join(parts)


def find_button(card: dict[str, Any], label: str) -> dict[str, Any]:
    for node in walk(card.get("body", {})):
        if node.get("tag") == "button" and node.get("text", {}).get("content") == label:
            for b in node.get("behaviors", []):
                if b.get("type") == "callback":
                    return b["value"]
    raise AssertionError(f"no button {label!r} in card {card_title(card)!r}")


def has_button(card: dict[str, Any], label: str) -> bool:
    try:
        find_button(card, label)
    except AssertionError:
        return False
    return True


def has_submit(card: dict[str, Any], form_name: str | None = None) -> bool:
    try:
        find_submit(card, form_name)
    except AssertionError:
        return False
    return True


def form_fields(card: dict[str, Any], form_name: str | None = None) -> set[str]:
    """The input names of the card's form(s) (`form_name`: that form only)."""
    names: set[str] = set()
    for node in walk(card.get("body", {})):
        if node.get("tag") == "form" and (form_name is None or node.get("name") == form_name):
            names |= {c["name"] for c in walk(node.get("elements", [])) if c.get("name") and c.get("tag") != "button"}
    return names


def find_submit(card: dict[str, Any], form_name: str | None = None) -> str:
    for node in walk(card.get("body", {})):
        if node.get("tag") == "form" and (form_name is None or node.get("name") == form_name):
            for child in walk(node.get("elements", [])):
                if child.get("tag") == "button" and child.get("form_action_type") == "submit":
                    return child["name"]
    raise AssertionError(f"no form {form_name or ''} with a submit button in {card_title(card)!r}")
