"""`collab-bot serve` without a Feishu app: the real bot, wired to an embedded fake of the Open API.

What differs from production is only what the bot is given: the Open API base URL (the fake, on
its own loopback port in this process), per-run credentials, and an OffsetClock the page can move
forward. Events reach the bot encrypted and signed through its real webhook; its answers leave
through the real outbox and HTTP client; reminders come from the real scheduler ticks.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, or_, select

from bot import texts
from bot.app import BotState, create_app
from bot.clock import OffsetClock
from bot.models import Case, KeyNode, Outbox
from bot.reminders import keynode_check_slot
from bot.security import seal
from bot.settings import DEFAULT_DATABASE_URL, Settings
from bot.workdays import calendar_for
from feishu_fake import FakeFeishu
from feishu_fake import events as ev
from sandbox import web
from sandbox.web import SandboxError

log = logging.getLogger(__name__)

CHAT_ID = "oc_sandbox_group"
BOT_OPEN_ID = "ou_sandbox_bot"
MAX_TEXT = 4000
SETTLE_SECONDS = 10.0
CALLBACK_DEADLINE = 3.0   # Feishu shows "操作失败" when a callback takes longer


@dataclass(frozen=True)
class Person:
    open_id: str
    name: str
    dept: str


MEMBERS = tuple(Person(*m) for m in texts.SANDBOX_MEMBERS)


def _credentials() -> dict[str, str]:
    return {"feishu_app_id": "cli_sandbox_" + secrets.token_hex(6),
            "feishu_app_secret": secrets.token_urlsafe(24),
            "feishu_encrypt_key": secrets.token_urlsafe(24),
            "feishu_verification_token": secrets.token_urlsafe(18)}


class Sandbox:
    """One sandbox group chat: the fake Open API, the bot app built against it, and what the
    page needs (transcript, posting as a member, card callbacks, moving the clock)."""

    def __init__(self, settings: Settings, *, fake_base_url: str, database_url: str | None = None,
                 clock: OffsetClock | None = None) -> None:
        self.clock = clock or OffsetClock()
        creds = _credentials()
        values = settings.model_dump()
        values.update(creds, feishu_base_url=fake_base_url,
                      database_url=database_url or settings.database_url)
        if values.get("feishu_tasks") == "off":   # the fake has 飞书任务: offer it, shown read-only on the page
            values["feishu_tasks"] = "offer"
        if values.get("feishu_board") == "off":   # … and 多维表格: offer the board, shown read-only too
            values["feishu_board"] = "offer"
        self.settings = Settings(_env_file=None, **values)
        # A tenant per run: a database kept from an earlier run never mixes with this fresh fake.
        self.tenant_key = "tenant_sandbox_" + secrets.token_hex(4)
        self.chat_id = CHAT_ID
        self.members = MEMBERS
        self.fake = FakeFeishu(app_id=creds["feishu_app_id"], app_secret=creds["feishu_app_secret"],
                               clock=self.clock, bot_open_id=BOT_OPEN_ID, app_name=texts.SANDBOX_BOT_NAME,
                               tenant_key=self.tenant_key)
        self.fake.add_chat(self.chat_id, [(p.open_id, p.name) for p in self.members])
        for p in self.members:
            self.fake.add_user(p.open_id, p.name, department_name=p.dept)
        self.app = create_app(self.settings, clock=self.clock)
        self.app.state.sandbox = self
        web.install(self.app)
        self._client: httpx.AsyncClient | None = None
        self._changes = 0

    @property
    def state(self) -> BotState:
        return self.app.state.bot

    def person(self, open_id: str) -> Person:
        for p in self.members:
            if p.open_id == open_id:
                return p
        raise SandboxError(texts.SANDBOX_UNKNOWN_MEMBER)

    # ------------------------------------------------------------ delivery to the bot's webhook
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # The bot's own ASGI app: the same route, verification and inbox as a request from Feishu.
            self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                             base_url="http://sandbox.invalid", timeout=30)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _common(self) -> dict[str, Any]:
        return {"app_id": self.settings.feishu_app_id, "tenant_key": self.tenant_key,
                "token": self.settings.feishu_verification_token.get_secret_value(),
                "create_ms": int(self.clock.now().timestamp() * 1000)}

    async def _deliver(self, payload: dict[str, Any]) -> httpx.Response:
        body, headers = seal(payload, encrypt_key=self.settings.feishu_encrypt_key.get_secret_value(),
                             timestamp=int(self.clock.now().timestamp()))
        return await self._http().post("/feishu/events", content=body, headers=headers)

    async def ready(self, timeout: float = 60.0) -> None:
        await asyncio.wait_for(self.state.ready.wait(), timeout)

    async def boot(self) -> None:
        """Once the bot is up: add it to the group, as Feishu announces it (the welcome card)."""
        await self.ready()
        before = set(self.state.tasks)
        await self._deliver(ev.bot_added_event(chat_id=self.chat_id, operator_open_id=self.members[0].open_id,
                                               chat_name=texts.SANDBOX_CHAT_NAME, **self._common()))
        await self.settle(before)

    async def say(self, open_id: str, text: str) -> dict[str, Any]:
        """A member types a message in the group."""
        self.person(open_id)
        text = (text or "").strip()
        if not text:
            raise SandboxError(texts.SANDBOX_EMPTY_MESSAGE)
        if len(text) > MAX_TEXT:
            raise SandboxError(texts.SANDBOX_MESSAGE_TOO_LONG.format(limit=MAX_TEXT))
        await self.ready()
        wire_text, mentions = self._mentions(text)
        message_id = self.fake.post_user_message(self.chat_id, open_id, text)
        self._changes += 1
        before = set(self.state.tasks)
        resp = await self._deliver(ev.message_event(chat_id=self.chat_id, sender_open_id=open_id,
                                                    text=wire_text, mentions=mentions,
                                                    message_id=message_id, **self._common()))
        await self.settle(before)
        return {"message_id": message_id, "status": resp.status_code}

    def _mentions(self, text: str) -> tuple[str, list[dict[str, str]]]:
        """`@陈静` → `@_user_1` + a mention, as Feishu sends mentions to the bot."""
        names = {p.name: p.open_id for p in self.members}
        names[texts.SANDBOX_BOT_NAME] = BOT_OPEN_ID
        pattern = re.compile("@(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")")
        mentions: list[dict[str, str]] = []
        keys: dict[str, str] = {}

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in keys:
                keys[name] = f"@_user_{len(keys) + 1}"
                mentions.append({"key": keys[name], "open_id": names[name], "name": name})
            return keys[name]

        return pattern.sub(repl, text), mentions

    async def act(self, open_id: str, message_id: str, action: dict[str, Any]) -> dict[str, Any]:
        """A member clicks / submits on a card: a signed card.action.trigger callback; the answer's
        card replaces the clicked card, as Feishu does."""
        self.person(open_id)
        try:
            msg = self.fake.message(message_id)
        except KeyError:
            raise SandboxError(texts.SANDBOX_UNKNOWN_MESSAGE) from None
        if msg.chat_id != self.chat_id or msg.msg_type != "interactive":
            raise SandboxError(texts.SANDBOX_UNKNOWN_MESSAGE)
        await self.ready()
        payload = ev.card_action_event(chat_id=self.chat_id, message_id=message_id, operator_open_id=open_id,
                                       tag=str(action.get("tag") or "button"), value=action.get("value"),
                                       form_value=action.get("form_value"), name=action.get("name"),
                                       option=action.get("option"), **self._common())
        for key in ("options", "input_value", "checked"):   # standalone components' values
            if key in action:
                payload["event"]["action"][key] = action[key]
        if "timezone" in action:
            payload["event"]["action"]["timezone"] = action["timezone"]
        payload["event"]["token"] = self.fake.issue_card_token(message_id)  # for delayed updates
        before = set(self.state.tasks)
        started = time.monotonic()
        resp = await self._deliver(payload)
        elapsed = time.monotonic() - started
        if resp.status_code != 200:
            await self.settle(before)
            return {"toast": {"type": "error", "content": texts.SANDBOX_BOT_ERROR.format(status=resp.status_code)}}
        answer = resp.json()
        card = answer.get("card") if isinstance(answer, dict) else None
        if isinstance(card, dict) and card.get("type") == "raw" and isinstance(card.get("data"), dict):
            self._replace_card(message_id, card["data"])
        await self.settle(before)
        out: dict[str, Any] = {"toast": answer.get("toast"), "card_replaced": bool(card)}
        if elapsed > CALLBACK_DEADLINE:
            out["warning"] = texts.SANDBOX_SLOW_CALLBACK.format(seconds=elapsed)
        return out

    def _replace_card(self, message_id: str, card: dict[str, Any]) -> None:
        # What Feishu does with a callback answer's card; the fake has no endpoint for it because
        # the bot never asks for it — the card travels in the HTTP answer.
        self.fake.apply_callback_card(message_id, card)
        self._changes += 1

    # ------------------------------------------------------------ waiting for the bot
    async def settle(self, before: set[asyncio.Task[Any]], timeout: float = SETTLE_SECONDS) -> None:
        """Wait until what our request started is finished and this chat's due sends are out,
        so the page (and tests) see the bot's answer when the request returns."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        state = self.state
        while True:
            spawned = [t for t in state.tasks if t not in before and not t.done()]
            if spawned:
                await asyncio.wait(spawned, timeout=max(0.01, end - loop.time()))
            state.sender.kick()
            busy = await asyncio.to_thread(self._outbox_busy)
            if not busy or loop.time() >= end:
                return
            await asyncio.sleep(0.05)

    def _outbox_busy(self) -> bool:
        now = self.clock.now()
        with self.state.factory() as session:
            n = session.scalar(select(func.count(Outbox.id)).where(
                Outbox.tenant_key == self.tenant_key, Outbox.chat_id == self.chat_id,
                or_(Outbox.status == "sending", (Outbox.status == "pending") & (Outbox.due_at <= now))))
        return bool(n)

    # ------------------------------------------------------------ the clock
    def _active_case(self, session) -> Case | None:
        return session.scalars(select(Case).where(
            Case.tenant_key == self.tenant_key, Case.chat_id == self.chat_id, Case.status == "active")
            .order_by(Case.id.desc())).first()

    def standup_time(self) -> str:
        with self.state.factory() as session:
            case = self._active_case(session)
            return case.standup_time if case is not None and case.standup_time else "09:30"

    def next_standup(self) -> datetime:
        tz = self.settings.tz
        now = self.clock.now()
        hh, mm = (int(x) for x in self.standup_time().split(":"))
        with self.state.factory() as session:
            calendar = calendar_for(session, self.tenant_key)
        day = now.astimezone(tz).date()
        for _ in range(60):
            at = datetime.combine(day, dtime(hh, mm), tz)
            if at > now and calendar.is_workday(day):
                return at
            day += timedelta(days=1)
        return now + timedelta(days=1)

    def next_key_node_eve(self) -> datetime | None:
        """When the 进度确认会 of the next key node still more than 24 hours away is due: 24 hours
        before it, moved to working hours as the bot does."""
        now = self.clock.now()
        with self.state.factory() as session:
            at = session.scalar(select(func.min(KeyNode.at)).where(
                KeyNode.tenant_key == self.tenant_key, KeyNode.chat_id == self.chat_id,
                KeyNode.at > now + timedelta(hours=24)))
            if at is None:
                return None
            eve = keynode_check_slot(at, 24, calendar_for(session, self.tenant_key), self.state.settings.tz)
        return max(eve, now)

    async def advance(self, how: str) -> str:
        """Move the sandbox clock forward, then run the scheduler's ticks and deliver what fell due."""
        await self.ready()
        now = self.clock.now()
        if how == "quarter":   # the standup nudge falls due 15-minute steps after the prompt
            delta = timedelta(minutes=15)
        elif how == "hour":
            delta = timedelta(hours=1)
        elif how == "day":
            delta = timedelta(days=1)
        elif how == "standup":
            delta = await asyncio.to_thread(self.next_standup) - now
        elif how == "key_node":
            eve = await asyncio.to_thread(self.next_key_node_eve)
            if eve is None:
                raise SandboxError(texts.SANDBOX_NO_KEY_NODE)
            delta = eve - now
        else:
            raise SandboxError(texts.SANDBOX_BAD_CLOCK)
        self.clock.advance(max(delta, timedelta(0)))
        before = set(self.state.tasks)
        await self.state.ticker.run_all_now()
        await self.settle(before)
        return texts.SANDBOX_CLOCK_MOVED.format(time=self.now_label())

    def now_label(self) -> str:
        return self.clock.now().astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M")

    # ------------------------------------------------------------ what the page shows
    def transcript(self) -> list[dict[str, Any]]:
        tz = self.settings.tz
        out = []
        for m in self.fake.messages(self.chat_id):
            out.append({"message_id": m.message_id, "sender": m.sender, "msg_type": m.msg_type,
                        "content": m.content, "pinned": m.pinned, "updated": m.updated,
                        "parent_id": m.parent_id, "visible_to": m.visible_to,
                        "time": m.create_time.astimezone(tz).strftime("%m-%d %H:%M"),
                        "rev": m.update_time.isoformat()})
        return out

    def revision(self) -> str:
        """Changes whenever the group may look different: every Open API call the bot makes
        (sends, patches, pins…) and every message or callback card the page itself put in."""
        return f"{len(self.fake.calls)}.{self._changes}"

    def snapshot(self, since: str = "") -> dict[str, Any]:
        rev = self.revision()   # before reading: a change while we read shows up on the next poll
        if since and since == rev:
            return {"rev": rev, "now": self.now_label(), "unchanged": True}
        return {"rev": rev, "now": self.now_label(), "messages": self.transcript(),
                "feishu_tasks": self.feishu_tasks(), "feishu_board": self.feishu_board()}

    def feishu_tasks(self) -> list[dict[str, Any]]:
        """The fake's 飞书任务, as the page's read-only panel shows them."""
        names = {p.open_id: p.name for p in self.members}
        out = []
        for t in self.fake.tasks():
            assignees = [names.get(m["id"], m["id"]) for m in t.get("members", []) if m.get("role") == "assignee"]
            due = (t.get("due") or {}).get("timestamp")
            when = (datetime.fromtimestamp(int(due) / 1000, self.settings.tz).strftime("%m-%d %H:%M")
                    if due else "")
            out.append({"summary": t["summary"], "assignee": "、".join(assignees), "due": when,
                        "done": t.get("completed_at", "0") != "0"})
        return out

    def feishu_board(self) -> list[dict[str, Any]]:
        """The 任务 records of the fake's 多维表格 boards, as the page's read-only panel shows them."""
        names = {p.open_id: p.name for p in self.members}
        out = []
        for base in self.fake.bases():
            for table in base["tables"].values():
                if table["name"] != texts.BOARD_TABLE_TASKS:
                    continue
                for rec in table["records"].values():
                    if rec.get("_deleted"):
                        continue
                    f = rec["fields"]
                    owner = "、".join(names.get(p.get("id"), p.get("id")) for p in f.get("负责人") or [])
                    out.append({"task": f"#{f.get('编号', '')} {f.get('任务', '')}", "owner": owner,
                                "status": f.get("状态", ""), "progress": f.get("完成率", 0),
                                "lagging": bool(f.get("滞后"))})
        return out

    def page_config(self) -> dict[str, Any]:
        texts_ = dict(texts.SANDBOX_PAGE)
        texts_["clock_standup"] = texts_["clock_standup"].format(time=self.standup_time())
        return {"chat": {"id": self.chat_id, "name": texts.SANDBOX_CHAT_NAME},
                "timezone": self.settings.timezone,
                "tz_offset": self.clock.now().astimezone(self.settings.tz).strftime("%z"),
                "bot": {"open_id": BOT_OPEN_ID, "name": texts.SANDBOX_BOT_NAME},
                "members": [{"open_id": p.open_id, "name": p.name, "dept": p.dept} for p in self.members],
                "texts": texts_}


