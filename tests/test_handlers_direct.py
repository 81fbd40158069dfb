"""A thin layer under the end-to-end tests: handlers called directly with a Ctx, the way
bot.dispatch calls them (a real session on the test database, a fixed `now`, Asia/Shanghai, the
composed Router), without the webhook, the inbox or the outbox. What a handler returns, raises,
leaves in `ctx.ops` and in the database is asserted; the webhook tests cover the rest."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import handlers
from bot import db, outbox, texts
from bot.actions import ActionValue
from bot.envelope import CardAction, Header, MessageEvent
from bot.models import AuditEntry, Base, Case, ConsensusVersion, Signoff
from bot.routing import CallbackAnswer, Ctx, Router, UserError, split_command
from bot.workflow import Step
from cards.rules import validate_card
from tests.driver import APP_ID, CHAT, LEAD, OUTSIDER, TECH_HEAD, TENANT, card_title
from tests.test_steps13_support import CONSENSUS_FORM

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)   # Tuesday 09:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
TITLE = "新品推广页面延迟"


@pytest.fixture(scope="module")
def router() -> Router:
    return handlers.build_router()


@pytest.fixture
def factory(database_url):
    engine = db.make_engine(database_url)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- calling a handler as dispatch does
def _ctx(session, router: Router, actor: str, event_id: str) -> Ctx:
    return Ctx(session=session, now=NOW, tz=SHANGHAI, tenant_key=TENANT, chat_id=CHAT, actor=actor,
               event_id=event_id, bot_open_id="ou_the_bot", registry=router)


def _header(event_id: str, event_type: str) -> Header:
    return Header(event_id=event_id, event_type=event_type, tenant_key=TENANT, app_id=APP_ID,
                  create_time_ms=int(NOW.timestamp() * 1000))


def command(ctx: Ctx, text: str) -> Ctx:
    """`text` sent in the group by `ctx.actor`: the command's handler runs; its ctx (ops) comes back."""
    name, args = split_command(text)
    event = MessageEvent(header=_header(ctx.event_id, "im.message.receive_v1"), chat_id=CHAT, chat_type="group",
                         message_id=f"om_{ctx.event_id}", sender_open_id=ctx.actor, sender_type="user",
                         message_type="text", text=text)
    ctx.registry.commands[name](ctx, event, args)
    return ctx


def action(ctx: Ctx, value: ActionValue, form: dict[str, Any] | None = None) -> CallbackAnswer:
    """A card callback by `ctx.actor` carrying `value` (and a form's values)."""
    event = CardAction(header=_header(ctx.event_id, "card.action.trigger"), operator_open_id=ctx.actor,
                       token="t", tag="button", name="", value=value.dump(), form_value=dict(form or {}),
                       chat_id=CHAT, message_id="om_card")
    return ctx.registry.actions[value.action](ctx, event, value)


def everything(session) -> dict[str, list[str]]:
    """Every row of every table, as text: two equal results mean nothing was written."""
    return {table.name: sorted(repr(tuple(row)) for row in session.execute(select(table)))
            for table in Base.metadata.sorted_tables}


def refused(factory, router: Router, actor: str, run: Callable[[Ctx], Any]) -> UserError:
    """`run(ctx)` must raise a UserError without writing anything, not even in its own transaction:
    flushed and then committed, the database is as it was before."""
    with factory() as s:
        before = everything(s)
    with factory() as s, s.begin():
        with pytest.raises(UserError) as err:
            run(_ctx(s, router, actor, "ev-refused"))
        s.flush()
        assert everything(s) == before, "the refusing handler wrote to the database"
    with factory() as s:
        assert everything(s) == before
    return err.value


def open_case(factory, router: Router) -> tuple[int, Ctx]:
    with factory() as s, s.begin():
        ctx = command(_ctx(s, router, LEAD, "ev-open"), f"/问题 {TITLE}")
        case_id = s.scalar(select(Case.id))
    return case_id, ctx


def submit_consensus(factory, router: Router, case_id: int) -> CallbackAnswer:
    with factory() as s, s.begin():
        return action(_ctx(s, router, LEAD, "ev-submit"), ActionValue("consensus.submit", case_id=case_id, version=0),
                      form=CONSENSUS_FORM)


# ---------------------------------------------------------------- the tests
def test_help_sends_one_card_and_writes_nothing(factory, router):
    with factory() as s:
        before = everything(s)
    with factory() as s, s.begin():
        ctx = command(_ctx(s, router, LEAD, "ev-help"), "/帮助")
    assert len(ctx.ops) == 1 and isinstance(ctx.ops[0], outbox.SendCard), ctx.ops
    card = ctx.ops[0].card
    assert card_title(card) == texts.HELP_TITLE and validate_card(card) == []
    assert ctx.ops[0].bind_case_card is None and not ctx.ops[0].pin
    with factory() as s:
        assert everything(s) == before


