"""The scheduled scans: every minute the reminder planner (`bot.reminders.reconcile_all`) keeps the
outbox's reminder rows equal to what the database says is due, then the lead is @mentioned once for
each task that newly lags as time passes. Each scan opens its own transactions; what it wants sent
goes into the outbox, delivered by the sender's own loop."""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot import outbox
from bot import reminders as plan
from bot.domain import CaseStatus
from bot.models import Case, Task
from bot.routing import Ctx, Router
from bot.workdays import WorkCalendar, calendar_for
from bot.workflow import Step
from handlers import case_card
from handlers.lag_alerts import flags_to_change, lag_alert_ops

PLAN_EVERY_S = 60
PLAN_BATCH = 50   # cases planned per transaction


def plan_tick(factory, now: datetime, registry: Router) -> int:
    """`registry`: the composed Router (the live case card is rebuilt when a task newly lags)."""
    # Each case's planning stands alone, so a batch is committed as soon as it is planned: after a
    # start with many active cases the first pass never holds the write lock against clicks.
    with factory() as session:
        changed = plan.reconcile_all(session, now, registry.policy, batch=PLAN_BATCH, after_batch=session.commit)
        session.commit()
    return changed + lag_alert_tick(factory, now, registry)


# Every minute: @mention the lead once for each task that newly lags as time passes (after the planning).
def lag_alert_tick(factory, now: datetime, registry: Router) -> int:
    """One pass for a periodic tick (plan_tick calls it every minute) over every active case in
    step 5, in one transaction that looks at them all before it writes for those with an alert to
    send or a flag to clear; the alerts go into the outbox as immediate sends keyed by task and
    time. Returns how many were enqueued (kick the sender if > 0)."""
    with factory() as session, session.begin():
        cases = list(session.scalars(select(Case).where(Case.status == CaseStatus.ACTIVE, Case.step == Step.EXECUTION)))
        by_case: dict[int, list[Task]] = {}
        if cases:
            for t in session.scalars(select(Task).where(Task.case_id.in_([c.id for c in cases]),
                                                        Task.dropped.is_(False)).order_by(Task.seq, Task.id)):
                by_case.setdefault(t.case_id, []).append(t)
        cals: dict[str, WorkCalendar] = {}
        todo: list[tuple[Case, list[Task]]] = []
        for case in cases:   # looked at first, without a statement: the writes come together after
            tasks = [t for t in by_case.get(case.id, [])
                     if t.tenant_key == case.tenant_key and t.chat_id == case.chat_id]
            cal = cals.get(case.tenant_key) or cals.setdefault(case.tenant_key, calendar_for(session, case.tenant_key))
            if flags_to_change(case, tasks, now, plan.case_tz(case), cal):
                todo.append((case, tasks))
        sent = 0
        for case, tasks in todo:
            ops = lag_alert_ops(session, case, now, plan.case_tz(case), tasks)
            if ops and case.card_message_id:  # the live case card turns red along with the alert
                ctx = Ctx(session=session, now=now, tz=plan.case_tz(case), tenant_key=case.tenant_key,
                          chat_id=case.chat_id, actor="", event_id=f"lag:{case.id}", registry=registry)
                ops.append(outbox.PatchCard(case.card_message_id, case_card.build(ctx, case)))
            if ops:
                outbox.enqueue_ops(session, tenant_key=case.tenant_key, chat_id=case.chat_id,
                                   key=f"lag:{case.id}@{now.isoformat()}", now=now, ops=ops, case_id=case.id,
                                   priority=outbox.Priority.BULK)  # a reminder: behind replies to people
                sent += sum(isinstance(op, outbox.SendText) for op in ops)
        return sent


def register_ticks(state: Any) -> None:

    async def tick() -> None:
        changed = await asyncio.to_thread(plan_tick, state.factory, state.clock.now(), state.dispatcher.router)
        if changed:
            state.sender.kick()

    state.ticker.every(PLAN_EVERY_S, "reminders-plan", tick)
    state.spawn(tick())  # plan once right away: catch up what fell due while we were down
