"""Two processes claiming at the same moment on PostgreSQL: a claim that has not committed yet still
keeps its chat busy for the other process, so one chat (a case's board, the tenant's overview) has
one send in flight at a time across processes."""
import threading

import pytest
from sqlalchemy import select, text, update

from bot import db, outbox
from bot.models import Outbox


def test_a_claim_not_yet_committed_keeps_its_chat_busy_for_another_process(database_url, clock):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has one writer at a time anyway")
    engine = db.make_engine(database_url)
    factory = db.make_sessionmaker(engine)
    now = clock.now()
    try:
        with factory() as s, s.begin():
            outbox.enqueue_ops(s, tenant_key="t", chat_id="chat", key="e", now=now,
                               ops=[outbox.SendText("一"), outbox.SendText("二")])
        with factory() as s:
            first, second = s.scalars(select(Outbox.id).order_by(Outbox.id)).all()
        got: list[outbox.Claim] = []
        rival = threading.Thread(target=lambda: got.extend(outbox.claim_due(factory, me="b", now=now)))
        # process a, mid-claim: it holds the claim lock and has leased the chat's first row, uncommitted
        with factory() as a, a.begin():
            a.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": outbox.CLAIM_LOCK})
            a.execute(update(Outbox).where(Outbox.id == first)
                      .values(status="sending", claimed_by="a", claimed_at=now, attempts=1))
            rival.start()
            rival.join(0.5)   # b's claim runs now, while a's is open
        rival.join(10)
        assert not rival.is_alive()
        assert got == []   # the chat's second row waits for the first, although b never saw it pending
        with factory() as s:
            assert s.get(Outbox, second).status == "pending"
    finally:
        engine.dispose()
