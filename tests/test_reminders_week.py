"""A working week as the group lives it: the clock moves across nights, a weekend and two outages
of different lengths (Tue 10:04 → Wed 13:00, Fri 09:20 → 09:50). Every reminder that is due is
checked against what the group actually received and when: sent once (late and marked
「（补发）」 after an outage) or skipped with its reason in the audit trail (`/记录`); lag alerts
and task reminders only in working hours; texts state the real remaining time; the standup
asks, nudges and closes with the people it actually asked."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from bot import texts
from bot.models import AuditEntry, Case, KeyNode, Outbox, Task
from bot.workdays import WorkCalendar
from tests.driver import CHAT, DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, TENANT, card_text, card_title, fits
from tests.test_reminders_standup import SH, at, rows, tick

CAL = WorkCalendar()


def make_week_case(world) -> dict[str, int]:
    now = world.clock.now()
    specs = [  # owner, content, start, due, progress
        (TECH_HEAD, "接口开发", at(2026, 12, 7, 9), at(2026, 12, 10, 7), 85),   # due Thu 07:00, before work
        (DESIGN_HEAD, "页面设计稿", at(2026, 12, 10, 9, 45), at(2026, 12, 14, 9), 0),  # starts after Thu's standup
        (TECH_DEV, "联调测试", at(2026, 12, 8, 9), at(2026, 12, 14, 10), 0),
    ]
    ids = {}
    with world.state.factory() as s, s.begin():
        case = Case(tenant_key=TENANT, chat_id=CHAT, seq=1, title="新品推广页面延迟", step=5,
                    opener_open_id=LEAD, lead_open_id=LEAD, created_at=now, updated_at=now,
                    step_entered_at=at(2026, 12, 7, 17))   # the plan went out Monday 17:00
        s.add(case)
        s.flush()
        for i, (owner, content, start, due, progress) in enumerate(specs, start=1):
            task = Task(tenant_key=TENANT, chat_id=CHAT, case_id=case.id, seq=i, content=content,
                        owner_open_id=owner, start_at=start, due_at=due, delivery_standard="可上线",
                        status="doing", progress=progress, updated_at=now)
            s.add(task)
            s.flush()
            ids[content] = task.id
        # a key node Thursday 12:00: its 进度确认会 (24 h before) falls inside the first outage
        s.add(KeyNode(tenant_key=TENANT, chat_id=CHAT, case_id=case.id, name="接口联调完成", at=at(2026, 12, 10, 12)))
        ids["case"] = case.id
    return ids


class Log:
    """What the group received, with the (manual) time it arrived."""

    def __init__(self, world) -> None:
        self.world, self.seen, self.got = world, 0, []

    def run(self, end: datetime, step: timedelta = timedelta(minutes=10)) -> None:
        while self.world.clock.now() < end:
            self.world.clock.set(min(end, self.world.clock.now() + step))
            self.tick()

    def tick(self) -> None:
        tick(self.world)
        msgs = self.world.messages()
        for m in msgs[self.seen:]:
            body = m["content"]["text"] if m["msg_type"] == "text" else card_title(m["content"])
            self.got.append((self.world.clock.now().astimezone(SH), body, m))
        self.seen = len(msgs)

    def titled(self, part: str) -> list[tuple[datetime, str, dict]]:
        return [g for g in self.got if g[2]["msg_type"] == "interactive" and part in g[1]]

    def lag_alerts(self) -> list[tuple[datetime, str, dict]]:
        return [g for g in self.got if g[2]["msg_type"] == "text" and fits(texts.LAG_ALERT, g[1])]

    def nudges(self) -> list[tuple[datetime, str, dict]]:
        return [g for g in self.got if g[2]["msg_type"] == "text" and fits(texts.STANDUP_NUDGE, g[1])]


MENTION = re.compile(r'<at (?:user_id="|id=)(ou_\w+)')


def received(log: Log) -> list[tuple[str, str, frozenset[str], bool]]:
    """What the group got, as a person reads it: (when, what, who was @mentioned, marked late)."""
    out = []
    for t, body, m in log.got:
        text = body if m["msg_type"] == "text" else card_text(m["content"])
        if m["msg_type"] == "text" and fits(texts.STANDUP_NUDGE, body):
            what = "站会催办"
        elif m["msg_type"] == "text" and fits(texts.LAG_ALERT, body):
            what = "任务滞后 " + body.split("任务滞后：")[1].split(" ")[0]
        else:
            what = body.replace(texts.LATE_MARK, "")
        out.append((hm(t), what, frozenset(MENTION.findall(text)), texts.LATE_MARK in body))
    return out


def hm(dt: datetime) -> str:
    return dt.strftime("%a %H:%M")


def in_hours(dt: datetime) -> bool:
    return CAL.in_hours(dt, SH)


def audit(world) -> list[str]:
    with world.state.factory() as s:
        return [e.detail for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "reminder.skipped")
                                            .order_by(AuditEntry.id))]


def test_a_week_with_nights_a_weekend_and_two_outages(world):
    ids = make_week_case(world)
    log = Log(world)
    log.tick()                                                   # Tue 09:00
    log.run(at(2026, 12, 8, 10, 4))                              # Tue standup 09:30, nudge 10:00
    assert [(hm(t), b) for t, b, _ in log.titled("今日站会")] == [("Tue 09:30", "今日站会 · 12月8日")]
    assert [hm(t) for t, _, _ in log.nudges()] == ["Tue 10:00"]
    assert log.lag_alerts() == []    # first morning: 1 working hour of 37 used, nobody lags yet

    # ---- outage 1: Tue 10:04 → Wed 13:00 (nothing ticks, nothing is delivered)
    world.clock.set(at(2026, 12, 9, 13, 0))
    log.tick()
    log.tick()
    late_due = log.titled("任务即将到期")
    assert [(hm(t), b) for t, b, _ in late_due] == [("Wed 13:00", "任务即将到期（补发）")]
    text = card_text(late_due[0][2]["content"])     # due Thu 07:00, warned (late) Wed 13:00
    assert "12月10日（周四）07:00" in text and "还剩 5 个工作小时" in text and "接口开发" in text
    assert "24 小时" not in text
    # Tuesday's close and Wednesday's standup and nudge fell due while down and no longer matter:
    # skipped, each with its reason in /记录; Wednesday's close still posts the 《进度跟踪表》
    status = {(r.kind, r.fire_key): r.status for r in rows(world)}
    assert status[("standup_close", "2026-12-08@09:30")] == "skipped_stale"
    assert status[("standup", "2026-12-09@09:30")] == "skipped_stale"
    assert status[("standup_nudge", "2026-12-09@09:30")] == "skipped_stale"
    notes = audit(world)
    assert any(n.startswith("站会小结（12-08 10:30）未发送") for n in notes), notes
    assert any(n.startswith("每日站会（12-09 09:30）未发送") for n in notes), notes
    assert any(n.startswith("站会催办（12-09 10:00）未发送") for n in notes), notes
    assert notes == [
        "站会小结（12-08 10:30）未发送：" + texts.REMINDER_SKIPPED_REASONS["standup_close"],
        "每日站会（12-09 09:30）未发送：" + texts.REMINDER_SKIPPED_REASONS["standup"],
        "站会催办（12-09 10:00）未发送：" + texts.REMINDER_SKIPPED_REASONS["standup_nudge"],
    ]
    world.say(LEAD, "/记录")
    log.seen = len(world.messages())
    assert "每日站会（12-09 09:30）未发送" in card_text(world.cards()[-1]["content"])
    # 联调测试 (Tue 09:00 → Mon 10:00, 0 %) has used 10 of 37 working hours: behind, the lead hears once now
    assert [(hm(t), "#3 联调测试" in b) for t, b, _ in log.lag_alerts()] == [("Wed 13:00", True)]

    # ---- the night: 接口开发 passes its deadline at Thu 07:00; the lead hears at 09:00, not before
    log.run(at(2026, 12, 10, 9, 30))
    alerts = log.lag_alerts()
    assert [(hm(t), "#1 接口开发" in b) for t, b, _ in alerts[1:]] == [("Thu 09:00", True)]
    overdue = log.titled("任务已逾期")
    assert [hm(t) for t, _, _ in overdue] == ["Thu 09:00"]
    standup = log.titled("今日站会")[-1]
    assert (hm(standup[0]), standup[1]) == ("Thu 09:30", "今日站会 · 12月10日")
    stext = card_text(standup[2]["content"])
    assert f"<at id={TECH_HEAD}></at>" in stext and f"<at id={TECH_DEV}></at>" in stext
    assert f"<at id={DESIGN_HEAD}></at>" not in stext          # 页面设计稿 starts at 09:45
    # an outsider's toast names exactly the people this card asked
    toast = world.press(LEAD, standup[2]["message_id"], "今日无变化")["toast"]
    assert toast["content"] == texts.STANDUP_NOT_OWNER.format(owners="、".join(sorted([TECH_DEV, TECH_HEAD])))
    log.run(at(2026, 12, 10, 10, 0))                               # 页面设计稿 has started
    nudge = log.nudges()[-1]
    assert hm(nudge[0]) == "Thu 10:00" and DESIGN_HEAD not in nudge[1]
    log.run(at(2026, 12, 10, 10, 40))
    closed = card_text(world.card(standup[2]["message_id"]))
    assert "站会已结束" in closed and f"<at id={DESIGN_HEAD}></at>" not in closed   # never asked, never missing
    assert f"<at id={TECH_DEV}></at>" in closed.split("未回复")[1]

    # ---- outage 2: Fri 09:20 → 09:50: the standup goes out late and keeps its nudge and close
    log.run(at(2026, 12, 11, 9, 20))
    world.clock.set(at(2026, 12, 11, 9, 50))
    log.tick()
    fri = log.titled("今日站会")[-1]
    assert (hm(fri[0]), fri[1]) == ("Fri 09:50", "今日站会 · 12月11日（补发）")
    log.run(at(2026, 12, 11, 10, 15), timedelta(minutes=5))
    assert hm(log.nudges()[-1][0]) == "Thu 10:00"                # not on the heels of the late standup
    log.run(at(2026, 12, 11, 10, 20), timedelta(minutes=5))
    assert hm(log.nudges()[-1][0]) == "Fri 10:20"                # 30 minutes after it actually went out
    log.run(at(2026, 12, 11, 10, 50), timedelta(minutes=5))
    assert "站会已结束" in card_text(world.card(fri[2]["message_id"]))

    # ---- the weekend: tasks due Monday 09:00 and 10:00 are announced Friday 18:00 with their real time
    log.run(at(2026, 12, 11, 18, 0))
    log.run(at(2026, 12, 14, 9, 0), timedelta(minutes=30))
    fri_due = [g for g in log.titled("任务即将到期") if g[0].weekday() == 4]
    assert [hm(t) for t, _, _ in fri_due] == ["Fri 18:00"]
    text = card_text(fri_due[0][2]["content"])
    assert "12月14日（周一）09:00" in text and "24 小时" not in text
    assert "页面设计稿" in text and "联调测试" in text
    weekend = [g for g in log.got if g[0].weekday() >= 5 or (g[0].weekday() == 0 and g[0].hour < 9)]
    assert weekend == [], [(hm(t), b) for t, b, _ in weekend]   # nothing at all on Saturday, Sunday or before 09:00

    # ---- Monday
    log.run(at(2026, 12, 14, 11, 0))
    assert [(hm(t), b) for t, b, _ in log.titled("今日站会")][-1] == ("Mon 09:30", "今日站会 · 12月14日")

    # the whole week, message by message: exactly what a careful coordinator would have sent
    track = texts.TRACK_TITLE.format(title="新品推广页面延迟")
    both, all3 = {TECH_HEAD, TECH_DEV}, {TECH_HEAD, TECH_DEV, DESIGN_HEAD}
    expected = [
        ("Tue 09:30", "今日站会 · 12月8日", both, False),       # owners of started tasks only
        ("Tue 10:00", "站会催办", both, False),
        # outage 1 (Tue 10:04 → Wed 13:00): Tuesday's close, Wednesday's standup and nudge skipped (above);
        # the 24-hour warning for Thursday 07:00 and the key node's 进度确认会 (due Wed 12:00) in one late card
        ("Wed 13:00", texts.TASK_DUE_TITLE, {TECH_HEAD, LEAD}, True),
        ("Wed 13:00", track, set(), True),                        # Wednesday's close, late
        ("Wed 13:00", "任务滞后 #3", {LEAD, TECH_DEV}, False),    # 10 of 37 working hours used at 0 %
        ("Thu 09:00", texts.OVERDUE_TITLE, {TECH_HEAD}, False),  # due 07:00: said at the start of work
        ("Thu 09:00", "任务滞后 #1", {LEAD, TECH_HEAD}, False),
        ("Thu 09:30", "今日站会 · 12月10日", both, False),       # 页面设计稿 starts 09:45: not asked
        ("Thu 10:00", "站会催办", both, False),
        ("Thu 10:30", track, set(), False),
        # outage 2 (Fri 09:20 → 09:50): the standup late, its nudge and close 30 / 60 minutes after it
        ("Fri 09:50", "今日站会 · 12月11日", all3, True),
        # 页面设计稿 (Thu 09:45 → Mon 09:00, 0 %) is behind once half its 17¼ working hours are gone
        # (Fri 09:21, while down): the lead hears when the bot is back, not Thursday afternoon
        ("Fri 09:50", "任务滞后 #2", {LEAD, DESIGN_HEAD}, False),
        ("Fri 10:20", "站会催办", all3, False),
        ("Fri 10:50", track, set(), False),
        ("Fri 18:00", texts.TASK_DUE_TITLE, {DESIGN_HEAD, TECH_DEV}, False),   # due Mon 09:00 / 10:00
        # the weekend and Monday before 09:00: nothing
        ("Mon 09:00", texts.OVERDUE_TITLE, {DESIGN_HEAD}, False),
        ("Mon 09:30", "今日站会 · 12月14日", all3 | {LEAD}, False),   # #1 two working days overdue: the lead
        ("Mon 10:00", "站会催办", all3, False),
        ("Mon 10:00", texts.OVERDUE_TITLE, {TECH_DEV}, False),
        ("Mon 10:30", track, set(), False),
    ]
    assert received(log) == [(t, w, frozenset(p), late) for t, w, p, late in expected], received(log)
    bundled = card_text(late_due[0][2]["content"])
    assert "接口联调完成前 23 小时 · 进度确认会（补发）" in bundled and "其中工作时间 8 小时" in bundled
    # the whole week: lag alerts and task reminders only in working hours, each lagging task once
    for t, b, m in log.lag_alerts() + log.titled("任务即将到期") + log.titled("任务已逾期"):
        assert in_hours(t), (hm(t), b)
    seqs = [b.split("任务滞后：")[1].split(" ")[0] for _, b, _ in log.lag_alerts()]
    assert sorted(seqs) == ["#1", "#2", "#3"], seqs
    days = [b for _, b, _ in log.titled("今日站会")]
    assert days == ["今日站会 · 12月8日", "今日站会 · 12月10日", "今日站会 · 12月11日（补发）",
                    "今日站会 · 12月14日"]
    # every reminder row is accounted for: sent, skipped (with an audit entry) or cancelled for a reason
    with world.state.factory() as s:
        skipped = s.scalars(select(Outbox).where(Outbox.status == "skipped_stale")).all()
    assert len(skipped) == len(audit(world))
    sent = [r for r in rows(world) if r.status == "sent"]
    assert len({(r.kind, r.fire_key) for r in sent}) == len(sent)   # exactly once
    assert ids


def test_down_longer_than_planned_ahead_catches_up_every_day(world):
    """Ten days down (past the 7 days planned ahead): each missed standup is recorded as skipped,
    none is silently absent, and today's goes out."""
    make_week_case(world)
    tick(world)
    world.clock.set(at(2026, 12, 21, 9, 0))                     # Mon two weeks later
    tick(world)
    tick(world)
    keys = {r.fire_key[:10] for r in rows(world, "standup")}
    for day in ("2026-12-15", "2026-12-16", "2026-12-17", "2026-12-18"):   # beyond the old horizon
        assert day in keys, sorted(keys)
    notes = audit(world)
    for d in ("12-09", "12-15", "12-18"):
        assert any(n.startswith(f"每日站会（{d} 09:30）未发送") for n in notes), notes
    world.clock.set(at(2026, 12, 21, 9, 30))
    tick(world)
    titles = [card_title(m["content"]) for m in world.cards() if "今日站会" in card_title(m["content"])]
    assert titles[-1] == "今日站会 · 12月21日"


