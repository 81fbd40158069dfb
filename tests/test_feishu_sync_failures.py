"""Both Feishu syncs (飞书任务 and the 多维表格 board) share how a failure reaches the lead: a
permanent error Feishu answers (not a missing scope) is told once per error code, the case's sync
stays on and the next run writes what was missed."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import outbox, texts
from bot.models import Case, FeishuBoardRow, FeishuTaskLink
from feishu_fake.bitable import BITABLE_INVALID
from feishu_fake.tasks import TASK_INVALID
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD, FeishuWorld, fits

SYNCS = [
    pytest.param("feishu_tasks", texts.BTN_FTASKS_ON, "tasks", FeishuTaskLink, TASK_INVALID, texts.FTASK_FAILED,
                 id="tasks"),
    pytest.param("feishu_board", texts.BTN_BOARD_ON, "board", FeishuBoardRow, BITABLE_INVALID, texts.BOARD_FAILED,
                 id="board"),
]


@pytest.mark.parametrize(("setting", "button", "target", "pushed", "code", "failed"), SYNCS)
def test_a_permanent_failure_is_told_to_the_lead_once_per_code(database_url, clock, setting, button, target,
                                                               pushed, code, failed):
    w = FeishuWorld(database_url, clock, **{setting: "offer"})
    try:
        now = w.clock.now()
        case_id = make_case_at_step4(w.state.factory, now=now)
        make_plan_published(w.state.factory, case_id, now=now)
        w.say(LEAD, "/进度")
        w.press(LEAD, w.last_card(title_contains="新品推广页面延迟")["message_id"], button)
        assert not [t for t in w.texts() if fits(failed, t)]

        def resync(key: str) -> None:
            """The bot has something new to write (as after a change in the group), and syncs."""
            with w.state.factory() as s, s.begin():
                for row in s.scalars(select(pushed)):
                    row.pushed_hash = ""
                case = s.get(Case, case_id)
                outbox.enqueue_ops(s, tenant_key=case.tenant_key, chat_id=case.chat_id, key=key, now=w.clock.now(),
                                   ops=[outbox.SyncFeishu(target, case_id)], case_id=case_id)
            w.drain()

        for attempt in ("fail-1", "fail-2"):   # the same code twice: one message
            w.fake.fail_next(1, status=400, code=code)
            resync(attempt)
        said = [t for t in w.texts() if fits(failed, t)]
        assert len(said) == 1 and str(code) in said[0] and f'<at user_id="{LEAD}"></at>' in said[0]
        resync("after")
        with w.state.factory() as s:
            rows = s.scalars(select(pushed)).all()
            assert rows and all(row.pushed_hash for row in rows)   # written after all
        assert len([t for t in w.texts() if fits(failed, t)]) == 1
    finally:
        w.close()