def test_new_case_opens_step1_and_returns_the_form(factory, router):
    case_id, ctx = open_case(factory, router)
    with factory() as s:
        case = s.get(Case, case_id)
        assert (case.title, case.seq, case.step, case.status) == (TITLE, 1, Step.CONSENSUS, "active")
        assert (case.opener_open_id, case.lead_open_id, case.created_at) == (LEAD, LEAD, NOW)
        assert s.scalars(select(AuditEntry.action)).all() == ["case.open"]
        assert s.scalars(select(ConsensusVersion)).all() == []      # nothing submitted yet
    # the case card comes with the submitted 《问题共识表》, asking the heads to sign
    assert [type(op) for op in ctx.ops] == [outbox.SendCard, outbox.SyncMembers]
    form = ctx.ops[0]
    assert card_title(form.card) == texts.S1_FORM_TITLE and form.bind_case_card is None
    assert validate_card(form.card) == []


def test_second_case_is_refused_and_changes_nothing(factory, router):
    open_case(factory, router)
    err = refused(factory, router, TECH_HEAD, lambda ctx: command(ctx, "/问题 另一个问题"))
    assert err.message == texts.ALREADY_ACTIVE_CASE.format(title=TITLE, seq=1) and err.kind == "error"


def test_submitting_the_consensus_form_makes_version_1(factory, router):
    case_id, _ = open_case(factory, router)
    answer = submit_consensus(factory, router, case_id)
    assert (answer.toast, answer.toast_type) == (texts.S1_SUBMITTED.format(version=1), "success")
    assert card_title(answer.card) == texts.S1_TABLE_TITLE and validate_card(answer.card) == []
    with factory() as s:
        assert s.scalars(select(ConsensusVersion.version)).all() == [1]


def test_sign_by_someone_who_heads_no_department_raises_and_changes_nothing(factory, router):
    case_id, _ = open_case(factory, router)
    submit_consensus(factory, router, case_id)
    sign = ActionValue("consensus.sign", case_id=case_id, version=1)
    err = refused(factory, router, OUTSIDER, lambda ctx: action(ctx, sign))
    # no names learned yet (the member list is read by the outbox): the roles alone
    assert err.message == texts.S1_ONLY_HEAD.format(who="市场部负责人、技术部负责人、设计部负责人")
    assert err.kind == "error"


def test_sign_from_a_stale_card_answers_with_the_fresh_table_and_signs_nothing(factory, router):
    """Stale clicks are refused in one place, the dispatcher, before any handler runs."""
    from bot.clock import ManualClock
    from bot.dispatch import Dispatcher

    case_id, _ = open_case(factory, router)
    submit_consensus(factory, router, case_id)
    with factory() as s:
        before = everything(s)
    dispatcher = Dispatcher(factory, router, ManualClock(NOW), ZoneInfo("Asia/Shanghai"))
    with factory() as s, s.begin():
        ctx = _ctx(s, router, TECH_HEAD, "ev-stale")
        answer = dispatcher._stale(ctx, ActionValue("consensus.sign", case_id=case_id, version=0))
        fresh = dispatcher._stale(ctx, ActionValue("consensus.sign", case_id=case_id, version=1))
    assert answer is not None and (answer.toast, answer.toast_type) == (texts.STALE_CARD, "warning")
    assert card_title(answer.card) == texts.S1_TABLE_TITLE and validate_card(answer.card) == []
    assert fresh is None
    assert ctx.ops == []
    with factory() as s:
        assert everything(s) == before


def test_a_head_signs_once_and_the_live_card_is_refreshed(factory, router):
    case_id, _ = open_case(factory, router)
    submit_consensus(factory, router, case_id)
    sign = ActionValue("consensus.sign", case_id=case_id, version=1)
    with factory() as s, s.begin():
        ctx = _ctx(s, router, TECH_HEAD, "ev-sign")
        answer = action(ctx, sign)
    assert (answer.toast, answer.toast_type) == (texts.S1_SIGNED.format(depts="技术部"), "success")
    assert ctx.ops and all(isinstance(op, (outbox.SendCard, outbox.PatchCard)) for op in ctx.ops), ctx.ops
    with factory() as s:
        rows = s.scalars(select(Signoff)).all()
        assert [(r.actor_open_id, r.artifact, r.artifact_version, r.status, r.at) for r in rows] == \
            [(TECH_HEAD, "consensus", 1, "signed", NOW)]
    with factory() as s, s.begin():
        again = action(_ctx(s, router, TECH_HEAD, "ev-again"), sign)
    assert (again.toast, again.toast_type) == (texts.S1_ALREADY_SIGNED.format(depts="技术部", version=1), "info")
    with factory() as s:
        assert len(s.scalars(select(Signoff)).all()) == 1
