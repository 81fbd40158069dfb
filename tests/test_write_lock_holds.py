"""On SQLite one write transaction runs at a time, from its first write to its commit, so the
background work that runs many times a second (the sender's claims, the stale sweep) and the
planner do their choosing by reads and hold the writers' lock only for the writes. Measured in a
served 10,000-group fan-out: a claim choosing among the due rows inside its write held the lock
~100 ms, the sweep ~120 ms even when it found nothing, a planner batch ~2 s (a look-up, a savepoint
and an insert per row), and commands' inbox writes waited behind them (p50 335 ms)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from bot import outbox
from bot.models import AuditEntry, Outbox
from bot.outbox import SendText
from handlers import jobs as reminder_jobs
from tests.driver import CHAT, TENANT
from tests.test_reminders_standup import at, make_case


@pytest.fixture(autouse=True)
def _sqlite_only(database_url):
    if database_url.startswith("postgresql"):
        pytest.skip("SQLite's one writer: PostgreSQL claims lock rows (FOR UPDATE SKIP LOCKED) instead")


@contextmanager
def writes(world):
    """(statement, many) for each statement run while this process held the writers' lock,
    and the count of all statements."""
    held: list[tuple[str, bool]] = []
    seen = [0]

    def record(conn, _cursor, statement, _params, _context, many):
        seen[0] += 1
        if conn.info.get("writing"):   # set by db.serialise_writers at a transaction's first write
            held.append((" ".join(statement.split()), many))
    event.listen(world.state.engine, "before_cursor_execute", record)
    try:
        yield held, seen
    finally:
        event.remove(world.state.engine, "before_cursor_execute", record)


def _due_rows(world, n: int, *, stale: bool = False) -> None:
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        for i in range(n):
            outbox.enqueue(s, tenant_key=TENANT, chat_id=f"oc_due_{i:03d}", kind="immediate", fire_key=f"k{i}",
                           due_at=now - timedelta(minutes=1),
                           stale_after=now - timedelta(seconds=1) if stale else now + timedelta(hours=1),
                           payload=outbox.dump_op(SendText("站会")))


def test_a_claim_chooses_by_a_read_and_writes_only_the_rows_it_leases(world):
    _due_rows(world, 60)
    with writes(world) as (held, _seen):
        claims = outbox.claim_due(world.state.factory, me="w", now=world.clock.now(), batch=25)
    assert len(claims) == 25 and len({c.chat_id for c in claims}) == 25
    assert [s.split()[0] for s, _many in held] == ["UPDATE"], held
    update = held[0][0]
    assert "ORDER BY" not in update and "LIMIT" not in update, "the choice among the due rows ran in the write"
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).where(Outbox.status == "sending")) == 25


def test_nothing_to_claim_and_nothing_stale_takes_no_write_lock(world):
    _due_rows(world, 3)
    outbox.claim_due(world.state.factory, me="w", now=world.clock.now(), batch=10)   # each chat now busy
    with world.state.factory() as s, s.begin():   # a second row in each busy chat: not claimable
        for i in range(3):
            outbox.enqueue(s, tenant_key=TENANT, chat_id=f"oc_due_{i:03d}", kind="immediate", fire_key=f"n{i}",
                           due_at=world.clock.now(), payload=outbox.dump_op(SendText("又一条")))
    with writes(world) as (held, seen):
        claims = outbox.claim_due(world.state.factory, me="w", now=world.clock.now(), batch=10)
    assert list(claims) == []
    assert held == [] and seen[0] >= 2, "the sweep and the claim only read"


def test_a_claim_that_loses_its_rows_to_another_worker_takes_the_next_ones(world, monkeypatch):
    """Between the read and the write another worker leases the chosen rows: the claim then
    chooses again inside its write, so it neither takes their rows nor comes back empty."""
    _due_rows(world, 10)
    real_lease = outbox._lease
    raced: list[outbox.Claims] = []

    def rival_first(session, stmt, params):
        if params["c_me"] == "w" and not raced:
            raced.append(outbox.claim_due(world.state.factory, me="rival", now=params["c_now"], batch=4))
        return real_lease(session, stmt, params)
    monkeypatch.setattr(outbox, "_lease", rival_first)
    mine = outbox.claim_due(world.state.factory, me="w", now=world.clock.now(), batch=4)
    rival = raced[0]
    assert len(rival) == 4 and len(mine) == 4
    assert not {c.id for c in rival} & {c.id for c in mine}
    with world.state.factory() as s:
        owners = dict(s.execute(select(Outbox.claimed_by, func.count()).where(Outbox.status == "sending")
                                .group_by(Outbox.claimed_by)).all())
    assert owners == {"rival": 4, "w": 4}


def test_stale_rows_are_settled_in_one_write_of_the_rows_found(world):
    _due_rows(world, 30, stale=True)
    with writes(world) as (held, _seen):
        claims = outbox.claim_due(world.state.factory, me="w", now=world.clock.now(), batch=10)
    assert list(claims) == []
    sweep = [st for st, _many in held if "skipped_stale" in st or st.startswith("UPDATE outbox SET status=? ")]
    assert len(held) == 1 and len(sweep) == 1 and "LIMIT" not in sweep[0], held
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).where(Outbox.status == "skipped_stale")) == 30


def test_a_planner_batch_writes_its_new_rows_in_one_statement(world, monkeypatch):
    world.clock.set(at(2026, 12, 8, 9, 0))
    for n in range(4):
        make_case(world, chat=f"{CHAT}_{n}", tasks=[("ou_head_tech", f"任务{n}", at(2026, 12, 11, 18))])
    with world.state.factory() as s, s.begin():   # planned afresh by the tick below
        s.query(Outbox).filter(Outbox.kind != "immediate").delete()
    monkeypatch.setattr(reminder_jobs, "PLAN_BATCH", 50)
    with writes(world) as (held, _seen), world.state.factory() as session:
        changed = reminder_jobs.plan.reconcile_all(session, world.clock.now(), world.state.dispatcher.router.policy,
                                                   batch=50, after_batch=session.commit)
        session.commit()
    inserts = [(s, many) for s, many in held if s.startswith("INSERT INTO outbox")]
    assert len(inserts) == 1 and inserts[0][1], inserts   # one executemany for the whole batch
    assert held[0] == inserts[0], "the batch was planned before its first write"
    assert not any(s.startswith("SAVEPOINT") for s, _many in held), held
    assert changed >= 4
    with world.state.factory() as s:
        assert s.scalar(select(func.count(func.distinct(Outbox.case_id))).where(Outbox.kind == "standup")) == 4


def test_skipped_reminders_are_recorded_by_reads_then_two_writes(world):
    world.clock.set(at(2026, 12, 8, 9, 0))
    case_id = make_case(world, chat=CHAT, tasks=[("ou_head_tech", "任务", at(2026, 12, 11, 18))])
    now = world.clock.now()
    with world.state.factory() as s, s.begin():
        for day in range(40):
            outbox.enqueue(s, tenant_key=TENANT, chat_id=CHAT, kind="standup", fire_key=f"old{day}",
                           due_at=now - timedelta(days=day + 1), case_id=case_id)
        s.query(Outbox).filter(Outbox.fire_key.like("old%")).update({"status": "skipped_stale"},
                                                                    synchronize_session=False)
    with writes(world) as (held, _seen), world.state.factory() as session:
        reminder_jobs.plan.audit_skipped(session, now)
        session.commit()
    assert [s.split()[0] for s, _many in held] == ["UPDATE", "INSERT"], held
    assert held[1][1], "the audit entries in one executemany"
    with world.state.factory() as s:
        details = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "reminder.skipped")).all()
    assert len(details) == 40
    with world.state.factory() as session:   # recorded once: a second pass finds nothing to record
        reminder_jobs.plan.audit_skipped(session, now)
        session.commit()
    with world.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "reminder.skipped")) == 40
