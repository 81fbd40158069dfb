"""The durable inbox: answered after storing, finished after a crash, 503 when the DB is down."""
from __future__ import annotations

import logging
import re

from sqlalchemy import select

from bot.models import InboxEvent
from feishu_fake import events as ev
from tests.driver import APP_ID, APP_SECRET, CHAT, ENCRYPT_KEY, LEAD, TENANT, VERIFICATION_TOKEN, FeishuWorld


def _msg(world, text="/帮助"):
    return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=text, app_id=APP_ID, tenant_key=TENANT,
                            token=VERIFICATION_TOKEN, create_ms=int(world.clock.now().timestamp() * 1000))


def test_message_answered_before_handling(world):
    """The 200 comes back while the event is still pending; the work happens after."""
    world.state.spawn = lambda coro: coro.close()  # the process "dies" right after answering
    payload = _msg(world)
    assert world.post(payload).status_code == 200
    with world.state.factory() as s:
        row = s.get(InboxEvent, payload["header"]["event_id"])
        assert row is not None and row.status == "pending"
    assert world.cards() == []


def test_restart_finishes_unprocessed_events(database_url, clock):
    first = FeishuWorld(database_url, clock)
    first.state.spawn = lambda coro: coro.close()  # crash after the 200
    payload = _msg(first)
    assert first.post(payload).status_code == 200
    first.close()

    second = FeishuWorld(database_url, clock, fake=first.fake)  # the restarted process
    try:
        assert second.state.dispatcher.process_pending() == 1
        second.drain()
        assert len(first.fake.visible(CHAT)) >= 1
        assert any(m["msg_type"] == "interactive" for m in first.fake.visible(CHAT) if m["sender"] == "bot")
        assert second.state.dispatcher.process_pending() == 0  # not twice
    finally:
        second.close()


def test_database_down_answers_503_and_health_reports_it(tmp_path, clock):
    # A database that cannot be opened (a directory path): every connection fails.
    bad = tmp_path / "nodb"
    bad.mkdir()
    world = FeishuWorld(f"sqlite:///{bad}", clock)
    try:
        assert world.post(_msg(world)).status_code == 503
        resp = world.http.get("/healthz")
        assert resp.status_code == 503 and resp.json() == {"database": "unreachable"}
    finally:
        world.close()


def test_health_ok(world):
    resp = world.http.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"database": "ok"}
    assert ENCRYPT_KEY not in resp.text


def test_handler_crash_is_logged_with_a_reference_not_shown(world, caplog, monkeypatch):
    from handlers import general

    def boom(ctx, event, args):
        raise RuntimeError("secret internals")

    monkeypatch.setitem(world.state.dispatcher.router.commands, "/帮助", boom)
    with caplog.at_level(logging.ERROR):
        assert world.say(LEAD, "/帮助").status_code == 200
    texts = world.texts()
    assert texts and "编号" in texts[-1] and "secret internals" not in texts[-1]
    assert "secret internals" in caplog.text
    with world.state.factory() as s:
        assert s.scalar(select(InboxEvent.status)) == "dead"
    assert general  # the real handler module is importable


def test_secrets_never_logged(database_url, clock, caplog):
    with caplog.at_level(logging.DEBUG):
        world = FeishuWorld(database_url, clock)
        try:
            world.say(LEAD, "/帮助")
            world.post(_msg(world), timestamp=0)  # a rejected one too
            repr(world.settings)
        finally:
            world.close()
    logged = caplog.text + repr(world.settings)
    for secret in (APP_SECRET, ENCRYPT_KEY, VERIFICATION_TOKEN):
        assert secret not in logged
    assert "t-" + "fake" not in logged


def test_database_down_at_start_then_recovers(tmp_path, clock, monkeypatch):
    """F4: no crash loop; 503 and an unhealthy /healthz while the database is away; once it is
    back the schema is upgraded, the clock starts and events are accepted again."""
    import bot.app as app_module
    from tests.driver import make_settings

    monkeypatch.setattr(app_module, "DB_RETRY_SECONDS", 0.05)
    missing_dir = tmp_path / "not-yet"
    settings = make_settings(f"sqlite:///{missing_dir}/bot.db")
    world = FeishuWorld(settings.database_url, clock)  # a database file whose folder does not exist
    try:
        state = world.state
        task = world.http.portal.call(lambda: _spawn_start(state))
        assert world.post(_msg(world)).status_code == 503
        assert world.http.get("/healthz").status_code == 503
        assert not state.ready.is_set()
        missing_dir.mkdir()                      # the database comes back
        world.http.portal.call(_wait_ready, state)
        assert world.http.get("/healthz").status_code == 200
        assert world.post(_msg(world)).status_code == 200
        assert task is not None
    finally:
        world.state.ticker.shutdown()
        world.close()


