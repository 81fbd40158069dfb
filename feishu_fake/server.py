"""A stateful fake of the Feishu Open API, faithful to the wire contract the bot relies on.

Why stateful: the bot's guarantees (one message per uuid, cards patched in place, retries that
don't double-post) can only be checked against something that remembers what the group sees.
The same object serves tests (`httpx.MockTransport(fake.handle)` / `fake.ahandle`, or a respx
`side_effect`) and the local sandbox (`fake.asgi_app()` on a loopback port).

Contract kept: paths and query params, `{"code":0,"msg":"success","data":{...}}` envelopes
(token and bot-info answer without `data`, as Feishu does), `X-Tt-Logid` on every response, HTTP
429 + 99991400 + `x-ogw-ratelimit-*` for the 50/s and 1000/min per-app sliding windows (per API),
HTTP 400 + 230020 for > 5/s per chat, uuid dedupe for 1 hour, 30 KB card limit (230025), bots
omitted from member lists, delayed-update tokens valid 30 min / 2 uses. Error codes that the
public docs don't pin down are marked "approx." below; the client only relies on the
rate-limit, token and 5xx behaviour, which are documented.

Accounting (an assumption until measured, see design §7): every request counts against the
windows except ones rejected with 429; per-chat 230020 rejections don't count for the chat.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import math
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.clock import Clock, SystemClock
from feishu_fake.bitable import BITABLE_PER_MINUTE, BITABLE_PER_SECOND, BITABLE_ROUTES, BitableMixin
from feishu_fake.tasks import PER_MINUTE, TASK_ROUTES, TasksMixin

__all__ = ["FakeFeishu", "Message", "Call"]

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
TOKEN_TTL = 7200
TOKEN_REISSUE_BELOW = 1800      # < 30 min left -> a new token is issued (the old stays valid)
UUID_TTL = 3600
CARD_TOKEN_TTL = 1800
CARD_TOKEN_USES = 2
CARD_MAX = 30 * 1024
TEXT_MAX = 150 * 1024
PATCH_WINDOW = timedelta(days=14)
APP_PER_SECOND = 50
APP_PER_MINUTE = 1000
CHAT_PER_SECOND = 5
EPHEMERAL_PER_SECOND = 40       # ephemeral/v1/send, per chat
MSG_TYPES = frozenset({"text", "post", "image", "file", "audio", "media", "sticker", "interactive",
                       "share_chat", "share_user", "system"})

# business codes
OK = 0
RATE_LIMITED = 99991400
MISSING_TOKEN = 99991661
INVALID_TOKEN = 99991663
FIELD_VALIDATION = 99992402
INVALID_PARAM = 230001
BOT_NOT_IN_CHAT = 230002
CHAT_RATE_LIMITED = 230020
CONTENT_TOO_LONG = 230025
NO_PERMISSION = 230027          # approx.: patching a message the bot didn't send
CANNOT_OPERATE = 230054         # approx.: patching a non-card or > 14-day-old message
CHAT_NOT_FOUND = 232006         # approx.
OPERATOR_NOT_IN_CHAT = 232011   # approx.
NO_USER_AUTHORITY = 41050
CARD_TOKEN_INVALID = 200830     # approx.: delayed-update token unknown/expired/used up
APP_ID_INVALID = 10003
APP_SECRET_INVALID = 10014
EPHEMERAL_DELETED = 18051       # ephemeral/v1/delete: 消息已删除
USER_NOT_IN_CHAT = 232024       # approx.: a private card for someone outside the group
TOPIC_CHAT_UNSUPPORTED = 232033  # approx.: ephemeral/v1/send does not serve topic groups (话题群)
BOT_NO_AVAILABILITY = 230013    # Bot has NO availability to this user (outside the app's range)
INTERNAL_ERROR = 2200


@dataclass
class Message:
    message_id: str
    chat_id: str
    msg_type: str
    content: dict            # parsed JSON content (card JSON for interactive)
    uuid: str | None
    sender: str              # "bot" or a user's open_id
    create_time: datetime
    update_time: datetime
    pinned: bool = False
    parent_id: str | None = None
    root_id: str | None = None
    updated: bool = False
    visible_to: str | None = None   # a private card (ephemeral/v1/send): only this open_id sees it


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict
    json: Any
    uuid: str | None
    status: int
    code: int | None
    time: float              # fake clock, epoch seconds


@dataclass
class _Chat:
    chat_id: str
    tenant_key: str
    members: dict[str, str] = field(default_factory=dict)   # open_id -> name (humans only)
    bot_in_chat: bool = True
    messages: list[str] = field(default_factory=list)       # message ids in order
    topic: bool = False                                      # a topic group (话题群)
    p2p_with: str | None = None                              # a 1:1 chat of the bot with this open_id


@dataclass
class _Fault:
    status: int
    code: int | None
    reset: int | None
    html: bool


class _Reply(Exception):
    """Short-circuits request processing with a finished response."""

    def __init__(self, status: int, body: Any, headers: dict | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _err(status: int, code: int, msg: str) -> _Reply:
    return _Reply(status, {"code": code, "msg": msg})


class FakeFeishu(TasksMixin, BitableMixin):
    _Reply = _Reply

    def __init__(self, *, app_id: str = "cli_fake", app_secret: str = "fake-secret",
                 clock: Clock | None = None, bot_open_id: str = "ou_bot",
                 app_name: str = "Fake Bot", tenant_key: str = "tenant_fake",
                 limits_enabled: bool = True) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.clock: Clock = clock or SystemClock()
        self.bot_open_id = bot_open_id
        self.app_name = app_name
        self.tenant_key = tenant_key
        self.limits_enabled = limits_enabled
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._chats: dict[str, _Chat] = {}
        self._users: dict[str, dict] = {}
        self._messages: dict[str, Message] = {}
        self._deleted: set[str] = set()                    # private cards removed by ephemeral/v1/delete
        self._unreachable: set[str] = set()                # people the app may not message 1:1
        self._uuids: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, float] = {}               # token -> expires (epoch s)
        self._current_token: str | None = None
        self._card_tokens: dict[str, dict] = {}
        self._windows: dict[str, deque[float]] = {}
        self._chat_windows: dict[str, deque[float]] = {}
        self._faults: deque[_Fault] = deque()
        self._fail_p = 0.0
        self._fail_fault: _Fault | None = None
        self._fail_rng = random.Random()
        self._delays: deque[float] = deque()
        self._lost, self._lost_status, self._lost_at = 0, 504, ("", "")
        self._delay_forever: float = 0.0
        self._init_tasks()
        self._init_bitable()

    # ---------------------------------------------------------------------------- state setup
    def add_chat(self, chat_id: str, members: list[tuple[str, str]] = (), *,
                 tenant_key: str | None = None, bot_in_chat: bool = True, topic: bool = False) -> None:
        with self._lock:
            chat = self._chats.setdefault(chat_id, _Chat(chat_id, tenant_key or self.tenant_key))
            chat.bot_in_chat, chat.topic = bot_in_chat, topic
            for open_id, name in members:
                chat.members[open_id] = name
                self._users.setdefault(open_id, {"open_id": open_id, "name": name})

    def add_member(self, chat_id: str, open_id: str, name: str) -> None:
        with self._lock:
            self._chats[chat_id].members[open_id] = name
            self._users.setdefault(open_id, {"open_id": open_id, "name": name})

    def make_unreachable(self, open_id: str) -> None:
        """The person is outside the app's availability range: the bot cannot message them 1:1."""
        with self._lock:
            self._unreachable.add(open_id)

    def p2p_chat_id(self, open_id: str) -> str:
        """The id of the bot's 1:1 chat with `open_id` (it exists once the bot has written there)."""
        return f"oc_p2p_{open_id}"

    def remove_bot(self, chat_id: str) -> None:
        with self._lock:
            self._chats[chat_id].bot_in_chat = False

    def add_user(self, open_id: str, name: str, **fields: Any) -> None:
        with self._lock:
            self._users[open_id] = {"open_id": open_id, "name": name, **fields}

    def post_user_message(self, chat_id: str, open_id: str, text: str) -> str:
        """A group member's text message (what the bot would receive as an event)."""
        with self._lock:
            return self._store(self._chats[chat_id], "text", {"text": text}, None, sender=open_id).message_id

    def apply_callback_card(self, message_id: str, card: dict) -> None:
        """What Feishu does with the card in a callback's answer: the clicked message shows it
        (no API call is involved; the card travels in the HTTP answer)."""
        with self._lock:
            msg = self._messages[message_id]
            msg.content = copy.deepcopy(card)
            msg.update_time = self.clock.now()
            msg.updated = True

    def issue_card_token(self, message_id: str) -> str:
        """The `c-…` token a card callback carries for this card (30 min, 2 uses)."""
        with self._lock:
            if message_id not in self._messages:
                raise KeyError(message_id)
            token = f"c-{next(self._ids):08x}{random.getrandbits(64):016x}"
            self._card_tokens[token] = {"message_id": message_id, "uses": CARD_TOKEN_USES,
                                        "expires": self._now() + CARD_TOKEN_TTL}
            return token

    def revoke_tokens(self) -> None:
        """Invalidate every tenant token issued so far (e.g. secret rotated)."""
        with self._lock:
            self._tokens.clear()
            self._current_token = None

    # -------------------------------------------------------------------------------- faults
    def fail_next(self, n: int = 1, status: int = 503, *, code: int | None = None,
                  reset: int | None = None, html: bool = False) -> None:
        """The next n API requests (not token fetches) fail before reaching the business logic.
        status=429 answers like the gateway throttle (99991400, reset header, default 1 s);
        a 4xx with `code` answers that business code (e.g. 400/230020); html=True sends an
        HTML error page like a proxy does."""
        with self._lock:
            for _ in range(n):
                self._faults.append(_Fault(status, code, reset, html))

    def lose_next(self, path: str, n: int = 1, status: int = 504, method: str = "POST") -> None:
        """The next n `method path` requests take effect, but their answers are lost: the client
        gets a gateway `status` page instead (what a timeout after Feishu made the thing looks like)."""
        with self._lock:
            self._lost, self._lost_status, self._lost_at = self._lost + n, status, (method, path)

    def fail_rate(self, p: float, status: int = 503, *, seed: int | None = None,
                  code: int | None = None, html: bool = False) -> None:
        """Each API request fails with probability p (p=0 turns it off)."""
        with self._lock:
            self._fail_p = p
            self._fail_fault = _Fault(status, code, None, html)
            self._fail_rng = random.Random(seed)

    def delay(self, seconds: float, times: int | None = 1) -> None:
        """Hold the next `times` API responses (None: all, until delay(0)) for `seconds` AFTER the
        request took effect — the lost-response case a client timeout must survive. Real
        async sleep in `ahandle`; `handle` blocks the calling thread."""
        with self._lock:
            if times is None:
                self._delay_forever = seconds
            else:
                self._delays.extend([seconds] * times)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._fail_p = 0.0
            self._delays.clear()
            self._lost = 0
            self._delay_forever = 0.0

    # ------------------------------------------------------------------------------- queries
    def message(self, message_id: str) -> Message:
        with self._lock:
            return copy.deepcopy(self._messages[message_id])

    def messages_per_chat(self) -> dict[str, int]:
        """How many messages each chat has, without copying them (cheap enough to poll while
        a fan-out runs: copying every card made the fake stall for a tenth of a second)."""
        with self._lock:
            return {chat_id: len(chat.messages) for chat_id, chat in self._chats.items() if chat.messages}

    def messages(self, chat_id: str | None = None) -> list[Message]:
        with self._lock:
            ids = self._chats[chat_id].messages if chat_id else list(self._messages)
            return [copy.deepcopy(self._messages[i]) for i in ids]

    def visible(self, chat_id: str, viewer: str | None = None) -> list[dict]:
        """What the group sees now: every message in order with its current content. Private
        cards are left out, except those for `viewer` (what that one person sees)."""
        with self._lock:
            return [{"message_id": m.message_id, "sender": m.sender, "msg_type": m.msg_type,
                     "content": copy.deepcopy(m.content), "pinned": m.pinned,
                     "parent_id": m.parent_id, "updated": m.updated, "visible_to": m.visible_to}
                    for m in (self._messages[i] for i in self._chats[chat_id].messages)
                    if m.visible_to is None or m.visible_to == viewer]

    def private(self, chat_id: str, open_id: str) -> list[Message]:
        """The private cards `open_id` sees in the chat now, oldest first."""
        with self._lock:
            return [copy.deepcopy(m) for m in (self._messages[i] for i in self._chats[chat_id].messages)
                    if m.visible_to == open_id]

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(path_prefix)
                    and (method is None or c.method == method)]

    # -------------------------------------------------------------------------- entry points
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Sync handler for `httpx.MockTransport` (works for AsyncClient too) or respx."""
        response, delay = self._process(request)
        if delay > 0:
            time.sleep(delay)
        return response

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        """Async handler: `fake.delay()` sleeps without blocking the loop (client timeouts)."""
        base = self.written_base(request)
        if base is not None:   # hold_writes(): the write is in flight a while before it lands
            await self.held_write(base, request.url.path)
        response, delay = self._process(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return response

    def asgi_app(self):
        """A Starlette app serving this fake (for the sandbox on 127.0.0.1)."""
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            req = httpx.Request(request.method, str(request.url), headers=request.headers.raw,
                                content=body)
            resp = await self.ahandle(req)
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
            return Response(resp.content, status_code=resp.status_code, headers=headers)

        return Starlette(routes=[Route("/{path:path}", endpoint,
                                       methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])

    # ------------------------------------------------------------------------------ internals
    _ROUTES: list[tuple[str, re.Pattern, str]] = [
        ("POST", re.compile(r"^/open-apis/auth/v3/tenant_access_token/internal$"), "token"),
        ("POST", re.compile(r"^/open-apis/im/v1/messages$"), "message_create"),
        ("POST", re.compile(r"^/open-apis/im/v1/messages/([^/]+)/reply$"), "message_reply"),
        ("PATCH", re.compile(r"^/open-apis/im/v1/messages/([^/]+)$"), "message_patch"),
        ("POST", re.compile(r"^/open-apis/interactive/v1/card/update$"), "card_update"),
        ("POST", re.compile(r"^/open-apis/im/v1/pins$"), "pin_create"),
        ("GET", re.compile(r"^/open-apis/im/v1/chats/([^/]+)/members$"), "chat_members"),
        ("GET", re.compile(r"^/open-apis/contact/v3/users/([^/]+)$"), "user_get"),
        ("GET", re.compile(r"^/open-apis/bot/v3/info$"), "bot_info"),
        *TASK_ROUTES,
        *BITABLE_ROUTES,
        ("POST", re.compile(r"^/open-apis/ephemeral/v1/send$"), "ephemeral_send"),
        ("POST", re.compile(r"^/open-apis/ephemeral/v1/delete$"), "ephemeral_delete"),
    ]

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _process(self, request: httpx.Request) -> tuple[httpx.Response, float]:
        with self._lock:
            path = request.url.path
            query = dict(request.url.params)
            raw = request.content
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = None
            uuid = payload.get("uuid") if isinstance(payload, dict) else None
            try:
                status, body, headers = self._dispatch(request.method, path, query, payload, raw, request)
            except _Reply as r:
                status, body, headers = r.status, r.body, r.headers
            if self._lost and (request.method, path) == self._lost_at and status < 300:
                self._lost -= 1
                status, body, headers = self._lost_status, "<html><body>Gateway Time-out</body></html>", {}
            code = body.get("code") if isinstance(body, dict) else None
            self.calls.append(Call(request.method, path, query, payload, uuid, status, code, self._now()))
            logid = f"2025{next(self._ids):016d}"
            hdrs = {"X-Tt-Logid": logid, **headers}
            if isinstance(body, (dict, list)):
                response = httpx.Response(status, json=body, headers=hdrs)
            else:
                response = httpx.Response(status, text=str(body),
                                          headers={"Content-Type": "text/html", **hdrs})
            delay = 0.0
            if path != TOKEN_PATH:   # like faults, delays hit API calls, not token fetches
                delay = self._delays.popleft() if self._delays else self._delay_forever
            return response, delay

    def _dispatch(self, method: str, path: str, query: dict, payload: Any, raw: bytes,
                  request: httpx.Request) -> tuple[int, Any, dict]:
        for m, pattern, name in self._ROUTES:
            match = pattern.match(path)
            if match and m == method:
                break
        else:
            raise _Reply(404, "404 page not found")
        if name == "token":
            return 200, self._token(payload), {}
        self._check_app_limit(name)
        self._inject_fault()
        self._check_auth(request)
        if raw and not isinstance(payload, dict):
            raise _err(400, FIELD_VALIDATION, "request body is not a JSON object")
        handler = getattr(self, f"_api_{name}")
        return 200, handler(*match.groups(), query=query, body=payload or {}), {}

    # ---- gateway
    def _token(self, body: Any) -> dict:
        if not isinstance(body, dict) or body.get("app_id") != self.app_id:
            raise _err(400, APP_ID_INVALID, "app_id is invalid")
        if body.get("app_secret") != self.app_secret:
            raise _err(400, APP_SECRET_INVALID, "app secret invalid")
        now = self._now()
        for t in [t for t, exp in self._tokens.items() if exp <= now]:
            del self._tokens[t]
        tok = self._current_token
        if tok in self._tokens and self._tokens[tok] - now >= TOKEN_REISSUE_BELOW:
            return {"code": 0, "msg": "ok", "tenant_access_token": tok,
                    "expire": int(self._tokens[tok] - now)}
        tok = f"t-{next(self._ids):06d}{random.getrandbits(96):024x}"
        self._tokens[tok] = now + TOKEN_TTL
        self._current_token = tok
        return {"code": 0, "msg": "ok", "tenant_access_token": tok, "expire": TOKEN_TTL}

    def _check_auth(self, request: httpx.Request) -> None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _err(400, MISSING_TOKEN, "Missing access token for authorization.")
        tok = auth[7:].strip()
        if self._tokens.get(tok, 0) <= self._now():
            raise _err(400, INVALID_TOKEN, "Invalid access token for authorization.")

    def _check_app_limit(self, api: str) -> None:
        if not self.limits_enabled:
            return
        now = self._now()
        win = self._windows.setdefault(api, deque())
        while win and win[0] <= now - 60:
            win.popleft()
        last_second = [t for t in win if t > now - 1]
        reset = None
        per_second = BITABLE_PER_SECOND.get(api, APP_PER_SECOND)
        if len(last_second) >= per_second:
            reset = last_second[-per_second] + 1 - now
        per_minute = PER_MINUTE.get(api) or BITABLE_PER_MINUTE.get(api, APP_PER_MINUTE)
        if len(win) >= per_minute:
            reset = max(reset or 0, win[-per_minute] + 60 - now)
        if reset is not None:
            limit = per_second if len(win) < per_minute else per_minute
            raise _Reply(429, {"code": RATE_LIMITED, "msg": "request trigger frequency limit"},
                         {"x-ogw-ratelimit-limit": str(limit),
                          "x-ogw-ratelimit-reset": str(max(1, math.ceil(reset)))})
        win.append(now)

    def _check_chat_limit(self, key: str, per_second: int = CHAT_PER_SECOND) -> None:
        if not self.limits_enabled:
            return
        now = self._now()
        win = self._chat_windows.setdefault(key, deque())
        while win and win[0] <= now - 1:
            win.popleft()
        if len(win) >= per_second:
            raise _err(400, CHAT_RATE_LIMITED, "This operation triggers the frequency limit.")
        win.append(now)

    def _inject_fault(self) -> None:
        fault = None
        if self._faults:
            fault = self._faults.popleft()
        elif self._fail_p and self._fail_rng.random() < self._fail_p:
            fault = self._fail_fault
        if fault is None:
            return
        if fault.html:
            raise _Reply(fault.status, f"<html><body><h1>{fault.status}</h1>Bad Gateway</body></html>")
        if fault.status == 429:
            raise _Reply(429, {"code": fault.code or RATE_LIMITED, "msg": "request trigger frequency limit"},
                         {"x-ogw-ratelimit-limit": str(APP_PER_SECOND),
                          "x-ogw-ratelimit-reset": str(fault.reset if fault.reset is not None else 1)})
        code = fault.code if fault.code is not None else INTERNAL_ERROR
        raise _err(fault.status, code, "injected failure")

    # ---- messages
    def _store(self, chat: _Chat, msg_type: str, content: dict, uuid: str | None, *, sender: str,
               parent: Message | None = None) -> Message:
        now = self.clock.now()
        mid = f"om_{next(self._ids):08x}{random.getrandbits(64):016x}"
        msg = Message(mid, chat.chat_id, msg_type, content, uuid, sender, now, now,
                      parent_id=parent.message_id if parent else None,
                      root_id=(parent.root_id or parent.message_id) if parent else None)
        self._messages[mid] = msg
        chat.messages.append(mid)
        return msg

    def _message_data(self, m: Message) -> dict:
        ms = lambda d: str(int(d.timestamp() * 1000))  # noqa: E731 — Feishu sends ms as strings
        chat = self._chats[m.chat_id]
        data = {"message_id": m.message_id, "msg_type": m.msg_type, "create_time": ms(m.create_time),
                "update_time": ms(m.update_time), "deleted": False, "updated": m.updated,
                "chat_id": m.chat_id,
                "sender": ({"id": self.app_id, "id_type": "app_id", "sender_type": "app",
                            "tenant_key": chat.tenant_key} if m.sender == "bot" else
                           {"id": m.sender, "id_type": "open_id", "sender_type": "user",
                            "tenant_key": chat.tenant_key}),
                "body": {"content": json.dumps(m.content, ensure_ascii=False)}}
        if m.parent_id:
            data["parent_id"] = m.parent_id
            data["root_id"] = m.root_id
        return data

    def _parse_content(self, msg_type: Any, content: Any) -> dict:
        if not isinstance(msg_type, str) or not msg_type:
            raise _err(400, FIELD_VALIDATION, "field validation failed: msg_type is required")
        if msg_type not in MSG_TYPES:
            raise _err(400, INVALID_PARAM, f"invalid message type: {msg_type}")
        if not isinstance(content, str):
            raise _err(400, FIELD_VALIDATION, "field validation failed: content must be a JSON string")
        size = len(content.encode("utf-8"))
        if size > (TEXT_MAX if msg_type == "text" else CARD_MAX):
            raise _err(400, CONTENT_TOO_LONG, "The message content is too long.")
        try:
            parsed = json.loads(content)
        except ValueError:
            raise _err(400, INVALID_PARAM, "invalid message content: not JSON") from None
        if not isinstance(parsed, dict):
            raise _err(400, INVALID_PARAM, "invalid message content: not an object")
        if msg_type == "text" and not isinstance(parsed.get("text"), str):
            raise _err(400, INVALID_PARAM, "invalid message content: text is required")
        return parsed

    def _check_uuid(self, uuid: Any) -> Message | None:
        if uuid is None:
            return None
        if not isinstance(uuid, str) or len(uuid) > 50:
            raise _err(400, FIELD_VALIDATION, "field validation failed: uuid must be <= 50 chars")
        now = self._now()
        hit = self._uuids.get(uuid)
        if hit and now - hit[1] < UUID_TTL:
            return self._messages[hit[0]]
        return None

    def _created(self, msg: Message) -> dict:
        if msg.uuid:
            now = self._now()
            if len(self._uuids) > 10_000:   # forget keys past Feishu's 1-hour dedupe window
                self._uuids = {k: v for k, v in self._uuids.items() if now - v[1] < UUID_TTL}
            self._uuids[msg.uuid] = (msg.message_id, now)
        return {"code": 0, "msg": "success", "data": self._message_data(msg)}

    def _api_message_create(self, *, query: dict, body: dict) -> dict:
        if query.get("receive_id_type") == "open_id":
            chat = self._p2p_chat(body.get("receive_id"))
        elif query.get("receive_id_type") != "chat_id":
            raise _err(400, FIELD_VALIDATION,
                       "field validation failed: receive_id_type (the fake supports chat_id and open_id)")
        else:
            chat = self._chats.get(body.get("receive_id"))
        if chat is None:
            raise _err(400, INVALID_PARAM, "invalid receive_id")
        content = self._parse_content(body.get("msg_type"), body.get("content"))
        dup = self._check_uuid(body.get("uuid"))
        if not chat.bot_in_chat:
            raise _err(400, BOT_NOT_IN_CHAT, "Bot is not in the chat.")
        self._check_chat_limit(chat.chat_id)
        if dup is not None:   # same uuid within an hour: at most one message, same answer
            return {"code": 0, "msg": "success", "data": self._message_data(dup)}
        return self._created(self._store(chat, body["msg_type"], content, body.get("uuid"), sender="bot"))

    def _api_message_reply(self, message_id: str, *, query: dict, body: dict) -> dict:
        parent = self._messages.get(message_id)
        if parent is None:
            raise _err(400, INVALID_PARAM, "invalid message_id")
        chat = self._chats[parent.chat_id]
        content = self._parse_content(body.get("msg_type"), body.get("content"))
        dup = self._check_uuid(body.get("uuid"))
        if not chat.bot_in_chat:
            raise _err(400, BOT_NOT_IN_CHAT, "Bot is not in the chat.")
        self._check_chat_limit(chat.chat_id)
        if dup is not None:
            return {"code": 0, "msg": "success", "data": self._message_data(dup)}
        return self._created(self._store(chat, body["msg_type"], content, body.get("uuid"),
                                         sender="bot", parent=parent))

    def _api_message_patch(self, message_id: str, *, query: dict, body: dict) -> dict:
        msg = self._messages.get(message_id)
        if msg is None:
            raise _err(400, INVALID_PARAM, "invalid message_id")
        if msg.sender != "bot":
            raise _err(400, NO_PERMISSION, "only the sender can update the message")
        if msg.msg_type != "interactive" or msg.visible_to is not None:
            raise _err(400, CANNOT_OPERATE, "only interactive messages can be patched (not private cards)")
        if self.clock.now() - msg.create_time > PATCH_WINDOW:
            raise _err(400, CANNOT_OPERATE, "message older than 14 days")
        content = self._parse_content("interactive", body.get("content"))
        self._check_chat_limit(f"msg:{message_id}")   # 5 QPS per message
        msg.content = content
        msg.update_time = self.clock.now()
        msg.updated = True
        return {"code": 0, "msg": "success", "data": {}}

    def _p2p_chat(self, open_id: Any) -> _Chat:
        """The bot's 1:1 chat with a person (created by the first message), if the app may reach them."""
        if not isinstance(open_id, str) or not open_id.startswith("ou_"):
            raise _err(400, INVALID_PARAM, "invalid receive_id")
        if open_id in self._unreachable:
            raise _err(400, BOT_NO_AVAILABILITY, "Bot has NO availability to this user.")
        chat_id = self.p2p_chat_id(open_id)
        if chat_id not in self._chats:
            self._chats[chat_id] = _Chat(chat_id, self.tenant_key, p2p_with=open_id)
            self._chats[chat_id].members[open_id] = self._users.get(open_id, {}).get("name", "")
        return self._chats[chat_id]

    def _api_ephemeral_send(self, *, query: dict, body: dict) -> dict:
        """Documented body: chat_id, one of open_id > user_id > email, msg_type "interactive",
        card (a card object — Card JSON 1.0 or 2.0 — not a string); answers data.message_id."""
        chat = self._chats.get(body.get("chat_id")) if isinstance(body.get("chat_id"), str) else None
        if chat is None:
            raise _err(400, CHAT_NOT_FOUND, "chat not found")
        if body.get("msg_type") != "interactive":
            raise _err(400, FIELD_VALIDATION, "field validation failed: msg_type must be interactive")
        who = body.get("open_id") or body.get("user_id") or body.get("email")
        if not isinstance(who, str) or not who:
            raise _err(400, FIELD_VALIDATION, "field validation failed: open_id, user_id or email is required")
        card = body.get("card")
        if not isinstance(card, dict):
            raise _err(400, FIELD_VALIDATION, "field validation failed: card must be an object")
        if len(json.dumps(card, ensure_ascii=False).encode("utf-8")) > CARD_MAX:
            raise _err(400, CONTENT_TOO_LONG, "The message content is too long.")
        if not chat.bot_in_chat:
            raise _err(400, BOT_NOT_IN_CHAT, "Bot is not in the chat.")
        if chat.topic:
            raise _err(400, TOPIC_CHAT_UNSUPPORTED, "ephemeral cards are not supported in topic chats")
        if chat.members and who not in chat.members:
            raise _err(400, USER_NOT_IN_CHAT, "user is not in the chat")
        self._check_chat_limit(f"eph:{chat.chat_id}", EPHEMERAL_PER_SECOND)
        msg = self._store(chat, "interactive", copy.deepcopy(card), None, sender="bot")
        msg.visible_to = who
        return {"code": 0, "msg": "ok", "data": {"message_id": msg.message_id}}

    def _api_ephemeral_delete(self, *, query: dict, body: dict) -> dict:
        """Deleting leaves no trace on the person's devices; a second delete answers 18051."""
        mid = body.get("message_id")
        if not isinstance(mid, str) or not mid:
            raise _err(400, FIELD_VALIDATION, "field validation failed: message_id is required")
        msg = self._messages.get(mid)
        if msg is None or msg.visible_to is None:
            if mid in self._deleted:
                raise _err(400, EPHEMERAL_DELETED, "message has been deleted")
            raise _err(400, INVALID_PARAM, "invalid message_id")
        del self._messages[mid]
        self._chats[msg.chat_id].messages.remove(mid)
        self._deleted.add(mid)
        return {"code": 0, "msg": "ok"}

    def _api_card_update(self, *, query: dict, body: dict) -> dict:
        token, card = body.get("token"), body.get("card")
        if not isinstance(token, str) or not isinstance(card, dict):
            raise _err(400, FIELD_VALIDATION, "field validation failed: token and card object required")
        entry = self._card_tokens.get(token)
        if entry is None or entry["expires"] <= self._now() or entry["uses"] <= 0:
            raise _err(400, CARD_TOKEN_INVALID, "card token is invalid, expired or used up")
        if len(json.dumps(card, ensure_ascii=False).encode("utf-8")) > CARD_MAX:
            raise _err(400, CONTENT_TOO_LONG, "card content is too long")
        entry["uses"] -= 1
        msg = self._messages[entry["message_id"]]
        msg.content = copy.deepcopy(card)
        msg.update_time = self.clock.now()
        msg.updated = True
        return {"code": 0, "msg": "success", "data": {}}

    def _api_pin_create(self, *, query: dict, body: dict) -> dict:
        msg = self._messages.get(body.get("message_id"))
        if msg is None:
            raise _err(400, INVALID_PARAM, "invalid message_id")
        if not self._chats[msg.chat_id].bot_in_chat:
            raise _err(400, BOT_NOT_IN_CHAT, "Bot is not in the chat.")
        msg.pinned = True   # pinning twice returns the existing pin
        return {"code": 0, "msg": "success", "data": {"pin": {
            "message_id": msg.message_id, "chat_id": msg.chat_id, "operator_id": self.bot_open_id,
            "operator_id_type": "open_id", "create_time": str(int(self._now() * 1000))}}}

    # ---- reads
    def _api_chat_members(self, chat_id: str, *, query: dict, body: dict) -> dict:
        if query.get("member_id_type", "open_id") != "open_id":
            raise _err(400, FIELD_VALIDATION, "the fake supports member_id_type=open_id")
        try:
            size = int(query.get("page_size", 20))
            start = int(base64.urlsafe_b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        except (ValueError, KeyError):
            raise _err(400, FIELD_VALIDATION, "field validation failed: page_size/page_token") from None
        if not 1 <= size <= 100:
            raise _err(400, FIELD_VALIDATION, "field validation failed: page_size must be 1..100")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _err(400, CHAT_NOT_FOUND, "invalid chat_id")
        if not chat.bot_in_chat:
            raise _err(400, OPERATOR_NOT_IN_CHAT, "operator is not in the chat")
        members = list(chat.members.items())   # humans only: Feishu omits bots
        page = members[start:start + size]
        more = start + size < len(members)
        return {"code": 0, "msg": "success", "data": {
            "items": [{"member_id_type": "open_id", "member_id": oid, "name": name,
                       "tenant_key": chat.tenant_key} for oid, name in page],
            "page_token": base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else "",
            "has_more": more, "member_total": len(members)}}

    def _api_user_get(self, user_id: str, *, query: dict, body: dict) -> dict:
        if query.get("user_id_type", "open_id") != "open_id":
            raise _err(400, FIELD_VALIDATION, "the fake supports user_id_type=open_id")
        user = self._users.get(user_id)
        if user is None:
            raise _err(400, NO_USER_AUTHORITY, "no user authority error")
        data = {"union_id": "on_" + user_id[3:], "en_name": user["name"], "avatar": {},
                "status": {"is_activated": True}, **user}
        return {"code": 0, "msg": "success", "data": {"user": data}}

    def _api_bot_info(self, *, query: dict, body: dict) -> dict:
        return {"code": 0, "msg": "ok", "bot": {"activate_status": 2, "app_name": self.app_name,
                                                "avatar_url": "", "ip_white_list": [],
                                                "open_id": self.bot_open_id}}