def test_the_first_morning_nobody_lags_for_the_night(world):
    """Tasks started Monday 14:00 at 0 %, due Wednesday 18:00 (52 clock hours, 22 working hours):
    at Tuesday's first standup 19.5 clock hours but only 4.5 working hours have passed — the
    standup flags nobody 滞后 and the lead gets no 「任务滞后」 before anyone could answer."""
    world.clock.set(at(2026, 12, 7, 14))
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        case = Case(tenant_key=TENANT, chat_id=CHAT, seq=1, title="新品推广页面延迟", step=5, opener_open_id=LEAD,
                    lead_open_id=LEAD, created_at=now, updated_at=now, step_entered_at=now)
        s.add(case)
        s.flush()
        for i, (owner, content) in enumerate([(TECH_HEAD, "接口开发"), (TECH_DEV, "联调测试")], start=1):
            s.add(Task(tenant_key=TENANT, chat_id=CHAT, case_id=case.id, seq=i, content=content,
                       owner_open_id=owner, start_at=now, due_at=at(2026, 12, 9, 18), delivery_standard="可上线",
                       status="doing", progress=0, updated_at=now))
    log = Log(world)
    log.run(at(2026, 12, 8, 10, 5), timedelta(minutes=15))
    standup = log.titled("今日站会")
    assert [(hm(t), b) for t, b, _ in standup] == [("Tue 09:30", "今日站会 · 12月8日")]
    assert "滞后" not in card_text(standup[0][2]["content"])
    assert log.lag_alerts() == []
    log.run(at(2026, 12, 8, 15, 0), timedelta(minutes=5))    # a working day (9 of 22 hours) at 0 %: now they lag
    assert [hm(t) for t, _, _ in log.lag_alerts()] == ["Tue 14:00", "Tue 14:00"]