async def _spawn_start(state):
    import bot.app as app_module

    return state.spawn(app_module._start(state))


async def _wait_ready(state):
    import asyncio

    await asyncio.wait_for(state.ready.wait(), timeout=20)


# ---------------------------------------------------------------- card callbacks: one transaction
def _progress_click(world):
    """A case in step 5 with its card posted; the click that sends TECH_DEV's 更新进度 form."""
    from tests.casefactory import make_case_at_step4, make_plan_published
    from tests.driver import TECH_DEV, find_button

    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    make_plan_published(world.state.factory, case_id, now=world.clock.now())
    world.say(LEAD, "/进度")
    mid = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    return ev.card_action_event(chat_id=CHAT, message_id=mid, operator_open_id=TECH_DEV, app_id=APP_ID,
                                tenant_key=TENANT, token=VERIFICATION_TOKEN,
                                create_ms=int(world.clock.now().timestamp() * 1000),
                                value=find_button(world.card(mid), "更新我的进度"))


def _immediate_rows(world, event_id):
    from bot.models import Outbox

    with world.state.factory() as s:
        return s.scalars(select(Outbox.fire_key).where(Outbox.fire_key.startswith(event_id))).all()


def test_a_click_is_stored_done_with_what_it_sends_and_a_redelivery_does_nothing(world):
    payload = _progress_click(world)
    event_id = payload["header"]["event_id"]
    first = world.post(payload)
    assert first.status_code == 200 and first.json()["toast"]["type"] == "info"
    with world.state.factory() as s:
        row = s.get(InboxEvent, event_id)
        assert row is not None and row.status == "done" and row.attempts == 1
    assert _immediate_rows(world, event_id) == [f"{event_id}#0"]   # the private form, once
    again = world.post(payload)
    assert again.status_code == 200 and again.json() == {}
    assert _immediate_rows(world, event_id) == [f"{event_id}#0"]


def test_the_same_click_delivered_twice_at_once_is_handled_once(world):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bot.envelope import parse_event

    payload = _progress_click(world)
    event = parse_event(payload)
    barrier = threading.Barrier(4)

    def deliver(_i):
        barrier.wait()
        return world.state.dispatcher.callback(payload, event)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(deliver, range(4)))
    handled = [a for a in answers if a is not None]
    assert len(handled) == 1 and handled[0].toast_type == "info", answers
    assert _immediate_rows(world, payload["header"]["event_id"]) == [f"{payload['header']['event_id']}#0"]


def test_a_click_whose_handler_fails_is_parked_with_a_reference(world, caplog, monkeypatch):
    payload = _progress_click(world)

    def boom(ctx, event, value):
        raise RuntimeError("secret internals")

    monkeypatch.setitem(world.state.dispatcher.router.actions, "track.open", boom)
    with caplog.at_level(logging.ERROR):
        answer = world.post(payload).json()
    assert answer["toast"]["type"] == "error" and "secret internals" not in answer["toast"]["content"]
    assert "secret internals" in caplog.text
    with world.state.factory() as s:
        row = s.get(InboxEvent, payload["header"]["event_id"])
        ref = re.search(r"编号 (\w+)", answer["toast"]["content"]).group(1)
        assert row is not None and row.status == "dead" and row.last_error == f"ref {ref}"
    assert _immediate_rows(world, payload["header"]["event_id"]) == []   # nothing it half did is sent


def test_a_click_while_the_database_is_down_answers_503(tmp_path, clock):
    bad = tmp_path / "nodb"
    bad.mkdir()
    world = FeishuWorld(f"sqlite:///{bad}", clock)
    try:
        payload = ev.card_action_event(chat_id=CHAT, message_id="om_x", operator_open_id=LEAD, app_id=APP_ID,
                                       tenant_key=TENANT, token=VERIFICATION_TOKEN,
                                       create_ms=int(clock.now().timestamp() * 1000), value={"a": "track.open", "c": 1})
        assert world.post(payload).status_code == 503
    finally:
        world.close()
