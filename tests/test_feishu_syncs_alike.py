"""What the two Feishu syncs (飞书任务 and the 多维表格 board) do alike, each test run for both:
off by default (no button, no calls), only the lead turns one on, and one read-back a minute
however many replicas tick."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from bot import texts
from handlers import feishu_board, feishu_tasks
from tests.driver import LEAD, TECH_DEV, card_text, walk
from tests.feishu_sync import case_card, published, sync_world, update_progress


@dataclass(frozen=True)
class Sync:
    setting: str
    on: str                            # the case card's button
    off: str
    on_toast: str
    api: str                           # the Open API paths it calls
    made: Callable[..., list]          # what it has made in Feishu (the fake's view)
    poll_tick: Callable[..., int]


SYNCS = [
    pytest.param(Sync("feishu_tasks", texts.BTN_FTASKS_ON, texts.BTN_FTASKS_OFF, texts.FTASKS_ON_NOW_TOAST,
                      "/open-apis/task/v2", lambda fake: fake.tasks(), feishu_tasks.poll_tick), id="tasks"),
    pytest.param(Sync("feishu_board", texts.BTN_BOARD_ON, texts.BTN_BOARD_OFF, texts.BOARD_ON_NOW_TOAST,
                      "/open-apis/bitable", lambda fake: fake.bases(), feishu_board.poll_tick), id="board"),
]


@pytest.fixture
def offered(database_url, clock, request):
    """A world offering the sync (the case card has its button) and a case with a published plan."""
    sync = request.param
    with sync_world(database_url, clock, **{sync.setting: "offer"}) as w:
        published(w)
        yield w, sync


@pytest.mark.parametrize("sync", SYNCS)
def test_off_by_default_no_button_and_no_calls(world, sync):
    case_id, (t1, _t2) = published(world)
    card = case_card(world)
    labels = {n.get("text", {}).get("content") for n in walk(card["content"]) if n.get("tag") == "button"}
    assert sync.on not in labels
    update_progress(world, TECH_DEV, t1, "doing", 20)
    assert world.fake.calls_to(sync.api) == []


@pytest.mark.parametrize("offered", SYNCS, indirect=True)
def test_only_the_lead_turns_it_on_and_the_card_then_offers_to_stop_it(offered):
    w, sync = offered
    refused = w.press(TECH_DEV, case_card(w)["message_id"], sync.on)
    assert refused["toast"]["type"] == "error" and sync.made(w.fake) == []
    answer = w.press(LEAD, case_card(w)["message_id"], sync.on)
    assert answer["toast"]["content"] == sync.on_toast
    assert sync.off in card_text(answer["card"]["data"])   # the card the lead clicked
    assert sync.made(w.fake) != []


@pytest.mark.parametrize("offered", SYNCS, indirect=True)
def test_two_replicas_ticking_queue_one_read_back(offered):
    w, sync = offered
    w.press(LEAD, case_card(w)["message_id"], sync.on)
    now = w.clock.now()
    assert sync.poll_tick(w.state.factory, now) == 1
    assert sync.poll_tick(w.state.factory, now) == 0            # the other replica, same minute
    assert sync.poll_tick(w.state.factory, now + timedelta(minutes=1)) == 1
