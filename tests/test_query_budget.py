"""The facts of a case are computed once per request: the click that completes step 1 and a
progress update in step 5 read the database at most BUDGET and PROGRESS_READS times, counted on the real engine
for the whole callback (inbox insert, stale check, handler, the cards it answers with, outbox
rows). And the commands and clicks people use most run a bounded number of statements of any
kind (STATEMENTS): every command or click pays for each one, under load it is most of their cost."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from bot import texts
from bot.models import Case, Task
from bot.workflow import Step
from feishu_fake import events as ev
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import APP_ID, CHAT, TENANT, VERIFICATION_TOKEN, find_button, find_submit
from tests.test_steps13_support import HEADS, fill_consensus, open_case, sign

BUDGET = 15
# a progress update reads the clicked card, the case and its tasks (the task clicked is one of them,
# and they carry the versions its form and the next one show), and here the working calendar (a
# new process: then once a minute)
PROGRESS_READS = 4


# every statement (inbox, savepoints, handler, outbox) from the request to its end, delivery excluded
STATEMENTS = {"/进度": 7, "更新我的进度": 5, "progress update": 10}


@contextmanager
def counted(engine, every: bool = False):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if every or statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _click(world, user, mid, **kw) -> dict:
    """One card callback through the webhook, answered inline; nothing sent yet (no drain)."""
    payload = ev.card_action_event(chat_id=CHAT, message_id=mid, operator_open_id=user, app_id=APP_ID,
                                   tenant_key=TENANT, token=VERIFICATION_TOKEN,
                                   create_ms=int(world.clock.now().timestamp() * 1000), **kw)
    resp = world.post(payload)
    assert resp.status_code == 200
    return resp.json()


@pytest.mark.usefixtures("paced")
def test_the_click_that_completes_step_one(world):
    mid = open_case(world)
    fill_consensus(world, mid)
    for head in HEADS[:-1]:
        sign(world, head, mid)
    value = find_button(world.card(mid), "签字确认")
    with counted(world.state.engine) as statements:
        answer = _click(world, HEADS[-1], mid, value=value)
    assert "toast" in answer and answer["toast"]["type"] == "success"
    assert len(statements) <= BUDGET, "\n".join(statements)
    with world.state.factory() as s:   # the counted click is the one that moved the case on
        assert s.scalar(select(Case.step)) == Step.TEAM


def test_a_progress_update_in_step_five(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, _t2 = make_plan_published(world.state.factory, case_id, now=now)
    world.say("ou_lead_market", "/进度")
    world.press("ou_dev_tech", world.last_card(title_contains="新品推广页面延迟")["message_id"], "更新我的进度")
    form = world.last_card(title_contains="更新进度")
    name = find_submit(world.card(form["message_id"]), f"f{t1}")
    with counted(world.state.engine) as statements:
        answer = _click(world, "ou_dev_tech", form["message_id"], form_value={f"s{t1}": "doing", f"p{t1}": "40"},
                        name=name)
    assert answer["toast"]["type"] == "success"
    assert len(statements) <= PROGRESS_READS, "\n".join(statements)
    with world.state.factory() as s:   # the counted click is the one that saved the update
        assert s.scalar(select(Task.progress).where(Task.id == t1)) == 40


def _settle(world) -> None:
    """The work after a command's answer, done; nothing sent (the outbox is not delivered)."""
    async def wait() -> None:
        import asyncio

        while world.state.tasks:
            await asyncio.gather(*list(world.state.tasks), return_exceptions=True)
    world.http.portal.call(wait)


def test_the_commands_and_clicks_used_most_run_few_statements(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, _t2 = make_plan_published(world.state.factory, case_id, now=now)
    world.say("ou_lead_market", "/进度")
    spent: dict[str, list[str]] = {}

    payload = ev.message_event(chat_id=CHAT, sender_open_id="ou_lead_market", text="/进度", app_id=APP_ID,
                               tenant_key=TENANT, token=VERIFICATION_TOKEN,
                               create_ms=int(world.clock.now().timestamp() * 1000))
    with counted(world.state.engine, every=True) as spent["/进度"]:
        assert world.post(payload).status_code == 200
        _settle(world)
    world.drain()
    assert len(world.cards()) == 2   # the case card twice: the command was handled, not refused
    card = world.last_card(title_contains="新品推广页面延迟")["message_id"]   # the newer one: the first shrank
    with counted(world.state.engine, every=True) as spent["更新我的进度"]:
        answer = _click(world, "ou_dev_tech", card, value=find_button(world.card(card), "更新我的进度"))
    assert answer["toast"]["content"] == texts.FORM_OPENED_PRIVATELY
    world.drain()
    form = world.last_card(title_contains="更新进度")
    name = find_submit(world.card(form["message_id"]), f"f{t1}")
    with counted(world.state.engine, every=True) as spent["progress update"]:
        answer = _click(world, "ou_dev_tech", form["message_id"], form_value={f"s{t1}": "doing", f"p{t1}": "40"},
                        name=name)
    assert answer["toast"]["type"] == "success"
    for what, statements in spent.items():
        assert len(statements) <= STATEMENTS[what], f"{what}: {len(statements)}\n" + "\n".join(statements)


def test_updates_while_a_redraw_waits_share_it_and_leave_every_card_true(world):
    """Two owners' progress updates arrive before the case's cards are redrawn: one sync row, and
    after it every posted card of the case shows both (nothing is left to patch)."""
    from sqlalchemy import select

    from bot import outbox
    from bot.models import Case, Outbox, PostedCard
    from bot.routing import Ctx
    from handlers import case_card

    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    t1, t2 = make_plan_published(world.state.factory, case_id, now=now)   # owners: 刘洋, 王芳
    world.say("ou_lead_market", "/进度")
    card = world.last_card(title_contains="新品推广页面延迟")["message_id"]
    world.press("ou_lead_market", card, texts.BTN_SHOW_TRACKING)   # a second posted card of the case
    forms = {}
    for who, task in (("ou_dev_tech", t1), ("ou_head_design", t2)):
        world.press(who, card, "更新我的进度")
        form = world.form_of(who)
        forms[who] = (next(m["message_id"] for m in reversed(world.private_cards(who))), task,
                      find_submit(form, f"f{task}"))
    for who, (mid, task, name) in forms.items():   # no delivery in between
        answer = _click(world, who, mid, form_value={f"s{task}": "doing", f"p{task}": "60"}, name=name)
        assert answer["toast"]["type"] == "success", answer
    with world.state.factory() as s:
        syncs = s.scalars(select(Outbox.status).where(Outbox.kind == case_card.SYNC_KIND, Outbox.case_id == case_id,
                                                      Outbox.status == "pending")).all()
    assert syncs == ["pending"]
    world.drain()
    with world.state.factory() as s:
        case = s.get(Case, case_id)
        ctx = Ctx(session=s, now=world.clock.now(), tz=world.settings.tz, tenant_key=case.tenant_key,
                  chat_id=case.chat_id, actor="", event_id="check", registry=world.state.dispatcher.router)
        assert case_card.sync_ops(ctx, case) == []   # every card already shows the state
        shown = {p.message_id: p.digest for p in s.scalars(select(PostedCard).where(
            PostedCard.case_id == case_id, PostedCard.private_for.is_(None), PostedCard.superseded.is_(False)))}
    assert len(shown) == 2
    for mid, digest in shown.items():   # and Feishu's copies are what the bot recorded
        assert outbox.card_digest(world.card(mid)) == digest
    tracking = next(m for m in shown if m != card)
    assert str(world.card(tracking)).count("60%") >= 2   # both updates, in the 《进度跟踪表》
