"""Handled inbox rows are deleted once Feishu can no longer redeliver them; within the window a
redelivered command is still recognised, and pending or failed rows are never deleted."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import _start
from bot.models import InboxEvent
from bot.settings import Settings
from feishu_fake import events as ev
from tests.driver import APP_ID, CHAT, LEAD, TENANT, VERIFICATION_TOKEN


def _command(world, text: str = "/帮助") -> dict:
    return ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=text, app_id=APP_ID, tenant_key=TENANT,
                            token=VERIFICATION_TOKEN, create_ms=int(world.clock.now().timestamp() * 1000))


def _ids(world) -> dict[str, str]:
    with world.state.factory() as s:
        return dict(s.execute(select(InboxEvent.event_id, InboxEvent.status)).all())


def test_done_rows_pruned_after_retention_others_kept(world):
    dispatcher, keep = world.state.dispatcher, timedelta(hours=world.settings.inbox_retention_hours)
    old = _command(world)
    assert world.post(old).status_code == 200
    world.drain()
    world.state.spawn = lambda coro: coro.close()  # this one is answered but never handled: pending
    stuck = _command(world)
    assert world.post(stuck).status_code == 200
    world.clock.advance(keep + timedelta(minutes=1))
    del world.state.spawn  # handled again after the answer
    recent = _command(world)
    assert world.post(recent).status_code == 200
    world.drain()
    old_id, stuck_id, recent_id = (p["header"]["event_id"] for p in (old, stuck, recent))
    assert _ids(world) == {old_id: "done", stuck_id: "pending", recent_id: "done"}
    cards_before = len(world.cards())

    assert dispatcher.prune_inbox(keep) == 1
    assert _ids(world) == {stuck_id: "pending", recent_id: "done"}
    # within the window a redelivery is still a duplicate: nothing is sent again
    assert world.post(recent).status_code == 200
    world.drain()
    assert len(world.cards()) == cards_before
    assert dispatcher.prune_inbox(keep) == 0


def test_prune_works_in_batches(world, monkeypatch):
    monkeypatch.setattr(type(world.state.dispatcher), "PRUNE_BATCH", 2)
    for _ in range(5):
        assert world.post(_command(world)).status_code == 200
    world.drain()
    world.clock.advance(timedelta(hours=25))
    assert world.state.dispatcher.prune_inbox(timedelta(hours=24)) == 5
    assert _ids(world) == {}


def test_retention_setting(monkeypatch):
    assert Settings(_env_file=None).inbox_retention_hours == 24
    monkeypatch.setenv("INBOX_RETENTION_HOURS", "48")
    assert Settings(_env_file=None).inbox_retention_hours == 48
    monkeypatch.setenv("INBOX_RETENTION_HOURS", "2")  # inside Feishu's ~7.1 h of retries
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_served_bot_prunes_hourly(world):
    async def start() -> list[tuple[str, float]]:
        await _start(world.state)
        world.state.ticker.shutdown()
        return world.state.ticker.ticks
    ticks = world.http.portal.call(start)
    assert ("inbox-prune", 3600) in ticks


def test_access_log_is_off_by_default(monkeypatch):
    assert Settings(_env_file=None).access_log is False
    monkeypatch.setenv("ACCESS_LOG", "true")
    assert Settings(_env_file=None).access_log is True


