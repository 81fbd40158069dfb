"""Exactly once, whatever happens to the bot: downtime (late once / skipped stale), two senders
sharing one database, a crash between claim and send or between send and done, and Feishu
throttling. Time is injected; no sleeping."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from bot import db, outbox, texts
from bot.models import Outbox
from bot.outbox import OutboxSender
from tests.driver import NAMES, TECH_DEV, TECH_HEAD, card_text, card_title, fits
from tests.racing import plan_ticks_at_once
from tests.test_reminders_standup import at, make_case, rows, run_until, standard_case, tick, titled

MSG_PATH = "/open-apis/im/v1/messages"


def sends_per_uuid(world) -> Counter:
    return Counter(c.uuid for c in world.fake.calls_to(MSG_PATH, "POST") if c.uuid and c.status == 200)


def test_down_across_the_standup_sends_it_once_marked_late(world):
    standard_case(world)
    tick(world)                                           # 09:00: rows planned, then the bot dies
    world.clock.set(at(2026, 12, 8, 10, 5))               # back at 10:05
    tick(world)
    tick(world)
    cards = titled(world, "今日站会")
    assert [card_title(m["content"]) for m in cards] == ["今日站会 · 12月8日（补发）"]
    row = [r for r in rows(world, "standup") if r.fire_key == "2026-12-08@09:30"][0]
    assert row.status == "sent" and row.late
    assert not [t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]  # no nudge on the heels of a late standup
    run_until(world, at(2026, 12, 8, 10, 35), timedelta(minutes=5))   # the late standup keeps its nudge
    assert len([t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]) == 1
    run_until(world, at(2026, 12, 8, 11, 10), timedelta(minutes=5))
    assert len(titled(world, "进度跟踪表")) == 1 and len(titled(world, "今日站会")) == 1


def test_down_until_afternoon_skips_the_stale_standup_explicitly(world):
    standard_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 8, 13, 0))
    tick(world)
    assert titled(world, "今日站会") == []
    status = {r.kind: r.status for r in rows(world) if r.fire_key == "2026-12-08@09:30"}
    assert status == {"standup": "skipped_stale", "standup_nudge": "skipped_stale", "standup_close": "sent"}


def test_down_overnight_yesterdays_standup_skipped_todays_on_time(world):
    standard_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 9, 9, 0))                # a whole day down
    tick(world)
    assert titled(world, "今日站会") == []
    run_until(world, at(2026, 12, 9, 9, 30), timedelta(minutes=10))
    assert [card_title(m["content"]) for m in titled(world, "今日站会")] == ["今日站会 · 12月9日"]
    by_key = {(r.kind, r.fire_key): r.status for r in rows(world)}
    assert by_key[("standup", "2026-12-08@09:30")] == "skipped_stale"
    assert by_key[("standup_close", "2026-12-08@09:30")] == "skipped_stale"


def test_key_node_due_during_downtime_goes_out_late_once(world):
    make_case(world, nodes=[("上线", at(2026, 12, 9, 12))], standup_paused=True)
    tick(world)
    world.clock.set(at(2026, 12, 8, 12, 30))              # due 12:00, back at 12:30
    tick(world)
    tick(world)
    assert [card_title(m["content"]) for m in titled(world, "进度确认会")] == [
        "上线前 23 小时 30 分 · 进度确认会（补发）"]


def test_crash_between_claim_and_send(world):
    standard_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 8, 9, 30))
    claimed = outbox.claim_due(world.state.factory, me="dead-worker", now=world.clock.now())
    assert claimed                                        # claimed, then the process died
    world.drain()
    assert titled(world, "今日站会") == []                # leased to the dead worker
    world.clock.advance(outbox.LEASE + timedelta(seconds=1))
    world.drain()
    assert len(titled(world, "今日站会")) == 1


def test_crash_between_send_and_done_is_deduplicated_by_uuid(world, monkeypatch):
    standard_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 8, 9, 30))
    real_finish = OutboxSender._finish_row

    def die(self, *args, **kwargs):
        raise RuntimeError("killed after the API call")

    monkeypatch.setattr(OutboxSender, "_finish_row", die)
    try:
        world.drain()
    except RuntimeError:
        pass
    monkeypatch.setattr(OutboxSender, "_finish_row", real_finish)
    assert len(titled(world, "今日站会")) == 1            # Feishu has it; our row still says "sending"
    world.clock.advance(outbox.LEASE + timedelta(seconds=1))
    world.drain()
    assert len(titled(world, "今日站会")) == 1            # resent with the same uuid: no second message
    row = [r for r in rows(world, "standup") if r.fire_key == "2026-12-08@09:30"][0]
    assert row.status == "sent" and row.attempts == 2


def test_two_senders_share_one_database_without_duplicates(world):
    chats = [f"oc_chat_{i:03d}" for i in range(40)]
    for chat in chats:
        world.fake.add_chat(chat, members=list(NAMES.items()))
        make_case(world, chat=chat, tasks=[(TECH_HEAD, "接口开发", at(2026, 12, 11, 18))])
    tick(world)
    world.clock.set(at(2026, 12, 8, 9, 30))
    engines = [db.make_engine(world.settings.database_url) for _ in range(2)]
    senders = [OutboxSender(db.make_sessionmaker(e), world.state.client, world.clock, me=f"replica-{i}",
                            renderers=world.state.sender.renderers, context=world.state.sender.context)
               for i, e in enumerate(engines)]

    async def both():
        return await asyncio.gather(*(s.run_once(batch=7) for s in senders))

    try:
        results = world.http.portal.call(both)
    finally:
        for e in engines:
            e.dispose()
    sent = [d.row_id for r in results for d in r if d.status == "sent"]
    assert len(sent) == len(set(sent)) == 40
    assert all(results), "both replicas took part"
    assert set(sends_per_uuid(world).values()) == {1}
    for chat in chats:
        assert len([m for m in world.cards(chat) if "今日站会" in card_title(m["content"])]) == 1
    with world.state.factory() as s:
        claimers = set(s.scalars(select(Outbox.claimed_by).where(Outbox.kind == "standup", Outbox.status == "sent")))
    assert claimers == {"replica-0", "replica-1"}


def test_two_planners_racing_create_each_row_once(world):
    from handlers.jobs import plan_tick

    standard_case(world)
    results = plan_ticks_at_once(world, 2)
    crashed = [r for r in results if isinstance(r, BaseException)]
    assert not crashed, f"a racing planner failed: {crashed!r}"
    assert all(isinstance(r, int) for r in results), results
    keys = [(r.kind, r.fire_key) for r in rows(world)]      # what the racers planned, before any tick
    assert keys, "the racing planners planned nothing"
    assert len(keys) == len(set(keys)), Counter(keys).most_common(3)
    assert sum(results) >= len(keys)                      # the racers, not a later tick, created them
    # a third planner finds nothing to add
    assert plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router) == 0
    assert [(r.kind, r.fire_key) for r in rows(world)] == keys


def test_rate_limited_fake_still_delivers_once(world):
    standard_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 8, 9, 30))

    async def no_sleep(_seconds):
        return None

    world.state.client._sleep = no_sleep
    world.fake.fail_next(1, status=429, reset=2)
    world.fake.fail_next(1, status=400, code=230020)
    world.fake.fail_next(1, status=503)
    world.drain()
    assert len(titled(world, "今日站会")) == 1
    assert len(world.fake.calls_to(MSG_PATH, "POST")) == 4   # 3 refused + 1 accepted, same uuid
    assert set(sends_per_uuid(world).values()) == {1}


def test_a_task_reminder_that_comes_up_in_the_evening_waits_for_the_working_morning(world):
    """Down Friday 16:50 → 18:40: the overdue notice for a task due Friday 17:00 and the warning
    for one due Monday 10:00 (its time: Friday 18:00) are not sent on Friday evening nor over the
    weekend; both go out Monday 09:00, marked late, the warning with the real time left."""
    world.clock.set(at(2026, 12, 11, 9, 0))
    make_case(world, tasks=[(TECH_HEAD, "接口开发", at(2026, 12, 11, 17)),
                            (TECH_DEV, "联调测试", at(2026, 12, 14, 10))], standup_paused=True)
    run_until(world, at(2026, 12, 11, 16, 50), timedelta(minutes=10))
    before = len(world.messages())
    world.clock.set(at(2026, 12, 11, 18, 40))               # back after working hours
    run_until(world, at(2026, 12, 14, 8, 55), timedelta(minutes=30))
    late = [(card_title(m["content"])) for m in world.messages()[before:] if m["msg_type"] == "interactive"]
    assert late == [] and len(world.messages()) == before, late
    run_until(world, at(2026, 12, 14, 9, 5), timedelta(minutes=5))
    [card] = [m for m in world.messages()[before:] if m["msg_type"] == "interactive"]   # due together: one card
    assert hm_local(world.clock.now()) == "Mon 09:05"
    text = card_text(card["content"])
    assert card_title(card["content"]) == "任务已逾期（补发）"
    assert "接口开发" in text and "任务即将到期（补发）" in text
    assert "联调测试" in text and "12月14日（周一）10:00" in text and "还剩 1 个工作小时" in text
    status = {(r.kind, r.fire_key): r.status for r in rows(world) if r.kind in ("task_due", "overdue")}
    assert {status[("overdue", "over@20261211T0900Z")], status[("task_due", "due@20261211T1000Z")]} <= \
        {"sent", "bundled"}, status                               # delivered, neither cancelled nor skipped


def hm_local(when) -> str:
    from tests.test_reminders_standup import SH
    return when.astimezone(SH).strftime("%a %H:%M")