# ---------------------------------------------------------------- serving
class _FakeServer(uvicorn.Server):
    """The fake Open API's server leaves Ctrl+C to the bot's server (one handler per process)."""

    def capture_signals(self):  # type: ignore[override]
        return contextlib.nullcontext()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """The bot (with the page) on host:port and the fake Open API on a second loopback port,
    both served by this process's event loop."""

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
                 database_url: str | None = None, log_level: str = "info") -> None:
        self.fake_sock = _bind("127.0.0.1", 0)
        fake_url = f"http://127.0.0.1:{self.fake_sock.getsockname()[1]}"
        try:
            self.bot_sock = _bind(host, port)
        except OSError:
            self.fake_sock.close()
            raise
        self.sandbox = Sandbox(settings, fake_base_url=fake_url, database_url=database_url)
        self.host = host
        self.port = self.bot_sock.getsockname()[1]
        self.log_level = log_level
        self.bot_server = uvicorn.Server(uvicorn.Config(self.sandbox.app, log_level=log_level,
                                                        access_log=False, timeout_graceful_shutdown=3))
        self.fake_server = _FakeServer(uvicorn.Config(self.sandbox.fake.asgi_app(), lifespan="off",
                                                      log_level="warning", access_log=False))
        self._thread: threading.Thread | None = None
        self.booted = threading.Event()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/sandbox"

    async def serve(self) -> None:
        fake_task = asyncio.create_task(self.fake_server.serve(sockets=[self.fake_sock]))

        async def boot() -> None:
            try:
                await self.sandbox.boot()
            finally:
                self.booted.set()

        boot_task = asyncio.create_task(boot())
        try:
            await self.bot_server.serve(sockets=[self.bot_sock])
        finally:
            boot_task.cancel()
            self.fake_server.should_exit = True
            await asyncio.gather(fake_task, boot_task, return_exceptions=True)
            await self.sandbox.aclose()

    # ---- for tests: run in a background thread
    def start_in_thread(self, timeout: float = 60.0) -> "SandboxServer":
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), name="sandbox",
                                        daemon=True)
        self._thread.start()
        if not self.booted.wait(timeout):
            raise RuntimeError("sandbox did not start")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.bot_server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def serve_sandbox(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Entry point of `collab-bot serve` when no Feishu app is configured (or `--sandbox`)."""
    with tempfile.TemporaryDirectory(prefix="collab-bot-sandbox-") as tmp:
        database_url, shown = database_for(settings, tmp)
        try:
            server = SandboxServer(settings, host=host, port=port, database_url=database_url)
        except OSError as exc:
            print(f"{host}:{port}: {exc.strerror or exc}", flush=True)
            return 2
        for noisy in ("httpx", "apscheduler", "alembic"):   # one line per send / tick is too much here
            logging.getLogger(noisy).setLevel(logging.WARNING)
        print(texts.SANDBOX_STARTED.format(url=server.url, database=shown), flush=True)
        try:
            asyncio.run(server.serve())
        except KeyboardInterrupt:
            pass
    return 0


def database_for(settings: Settings, tmp_dir: str) -> tuple[str, str]:
    """(database URL, how to show it). A temporary SQLite file unless DATABASE_URL was set for
    the sandbox; `--sandbox` next to a configured Feishu app never touches that app's database."""
    if settings.database_url == DEFAULT_DATABASE_URL or settings.feishu_configured:
        return f"sqlite:///{tmp_dir}/sandbox.db", texts.SANDBOX_TEMP_DATABASE
    return settings.database_url, _redact(settings.database_url)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
