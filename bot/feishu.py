"""The bot's only door to the Feishu Open API (outbound calls).

Why not lark-oapi for outbound calls: its async methods still fetch the tenant token with blocking
`requests` (the event loop stalls for a round-trip whenever the token expires), open a new
`httpx.AsyncClient` per call (a TCP+TLS handshake per message during a fan-out), never retry, and
never invalidate a token the server rejected. So this module talks HTTP itself: one pooled
`httpx.AsyncClient`, an async single-flight token cache, typed errors and a retry policy that is
safe because every message send carries the same Feishu `uuid` on every attempt (Feishu keeps at
most one message per uuid per hour, so a retry after a lost response never doubles a message).

Retry policy (see docs/design reliability §3):
  * 429 / 99991400 / 99991402 / 230020 -> wait `x-ogw-ratelimit-reset` s (default 1) + 0–0.5 s jitter;
    a gateway throttle pauses every paced send for the reset (not the jitter) and the refused
    attempt is not counted against the pacer's minute (see bot.pacer);
  * 5xx, timeouts, network errors, non-JSON bodies -> exponential backoff with full jitter;
  * token-invalid codes -> drop the cached token, refetch, retry once;
  * anything else (e.g. 230002 bot not in chat) -> `Permanent`, no retry.
Logs carry code, msg, log_id and path only — never tokens, secrets or message content.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from bot.pacer import Pacer

__all__ = [
    "FeishuClient", "FeishuError", "RateLimited", "Transient", "Permanent", "TokenInvalid",
    "Member", "User", "BotInfo", "normalize_uuid", "MissingScope", "is_not_found",
]

log = logging.getLogger(__name__)

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
TOKEN_INVALID_CODES = frozenset({99991663, 99991664, 99991665, 99991666, 99991668})
CHAT_RATE_LIMITED = 230020   # per chat (or user): the request reached the IM service and was counted
RATE_LIMIT_CODES = frozenset({99991400, 99991402, CHAT_RATE_LIMITED})
MISSING_SCOPE_CODE = 99991672   # "Access denied. One of the following scopes is required: [...]"
RECORD_NOT_FOUND_CODE = 1254043   # approx. (RecordIdNotFound): a record deleted in the base
TASK_NOT_FOUND_CODE = 1470404   # approx. (no page pins it down): a deleted or unknown task guid
TASK_PARAMS = {"user_id_type": "open_id"}
UUID_MAX = 50
EPHEMERAL_GONE = 18051   # ephemeral/v1/delete: the message was already deleted


# ---------------------------------------------------------------------------------------- errors
class FeishuError(Exception):
    """A failed Open API call. `code` is Feishu's business code (-1 when there was none)."""

    def __init__(self, code: int, msg: str, http_status: int | None = None,
                 log_id: str | None = None, path: str | None = None) -> None:
        super().__init__(f"feishu {path or ''} code={code} msg={msg} status={http_status} log_id={log_id}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.log_id = log_id
        self.path = path


class RateLimited(FeishuError):
    """Throttled (429/99991400/99991402, or 230020 per chat). `retry_after` from the reset header."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.retry_after = retry_after


class Transient(FeishuError):
    """5xx, timeout, network failure or unparsable body: worth retrying later."""


class Permanent(FeishuError):
    """Any other non-zero code (230002 bot not in chat, 230025 too long, ...): retrying won't help."""


class TokenInvalid(Permanent):
    """The tenant token was rejected even after a fresh one was fetched."""


class MissingScope(Permanent):
    """99991672: the app lacks a scope; `scopes` are the ones Feishu named (permission_violations)."""

    def __init__(self, *args: Any, scopes: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.scopes = scopes


def is_not_found(exc: FeishuError) -> bool:
    """A Task v2 / bitable object that no longer exists (deleted in Feishu)."""
    return isinstance(exc, Permanent) and (exc.http_status == 404 or exc.code == TASK_NOT_FOUND_CODE)


# ----------------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class Member:
    open_id: str
    name: str


@dataclass(frozen=True)
class User:
    open_id: str
    name: str


@dataclass(frozen=True)
class BotInfo:
    open_id: str
    app_name: str


def normalize_uuid(uuid: str) -> str:
    """Feishu rejects uuids > 50 chars. Truncating could make two keys collide (and silently drop a
    message for an hour), so long keys become a stable digest instead."""
    if len(uuid) <= UUID_MAX:
        return uuid
    return "h-" + hashlib.sha256(uuid.encode("utf-8")).hexdigest()[: UUID_MAX - 2]


# ---------------------------------------------------------------------------------------- client
class FeishuClient:
    TOKEN_MARGIN = 300.0        # renew 5 min before expiry (Feishu hands out a new one < 30 min left)
    BACKOFF_BASE = 0.25
    BACKOFF_CAP = 8.0
    RESET_DEFAULT = 1.0         # when a throttle response has no x-ogw-ratelimit-reset
    RESET_MAX = 60.0            # never park a call longer than a minute window on one header
    RATE_JITTER = 0.5

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = "https://open.feishu.cn",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: Pacer | None = None,
        max_attempts: int = 6,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._app_id = app_id
        self._app_secret = app_secret
        self._timeout = timeout
        self._pacer = pacer
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._random = random
        self._monotonic = monotonic
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        # Task and bitable calls have their own per-API quotas: pace them apart, so a 429 from
        # one of them never slows the group's messages.
        self._api_pacer = Pacer() if pacer is not None else None
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._urls: dict[tuple[str, tuple], httpx.URL] = {}
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FeishuClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------------- messages
    async def send_card(self, chat_id: str, card: dict, *, uuid: str) -> str:
        return await self._create_message(chat_id, "interactive", _dumps(card), uuid)

    async def send_text(self, chat_id: str, text: str, *, uuid: str) -> str:
        return await self._create_message(chat_id, "text", _dumps({"text": text}), uuid)

    async def reply_card(self, message_id: str, card: dict, *, uuid: str,
                         chat_id: str | None = None) -> str:
        """Reply to a message. Pass `chat_id` when known so the per-chat pacing applies."""
        body = {"msg_type": "interactive", "content": _dumps(card), "reply_in_thread": False,
                "uuid": normalize_uuid(uuid)}
        data = await self._call("POST", f"/open-apis/im/v1/messages/{_seg(message_id)}/reply",
                                json_body=body, paced=True, pace_key=chat_id)
        return data["data"]["message_id"]

    async def patch_card(self, message_id: str, card: dict) -> None:
        """Full replacement of a card this bot sent (≤ 14 days old). Idempotent, so retried."""
        await self._call("PATCH", f"/open-apis/im/v1/messages/{_seg(message_id)}",
                         json_body={"content": _dumps(card)}, paced=True)

    async def send_private(self, chat_id: str, open_id: str, card: dict) -> str:
        """A card in the group that only `open_id` sees (「仅对你可见」, ephemeral/v1/send). Card
        JSON 1.0 and 2.0 are accepted; no `uuid` (the API has none), no notification, not
        forwardable, not updatable by PATCH: its callbacks answer it in place, and it is removed
        with `delete_private`. 40 QPS per chat, 50/s per app."""
        body = {"chat_id": chat_id, "open_id": open_id, "msg_type": "interactive", "card": card}
        data = await self._call("POST", "/open-apis/ephemeral/v1/send", json_body=body, paced=True)
        return data["data"]["message_id"]

    async def send_card_to_person(self, open_id: str, card: dict, *, uuid: str) -> str:
        """The card in the person's 1:1 chat with the bot (im/v1/messages, receive_id_type=open_id):
        where a private card in the group cannot serve. The person must be in the app's
        availability range; 5 QPS per user."""
        body = {"receive_id": open_id, "msg_type": "interactive", "content": _dumps(card),
                "uuid": normalize_uuid(uuid)}
        data = await self._call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": "open_id"},
                                json_body=body, paced=True, pace_key=open_id)
        return data["data"]["message_id"]

    async def delete_private(self, message_id: str) -> None:
        """Remove a private card (ephemeral/v1/delete). Already gone (18051) counts as done."""
        try:
            await self._call("POST", "/open-apis/ephemeral/v1/delete", json_body={"message_id": message_id},
                             paced=True)
        except Permanent as exc:
            if exc.code != EPHEMERAL_GONE:
                raise

    async def delayed_update(self, token: str, card: dict) -> None:
        """Update the clicked card with the callback's `c-…` token (30 min, 2 uses). Call only
        after the callback was answered. At most 2 attempts: each attempt may spend a use."""
        await self._call("POST", "/open-apis/interactive/v1/card/update",
                         json_body={"token": token, "card": card}, paced=True,
                         max_attempts=min(2, self._max_attempts))

    async def pin(self, message_id: str) -> None:
        """Pin a message; pinning an already pinned message succeeds (idempotent)."""
        await self._call("POST", "/open-apis/im/v1/pins", json_body={"message_id": message_id},
                         paced=True)

    # -------------------------------------------------------------------------------- reads
    async def chat_members(self, chat_id: str) -> list[Member]:
        """All human members (Feishu omits bots). Pages may be shorter or longer than page_size,
        so follow has_more/page_token until done."""
        members: list[Member] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params = {"member_id_type": "open_id", "page_size": "100"}
            if token:
                params["page_token"] = token
            body = await self._call("GET", f"/open-apis/im/v1/chats/{_seg(chat_id)}/members",
                                    params=params)
            data = body.get("data") or {}
            for item in data.get("items") or []:
                members.append(Member(open_id=item["member_id"], name=item.get("name", "")))
            token = data.get("page_token") or None
            if not data.get("has_more") or not token or token in seen:
                return members
            seen.add(token)

    async def user(self, open_id: str) -> User:
        body = await self._call("GET", f"/open-apis/contact/v3/users/{_seg(open_id)}",
                                params={"user_id_type": "open_id"})
        u = body["data"]["user"]
        return User(open_id=u.get("open_id", open_id), name=u.get("name", ""))

    async def bot_info(self) -> BotInfo:
        body = await self._call("GET", "/open-apis/bot/v3/info")
        bot = body["bot"]  # this API answers {"code":0,"bot":{...}} — no "data" envelope
        return BotInfo(open_id=bot["open_id"], app_name=bot.get("app_name", ""))

    # ------------------------------------------------------------------ Feishu Tasks (Task v2)
    # Shapes: docs/feishu-tasks-bitable.md. Creates carry a client_token derived from our key, so
    # a retried or doubled create returns the task made the first time; patches are idempotent.
    async def create_tasklist(self, name: str, members: list[dict]) -> dict:
        body = await self._call("POST", "/open-apis/task/v2/tasklists", params=TASK_PARAMS,
                                json_body={"name": name[:100], "members": members}, api_paced=True,
                                retry_transient=False)
        return body["data"]["tasklist"]

    async def list_tasklists(self, *, max_pages: int = 50) -> list[dict]:
        """Every tasklist the app can read (GET /open-apis/task/v2/tasklists, 100 a page, the most
        the API allows), following page_token while has_more."""
        items: list[dict] = []
        params: dict[str, str | int] = {**TASK_PARAMS, "page_size": 100}
        for _ in range(max_pages):
            body = await self._call("GET", "/open-apis/task/v2/tasklists", params=params, api_paced=True)
            data = body.get("data") or {}
            items += data.get("items") or []
            if not data.get("has_more") or not data.get("page_token"):
                break
            params = {**params, "page_token": data["page_token"]}
        return items

    async def create_task(self, task: dict, *, client_token: str) -> dict:
        body = await self._call("POST", "/open-apis/task/v2/tasks", params=TASK_PARAMS,
                                json_body={**task, "client_token": client_token}, api_paced=True)
        return body["data"]["task"]

    async def patch_task(self, guid: str, task: dict, update_fields: list[str]) -> dict:
        body = await self._call("PATCH", f"/open-apis/task/v2/tasks/{_seg(guid)}", params=TASK_PARAMS,
                                json_body={"task": task, "update_fields": update_fields}, api_paced=True)
        return body["data"]["task"]

    async def get_task(self, guid: str) -> dict:
        body = await self._call("GET", f"/open-apis/task/v2/tasks/{_seg(guid)}", params=TASK_PARAMS,
                                api_paced=True)
        return body["data"]["task"]

    async def add_task_members(self, guid: str, members: list[dict], *, client_token: str) -> dict:
        body = await self._call("POST", f"/open-apis/task/v2/tasks/{_seg(guid)}/add_members",
                                params=TASK_PARAMS, json_body={"members": members, "client_token": client_token},
                                api_paced=True)
        return body["data"]["task"]

    async def remove_task_members(self, guid: str, members: list[dict]) -> dict:
        body = await self._call("POST", f"/open-apis/task/v2/tasks/{_seg(guid)}/remove_members",
                                params=TASK_PARAMS, json_body={"members": members}, api_paced=True)
        return body["data"]["task"]

    # ---------------------------------------------------------------- 多维表格 (bitable v1)
    # Shapes and limits: docs/feishu-tasks-bitable.md. batch_create carries a uuid client_token
    # derived from our key, so a retried create returns the records made the first time.
    async def create_base(self, name: str) -> dict:
        body = await self._call("POST", "/open-apis/bitable/v1/apps", json_body={"name": name}, api_paced=True)
        return body["data"]["app"]

    async def create_table(self, app_token: str, name: str, fields: list[dict]) -> str:
        body = await self._call("POST", f"/open-apis/bitable/v1/apps/{_seg(app_token)}/tables",
                                json_body={"table": {"name": name, "default_view_name": name, "fields": fields}},
                                api_paced=True)
        return str(body["data"]["table_id"])

    async def create_records(self, app_token: str, table_id: str, fields: list[dict], *,
                             client_token: str) -> list[dict]:
        body = await self._call("POST", f"{_table_path(app_token, table_id)}/records/batch_create",
                                params={**TASK_PARAMS, "client_token": client_token},
                                json_body={"records": [{"fields": f} for f in fields]}, api_paced=True)
        return list(body["data"]["records"])

    async def update_records(self, app_token: str, table_id: str, records: list[dict]) -> list[dict]:
        body = await self._call("POST", f"{_table_path(app_token, table_id)}/records/batch_update",
                                params=TASK_PARAMS, json_body={"records": records}, api_paced=True)
        return list(body["data"]["records"])

    async def search_records(self, app_token: str, table_id: str, *, page_size: int = 500,
                             page_token: str | None = None) -> dict:
        """One page: {"items": [{record_id, fields, last_modified_by, last_modified_time}], "has_more",
        "page_token"}."""
        params = {**TASK_PARAMS, "page_size": str(page_size)}
        if page_token:
            params["page_token"] = page_token
        body = await self._call("POST", f"{_table_path(app_token, table_id)}/records/search", params=params,
                                json_body={"automatic_fields": True}, api_paced=True)
        return dict(body["data"])

    # ----------------------------------------------------------------------------- plumbing
    async def _create_message(self, chat_id: str, msg_type: str, content: str, uuid: str) -> str:
        body = {"receive_id": chat_id, "msg_type": msg_type, "content": content,
                "uuid": normalize_uuid(uuid)}
        data = await self._call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": "chat_id"},
                                json_body=body, paced=True, pace_key=chat_id)
        return data["data"]["message_id"]

    async def _call(self, method: str, path: str, *, params: dict | None = None,
                    json_body: dict | None = None, paced: bool = False, pace_key: str | None = None,
                    max_attempts: int | None = None, api_paced: bool = False,
                    retry_transient: bool = True) -> dict:
        """One logical call with retries. The body (and so the uuid) is identical on every attempt.
        `api_paced`: a task/bitable call, paced by the API pacer instead of the message pacer.
        `retry_transient=False`: a create without a client_token — a 5xx or timeout may have made it,
        so the caller looks before trying again (a 429 was not processed and is still retried)."""
        if api_paced:
            return await self._call_api(method, path, params=params, json_body=json_body,
                                        retry_transient=retry_transient)
        limit = max_attempts or self._max_attempts
        attempt = 0
        token_refreshed = False
        pacer = self._pacer if paced else None
        while True:
            attempt += 1
            slot = None
            if pacer is not None:
                slot = await pacer.acquire(pace_key, reports=True)  # every attempt counts against the quota
            try:
                return await self._attempt(method, path, params, json_body, pacer, slot)
            except TokenInvalid as e:
                if token_refreshed:
                    raise
                token_refreshed = True
                attempt -= 1  # a stale token is our state, not a server failure
                log.info("feishu %s %s: token rejected (code=%s log_id=%s), refetching",
                         method, path, e.code, e.log_id)
            except RateLimited as e:
                if attempt >= limit:
                    raise
                reset = min(self.RESET_MAX, e.retry_after if e.retry_after is not None else self.RESET_DEFAULT)
                wait = reset + self.RATE_JITTER * self._random()
                if pacer is not None:
                    # app-wide throttle slows every paced send for the reset Feishu gave (the
                    # jitter only spreads this call's retry); 230020 only that chat's
                    if e.code != CHAT_RATE_LIMITED:
                        pacer.throttled(slot, reset)
                    elif pace_key is not None:
                        pacer.pause(wait, pace_key)
                self._log_retry(method, path, e, attempt, limit, wait)
                await self._sleep(wait)
            except Transient as e:
                if attempt >= limit:
                    raise
                wait = self._backoff(attempt)
                self._log_retry(method, path, e, attempt, limit, wait)
                await self._sleep(wait)

    async def _call_api(self, method: str, path: str, *, params: dict | None, json_body: dict | None,
                        retry_transient: bool = True) -> dict:
        """The same retry policy as messages, slots from the API pacer."""
        self_pacer = self._api_pacer
        attempt = 0
        token_refreshed = False
        while True:
            attempt += 1
            slot = None
            if self_pacer is not None:
                slot = await self_pacer.acquire(None, reports=True)
            try:
                return await self._attempt(method, path, params, json_body, self_pacer, slot)
            except TokenInvalid:
                if token_refreshed:
                    raise
                token_refreshed, attempt = True, attempt - 1
            except RateLimited as e:
                if attempt >= self._max_attempts:
                    raise
                reset = min(self.RESET_MAX, e.retry_after if e.retry_after is not None else self.RESET_DEFAULT)
                wait = reset + self.RATE_JITTER * self._random()
                if self_pacer is not None:
                    self_pacer.throttled(slot, reset)
                self._log_retry(method, path, e, attempt, self._max_attempts, wait)
                await self._sleep(wait)
            except Transient as e:
                if attempt >= self._max_attempts or not retry_transient:
                    raise
                wait = self._backoff(attempt)
                self._log_retry(method, path, e, attempt, self._max_attempts, wait)
                await self._sleep(wait)

    def _backoff(self, retry: int) -> float:
        """Full jitter over [base, min(cap, base·2^retry)): spreads a burst of failing sends
        across the whole window, while the floor keeps two attempts of one message at least
        `base` apart (a zero-wait retry into a failing backend only adds load)."""
        hi = min(self.BACKOFF_CAP, self.BACKOFF_BASE * (2 ** retry))
        return self.BACKOFF_BASE + self._random() * (hi - self.BACKOFF_BASE)

    def _log_retry(self, method: str, path: str, e: FeishuError, attempt: int, limit: int,
                   wait: float) -> None:
        log.warning("feishu %s %s failed: code=%s msg=%s status=%s log_id=%s; attempt %d/%d, retry in %.2fs",
                    method, path, e.code, e.msg, e.http_status, e.log_id, attempt, limit, wait)

    async def _attempt(self, method: str, path: str, params: dict | None, json_body: dict | None,
                       pacer: Pacer | None = None, slot: float | None = None) -> dict:
        try:
            token = await self._tenant_token()
            response = await self._send(method, path, params=params, json_body=json_body,
                                        headers={"Authorization": f"Bearer {token}"},
                                        written=_written(pacer, slot))
        finally:
            if pacer is not None and slot is not None:
                pacer.sent(slot)   # a transport without the trace hook, or a failure: settled now
        try:
            return _check(response, path)
        except TokenInvalid:
            self._invalidate(token)
            raise

    async def _send(self, method: str, path: str, *, params: dict | None, json_body: dict | None,
                    headers: dict | None = None, written: _Trace | None = None) -> httpx.Response:
        # The body encoded once here (httpx's own JSON encoding gives the same bytes, with more
        # steps) and the URL parsed once per path and query (see `_url`): each costs more than the
        # rest of building the request.
        content = _dumps(json_body).encode() if json_body is not None else None
        try:
            # httpx's timeout is per phase (connect/read/...); the outer one bounds the whole attempt.
            async with asyncio.timeout(self._timeout):
                return await self._http.request(method, self._url(path, params), content=content,
                                                headers=headers,
                                                extensions={"trace": written} if written else None)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise Transient(-1, f"timeout ({type(exc).__name__})", None, None, path) from None
        except httpx.TransportError as exc:
            raise Transient(-1, f"network error ({type(exc).__name__})", None, None, path) from None

    URLS_KEPT = 512   # parsed URLs kept; paths with a message id in them come and go

    def _url(self, path: str, params: dict | None) -> httpx.URL:
        """The absolute URL of a call, parsed once: httpx parses (and validates character by
        character) the path, merges it with the base URL and encodes the query on every request."""
        key = (path, tuple(params.items()) if params else ())
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= self.URLS_KEPT:
                self._urls.clear()
            url = self._urls[key] = self._http.build_request("GET", path, params=params).url
        return url

    # -------------------------------------------------------------------------------- token
    async def _tenant_token(self) -> str:
        if self._token and self._monotonic() < self._token_expires_at:
            return self._token
        async with self._token_lock:  # single flight: one fetch for all waiting callers
            if self._token and self._monotonic() < self._token_expires_at:
                return self._token
            started = self._monotonic()
            response = await self._send("POST", TOKEN_PATH, params=None,
                                        json_body={"app_id": self._app_id, "app_secret": self._app_secret})
            body = _check(response, TOKEN_PATH)
            token = body.get("tenant_access_token")
            if not token:
                raise Transient(-1, "token response without tenant_access_token",
                                response.status_code, _log_id(response), TOKEN_PATH)
            expire = float(body.get("expire") or 0)
            lifetime = expire - self.TOKEN_MARGIN if expire > 2 * self.TOKEN_MARGIN else expire / 2
            self._token = token
            self._token_expires_at = started + lifetime
            return token

    def _invalidate(self, token: str) -> None:
        if self._token == token:  # a concurrent caller may already hold a newer one
            self._token = None
            self._token_expires_at = 0.0


