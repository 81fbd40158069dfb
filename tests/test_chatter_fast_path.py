"""Group chatter is answered without a database transaction; commands, @mentions of the bot and
card callbacks keep the durable inbox (exactly once, 503 when the database is down)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from bot import texts
from bot.chatter import EVERY_MESSAGE, is_chatter
from bot.envelope import parse_event
from bot.models import InboxEvent, Outbox, Person
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, LEAD, TECH_HEAD, TENANT, VERIFICATION_TOKEN, FeishuWorld

STRANGER, STRANGER_NAME = "ou_stranger_1", "孙悦"


def _msg(world, text: str, *, user: str = LEAD, mentions: list[dict] | None = None, **kw) -> dict:
    return ev.message_event(chat_id=CHAT, sender_open_id=user, text=text, mentions=mentions, app_id=APP_ID,
                            tenant_key=TENANT, token=VERIFICATION_TOKEN,
                            create_ms=int(world.clock.now().timestamp() * 1000), **kw)


@contextmanager
def statements(world):
    """Every SQL statement the bot sends while the block runs (the answer and the work after it)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)
    event.listen(world.state.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(world.state.engine, "before_cursor_execute", record)


def _settle(world) -> None:
    """Wait for the work after the answers (not the outbox sender: that is not the request's)."""
    async def _wait() -> None:
        import asyncio

        while world.state.tasks:
            await asyncio.gather(*list(world.state.tasks), return_exceptions=True)
    world.http.portal.call(_wait)


def _post(world, payload: dict) -> int:
    status = world.post(payload).status_code
    _settle(world)
    return status


def _inbox_rows(world) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent))


def _outbox_rows(world) -> int:
    with world.state.factory() as s:
        return s.scalar(select(func.count()).select_from(Outbox))


def test_chatter_sends_no_statement_and_stores_nothing(world):
    before = _inbox_rows(world)
    payload = _msg(world, "大家早上好，今天继续推进")
    with statements(world) as seen:
        assert _post(world, payload) == 200
        assert _post(world, payload) == 200  # Feishu's redelivery of the same event
        assert _post(world, _msg(world, "好的", message_id=payload["event"]["message"]["message_id"])) == 200
    assert seen == []
    world.drain()
    assert _inbox_rows(world) == before and world.messages() == []


def test_names_from_chatter_are_written_in_one_batch_and_only_once(world):
    mention = [{"key": "@_user_1", "open_id": STRANGER, "name": STRANGER_NAME},
               {"key": "@_user_2", "open_id": TECH_HEAD, "name": "李娜"}]
    with statements(world) as seen:
        # concurrent chatter (sent without waiting for the work after each answer) shares one write
        for _ in range(5):
            assert world.post(_msg(world, "@_user_1 @_user_2 明天见", mentions=mention)).status_code == 200
        _settle(world)
    commits = [s for s in seen if s.strip().upper().startswith(("INSERT", "UPDATE"))]
    assert 1 <= len(commits) <= 2  # the two names, once
    with world.state.factory() as s:
        names = dict(s.execute(select(Person.open_id, Person.name).where(Person.tenant_key == TENANT)).all())
    assert names[STRANGER] == STRANGER_NAME and names[TECH_HEAD] == "李娜"
    with statements(world) as seen:  # known names: nothing to write
        assert _post(world, _msg(world, "@_user_1 @_user_2 收到", mentions=mention)) == 200
    assert seen == []
    renamed = [{"key": "@_user_1", "open_id": STRANGER, "name": "孙悦悦"}]
    assert _post(world, _msg(world, "@_user_1 改名了", mentions=renamed)) == 200
    with world.state.factory() as s:
        assert s.scalar(select(Person.name).where(Person.open_id == STRANGER)) == "孙悦悦"
    assert _inbox_rows(world) == 0


def test_command_keeps_the_inbox_and_runs_exactly_once(world):
    payload = _msg(world, "/帮助")
    assert _post(world, payload) == 200
    assert _post(world, payload) == 200  # same event_id
    again = _msg(world, "/帮助", message_id=payload["event"]["message"]["message_id"])  # long-connection backfill
    assert _post(world, again) == 200
    world.drain()
    assert len(world.cards()) == 1
    with world.state.factory() as s:
        row = s.get(InboxEvent, payload["header"]["event_id"])
        assert row is not None and row.status == "done"
    assert _inbox_rows(world) == 1


