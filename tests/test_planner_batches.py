"""The planning tick commits batch by batch: after a start with many active cases its first pass
never holds one long write transaction (on SQLite that lock would turn clicks into 503s)."""
from __future__ import annotations

from sqlalchemy import func, select

from bot import reminders
from bot.models import Outbox
from handlers import jobs as reminder_jobs
from tests.driver import CHAT
from tests.test_reminders_standup import at, make_case, standard_case


def _planned_cases(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count(func.distinct(Outbox.case_id))).where(Outbox.kind == "standup")) or 0


def test_each_batch_is_committed_before_the_next_is_planned(world, monkeypatch):
    world.clock.set(at(2026, 12, 8, 9, 0))
    for n in range(5):
        make_case(world, chat=f"{CHAT}_{n}", tasks=[("ou_head_tech", f"任务{n}", at(2026, 12, 11, 18))])
    standard_case(world)
    seen_by_others: list[int] = []
    real = reminders.reconcile_all

    def watched(session, now, policy=None, *, batch=200, after_batch=None):
        def after() -> None:
            assert after_batch is not None, "the tick commits after each batch"
            after_batch()
            seen_by_others.append(_planned_cases(world.state.factory))   # another connection
        return real(session, now, policy, batch=batch, after_batch=after)

    monkeypatch.setattr(reminder_jobs, "PLAN_BATCH", 2)
    monkeypatch.setattr(reminder_jobs.plan, "reconcile_all", watched)
    reminder_jobs.plan_tick(world.state.factory, world.clock.now(), world.state.dispatcher.router)
    # six cases in batches of two: each batch visible to other connections as soon as it is planned
    assert seen_by_others == [2, 4, 6]
    assert _planned_cases(world.state.factory) == 6