# ---------------------------------------------------------------------------------- helpers
_Trace = Callable[[str, dict], Awaitable[None]]


def _written(pacer: Pacer | None, slot: float | None) -> _Trace | None:
    """httpcore's trace hook telling the pacer when the paced request was written: from then
    on it can reach Feishu, and that (not the grant, which a busy event loop may precede by a
    quarter second) is when its per-second window counts it. Other transports (tests'
    MockTransport) never call it: the grant time stands."""
    if pacer is None or slot is None:
        return None
    paced, granted = pacer, slot

    async def trace(event: str, _info: dict) -> None:
        if event.endswith("send_request_body.complete"):
            paced.sent(granted)
    return trace


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _table_path(app_token: str, table_id: str) -> str:
    return f"/open-apis/bitable/v1/apps/{_seg(app_token)}/tables/{_seg(table_id)}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _log_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-tt-logid")


def _reset_seconds(response: httpx.Response) -> float | None:
    raw = response.headers.get("x-ogw-ratelimit-reset")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _check(response: httpx.Response, path: str) -> dict:
    """Map a response to its body or a typed error. Feishu may report failures with HTTP 200 or
    400, so the body's `code` decides; the HTTP status only matters for 429/5xx."""
    status = response.status_code
    log_id = _log_id(response)
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        if status == 429:
            raise RateLimited(-1, "throttled (non-JSON body)", status, log_id, path,
                              retry_after=_reset_seconds(response)) from None
        if 400 <= status < 500:
            raise Permanent(-1, f"non-JSON HTTP {status}", status, log_id, path) from None
        # HTML 502 from a proxy, or a truncated 200: the request may or may not have landed.
        raise Transient(-1, f"non-JSON HTTP {status}", status, log_id, path) from None
    code = body.get("code")
    msg = str(body.get("msg", ""))
    if not isinstance(code, int):
        code = -1
    if status == 429 or code in RATE_LIMIT_CODES:
        raise RateLimited(code, msg, status, log_id, path, retry_after=_reset_seconds(response))
    if code in TOKEN_INVALID_CODES:
        raise TokenInvalid(code, msg, status, log_id, path)
    if code == MISSING_SCOPE_CODE:
        raw_error = body.get("error")
        error: dict = raw_error if isinstance(raw_error, dict) else {}
        scopes = tuple(str(v.get("subject")) for v in error.get("permission_violations") or []
                       if isinstance(v, dict) and v.get("subject"))
        raise MissingScope(code, msg, status, log_id, path, scopes=scopes)
    if status >= 500:
        raise Transient(code, msg, status, log_id, path)
    if code != 0:
        raise Permanent(code, msg, status, log_id, path)
    if status >= 400:
        raise Permanent(-1, f"HTTP {status}", status, log_id, path)
    return body