def test_mentioning_the_bot_takes_the_durable_path(world):
    bot = world.fake.bot_open_id
    payload = _msg(world, "@_user_1 在吗", mentions=[{"key": "@_user_1", "open_id": bot, "name": "协作助手"}])
    assert _post(world, payload) == 200
    assert _post(world, payload) == 200
    world.drain()
    assert world.texts() == [texts.ADDRESSED_HINT]
    assert _inbox_rows(world) == 1


def test_before_the_bot_knows_its_open_id_any_mention_is_stored(world):
    world.state.dispatcher.bot_open_id = ""
    mention = [{"key": "@_user_1", "open_id": STRANGER, "name": STRANGER_NAME}]
    assert _post(world, _msg(world, "@_user_1 你好", mentions=mention)) == 200
    assert _post(world, _msg(world, "没有提到任何人")) == 200
    assert _inbox_rows(world) == 1


def test_database_down_chatter_answered_command_503(tmp_path, clock):
    bad = tmp_path / "nodb"
    bad.mkdir()
    world = FeishuWorld(f"sqlite:///{bad}", clock)
    try:
        mention = [{"key": "@_user_1", "open_id": STRANGER, "name": STRANGER_NAME}]
        assert world.post(_msg(world, "@_user_1 午饭吃什么", mentions=mention)).status_code == 200
        _settle(world)  # the name write fails quietly; nothing to retry for Feishu
        assert world.post(_msg(world, "/帮助")).status_code == 503
        mention_bot = [{"key": "@_user_1", "open_id": world.fake.bot_open_id, "name": "协作助手"}]
        assert world.post(_msg(world, "@_user_1 在吗", mentions=mention_bot)).status_code == 503
    finally:
        world.close()


def test_a_handler_for_every_message_turns_the_fast_path_off(world):
    seen = []
    world.state.dispatcher.router.events[EVERY_MESSAGE] = lambda ctx, e: seen.append(e)
    try:
        assert _post(world, _msg(world, "随便聊聊")) == 200
    finally:
        del world.state.dispatcher.router.events[EVERY_MESSAGE]
    assert _inbox_rows(world) == 1  # stored (the dispatcher does not call it yet, but it is kept)


SAMPLES = [
    ("大家早上好", None, "user"),
    ("@_user_1 看一下这个", [{"key": "@_user_1", "open_id": STRANGER, "name": STRANGER_NAME}], "user"),
    ("  @_user_1  ", [{"key": "@_user_1", "open_id": TECH_HEAD, "name": "李娜"}], "user"),
    ("/帮助", None, "app"),  # another bot's message, even a command
    ("路径是 a/b", None, "user"),
    ("＼问题 全角", None, "user"),
]


@pytest.mark.parametrize("text,mentions,sender_type", SAMPLES)
def test_what_the_fast_path_skips_changes_nothing_on_the_durable_path(world, text, mentions, sender_type):
    """The classification agrees with the dispatcher: each message it calls chatter, handled the
    durable way, sends nothing and leaves no outbox row."""
    payload = _msg(world, text, mentions=mentions)
    payload["event"]["sender"]["sender_type"] = sender_type
    parsed = parse_event(payload)
    dispatcher = world.state.dispatcher
    assert is_chatter(parsed, bot_open_id=dispatcher.bot_open_id, every_message_handled=False)
    assert dispatcher.store(payload, parsed) is True
    assert dispatcher.process(payload["header"]["event_id"]) is None
    world.drain()
    assert _outbox_rows(world) == 0 and world.messages() == []


@pytest.mark.parametrize("text", ["/帮助", "@_user_1 /进度", "/不存在的命令"])
def test_commands_are_never_chatter(world, text):
    mention = [{"key": "@_user_1", "open_id": STRANGER, "name": STRANGER_NAME}]
    parsed = parse_event(_msg(world, text, mentions=mention))
    assert not is_chatter(parsed, bot_open_id=world.fake.bot_open_id, every_message_handled=False)


def test_the_app_does_not_ask_for_telemetry_on_every_request(world):
    """The bot exports no OpenTelemetry: FastAPI's native telemetry stays off, so a chatter
    message does not pay for asking the global providers whether anyone listens."""
    from bot.app import NO_TELEMETRY

    config = world.app._telemetry
    assert {k: config[k] for k in NO_TELEMETRY} == NO_TELEMETRY
