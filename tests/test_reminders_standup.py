"""Daily standup: working days only (2026 calendar), mentions, 今日无变化, one nudge, the lead sees who
is missing, the 《进度跟踪表》 after the window, and /站会 rescheduling. Time is a ManualClock."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot import texts
from bot.models import Case, KeyNode, Outbox, StandupReply, Task
from handlers.jobs import plan_tick
from tests.driver import (
    CHAT,
    DESIGN_HEAD,
    LEAD,
    OTHER_CHAT,
    TECH_DEV,
    TECH_HEAD,
    TENANT,
    card_text,
    card_title,
    fits,
    has_submit,
)

SH = ZoneInfo("Asia/Shanghai")


def at(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(timezone.utc)


def make_case(world, *, tasks=(), nodes=(), chat=CHAT, step=5, entered=None, **fields) -> int:
    """A case in step `step` with tasks [(owner, content, due)] and key nodes [(name, at)]."""
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        seq = len(list(s.scalars(select(Case.id).where(Case.chat_id == chat)))) + 1
        case = Case(tenant_key=TENANT, chat_id=chat, seq=seq, title="新品推广页面延迟", step=step,
                    opener_open_id=LEAD, lead_open_id=LEAD, created_at=now, updated_at=now,
                    step_entered_at=entered or now - timedelta(days=1), **fields)
        s.add(case)
        s.flush()
        for i, (owner, content, due) in enumerate(tasks, start=1):
            s.add(Task(tenant_key=TENANT, chat_id=chat, case_id=case.id, seq=i, content=content,
                       owner_open_id=owner, start_at=now - timedelta(days=2), due_at=due,
                       delivery_standard="可上线", status="doing", progress=30, updated_at=now))
        for name, when in nodes:
            s.add(KeyNode(tenant_key=TENANT, chat_id=chat, case_id=case.id, name=name, at=when))
        return case.id


def tick(world) -> None:
    plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router)
    world.drain()


def run_until(world, end: datetime, step: timedelta = timedelta(minutes=15)) -> None:
    while world.clock.now() < end:
        world.clock.set(min(end, world.clock.now() + step))
        tick(world)


def titled(world, part: str, chat=CHAT) -> list[dict]:
    return [m for m in world.cards(chat) if part in card_title(m["content"])]


def rows(world, kind: str | None = None) -> list[Outbox]:
    with world.state.factory() as s:
        q = select(Outbox).where(Outbox.kind != "immediate")
        if kind:
            q = q.where(Outbox.kind == kind)
        return list(s.scalars(q.order_by(Outbox.id)))


def standard_case(world) -> int:
    return make_case(world, tasks=[(TECH_HEAD, "接口开发", at(2026, 12, 11, 18)),
                                   (DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 18)),
                                   (TECH_DEV, "联调测试", at(2026, 12, 14, 18))])


# ---------------------------------------------------------------- the morning
def test_standup_at_0930_mentions_owners_and_goes_out_once(world):
    standard_case(world)
    tick(world)
    assert titled(world, "今日站会") == []           # 09:00: not yet
    run_until(world, at(2026, 12, 8, 9, 30), timedelta(minutes=10))
    cards = titled(world, "今日站会")
    assert len(cards) == 1
    text = card_text(cards[0]["content"])
    assert "12月8日" in card_title(cards[0]["content"]) and "补发" not in card_title(cards[0]["content"])
    for who in (TECH_HEAD, DESIGN_HEAD, TECH_DEV):
        assert f"<at id={who}></at>" in text
    assert "接口开发" in text
    tick(world)
    world.clock.advance(timedelta(minutes=5))
    tick(world)
    assert len(titled(world, "今日站会")) == 1       # re-planning never sends it again


def test_no_change_button_records_reply_and_nudge_lists_only_missing(world):
    standard_case(world)
    run_until(world, at(2026, 12, 8, 9, 30), timedelta(minutes=30))
    msg = titled(world, "今日站会")[0]
    answer = world.press(TECH_HEAD, msg["message_id"], "今日无变化")
    assert answer["toast"]["content"] == texts.STANDUP_REPLIED
    again = world.press(TECH_HEAD, msg["message_id"], "今日无变化")
    assert again["toast"]["content"] == texts.STANDUP_ALREADY
    outsider = world.press(LEAD, msg["message_id"], "今日无变化")
    assert outsider["toast"]["type"] == "info" and fits(texts.STANDUP_NOT_OWNER, outsider["toast"]["content"])
    with world.state.factory() as s:
        assert s.scalars(select(StandupReply.open_id)).all() == [TECH_HEAD]
    assert "✅ 已回复" in card_text(world.card(msg["message_id"]))
    run_until(world, at(2026, 12, 8, 10, 0), timedelta(minutes=10))
    nudges = [t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]
    assert len(nudges) == 1
    assert DESIGN_HEAD in nudges[0] and TECH_DEV in nudges[0] and TECH_HEAD not in nudges[0]
    footer = card_text(world.card(msg["message_id"]))   # the lead sees who is missing on the card
    assert "未回复" in footer and f"<at id={DESIGN_HEAD}></at>" in footer.split("未回复")[1]
    run_until(world, at(2026, 12, 8, 12, 0), timedelta(minutes=10))
    assert len([t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]) == 1  # one nudge only
    assert len(titled(world, "进度跟踪表")) == 1                           # after the window
    assert "站会已结束" in card_text(world.card(msg["message_id"]))


def test_update_button_opens_the_owners_form(world):
    standard_case(world)
    run_until(world, at(2026, 12, 8, 9, 30), timedelta(minutes=30))
    msg = titled(world, "今日站会")[0]
    before = len(world.cards())
    answer = world.press(TECH_DEV, msg["message_id"], "更新我的进度")
    assert answer.get("toast", {}).get("type") != "error", answer
    assert len(world.cards()) == before                       # nothing new for the whole group
    assert has_submit(world.form_of(TECH_DEV))                # the form, for the owner only


def test_nobody_missing_means_no_nudge(world):
    make_case(world, tasks=[(TECH_HEAD, "接口开发", at(2026, 12, 11, 18))])
    run_until(world, at(2026, 12, 8, 9, 30), timedelta(minutes=30))
    world.press(TECH_HEAD, titled(world, "今日站会")[0]["message_id"], "今日无变化")
    run_until(world, at(2026, 12, 8, 11, 0), timedelta(minutes=10))
    assert not [t for t in world.texts() if fits(texts.STANDUP_NUDGE, t)]
    assert [r.status for r in rows(world, "standup_nudge") if r.fire_key.startswith("2026-12-08")] == ["cancelled"]


# ---------------------------------------------------------------- the calendar
def test_national_day_and_tiaoxiu_saturday(world):
    world.clock.set(at(2026, 9, 29, 8))
    make_case(world, tasks=[(TECH_HEAD, "接口开发", at(2026, 12, 31, 18))])
    run_until(world, at(2026, 10, 12, 12), timedelta(minutes=30))
    days = sorted(r.fire_key[:10] for r in rows(world, "standup") if r.status == "sent")
    assert days == ["2026-09-29", "2026-09-30", "2026-10-08", "2026-10-09", "2026-10-10", "2026-10-12"]
    assert len(titled(world, "今日站会")) == 6


def test_spring_festival_saturday_0214(world):
    world.clock.set(at(2026, 2, 13, 8))
    make_case(world, tasks=[(TECH_HEAD, "接口开发", at(2026, 3, 31, 18))])
    run_until(world, at(2026, 2, 16, 12), timedelta(minutes=30))
    days = sorted(r.fire_key[:10] for r in rows(world, "standup") if r.status == "sent")
    assert days == ["2026-02-13", "2026-02-14"]  # Sat 02-14 works; Sun 02-15 and 除夕 02-16 do not


def test_tenant_override_cancels_a_day(world):
    from bot.models import CalendarOverride

    with world.state.factory() as s, s.begin():
        s.add(CalendarOverride(tenant_key=TENANT, day=date(2026, 12, 9), is_workday=False, note="司庆"))
    standard_case(world)
    run_until(world, at(2026, 12, 10, 10), timedelta(minutes=30))
    days = sorted(r.fire_key[:10] for r in rows(world, "standup") if r.status == "sent")
    assert days == ["2026-12-08", "2026-12-10"]


# ---------------------------------------------------------------- /站会
def test_standup_time_change_reschedules(world):
    standard_case(world)
    tick(world)
    world.say(LEAD, "/站会 时间 10:00")
    assert any("10:00" in t for t in world.texts())
    old = [r for r in rows(world, "standup") if r.fire_key == "2026-12-08@09:30"]
    assert old and old[0].status == "cancelled"
    run_until(world, at(2026, 12, 8, 9, 45), timedelta(minutes=5))
    assert titled(world, "今日站会") == []
    run_until(world, at(2026, 12, 8, 10, 0), timedelta(minutes=5))
    assert len(titled(world, "今日站会")) == 1
    # after today's went out, another change does not send a second one today
    world.say(LEAD, "/站会 时间 11:00")
    run_until(world, at(2026, 12, 8, 12, 0), timedelta(minutes=15))
    assert len(titled(world, "今日站会")) == 1
    run_until(world, at(2026, 12, 9, 11, 0), timedelta(minutes=30))
    assert [r.fire_key for r in rows(world, "standup") if r.status == "sent"] == \
        ["2026-12-08@10:00", "2026-12-09@11:00"]


def test_pause_and_resume(world):
    standard_case(world)
    tick(world)
    world.say(LEAD, "/站会 暂停")
    run_until(world, at(2026, 12, 8, 12), timedelta(minutes=30))
    assert titled(world, "今日站会") == []
    world.say(LEAD, "/站会 暂停")
    assert world.texts()[-1] == texts.STANDUP_ALREADY_PAUSED
    world.say(LEAD, "/站会 恢复")
    run_until(world, at(2026, 12, 9, 10), timedelta(minutes=30))
    assert [card_title(m["content"]) for m in titled(world, "今日站会")] == ["今日站会 · 12月9日"]


def test_standup_command_rules(world):
    standard_case(world)
    world.say(TECH_HEAD, "/站会 暂停")
    assert world.texts()[-1] == texts.NOT_LEAD
    world.say(LEAD, "/站会 时间 25:61")
    assert world.texts()[-1] == texts.STANDUP_BAD_TIME.format(value="25:61")
    world.say(LEAD, "/站会")
    assert fits(texts.STANDUP_STATUS, world.texts()[-1]) and "09:30" in world.texts()[-1]
    with world.state.factory() as s:
        case = s.scalars(select(Case)).one()
        assert (case.standup_time, case.standup_paused) == ("09:30", False)


def test_other_chat_stays_quiet(world):
    standard_case(world)
    make_case(world, chat=OTHER_CHAT, tasks=[(TECH_HEAD, "物料", at(2026, 12, 11, 18))], standup_paused=True)
    run_until(world, at(2026, 12, 8, 10), timedelta(minutes=30))
    assert len(titled(world, "今日站会")) == 1
    assert titled(world, "今日站会", chat=OTHER_CHAT) == []
