"""What the tests of the two Feishu syncs (飞书任务 and the 多维表格 board) share: a world with the
sync set up, a case with a published plan, its case card, the owner's progress form, an approved
change request, the sync rows the outbox runs and the audit trail."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot import outbox
from bot.models import AuditEntry, Case, Task
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD, FeishuWorld

TITLE = "新品推广页面延迟"


@contextmanager
def sync_world(database_url: str, clock, **setting: str) -> Iterator[FeishuWorld]:
    """A world with one sync's setting given (feishu_tasks= or feishu_board=)."""
    w = FeishuWorld(database_url, clock, **setting)
    try:
        yield w
    finally:
        w.close()


def published(w, tasks=None, **kw) -> tuple[int, list[int]]:
    """A case in step 5 with its plan published: its id and its tasks' ids."""
    now = w.clock.now()
    case_id = make_case_at_step4(w.state.factory, now=now, **kw)
    return case_id, make_plan_published(w.state.factory, case_id, now=now, tasks=tasks)


def case_card(w) -> dict:
    w.say(LEAD, "/进度")
    return w.last_card(title_contains=TITLE)


def update_progress(w, user: str, task_id: int, status: str, progress: int) -> dict:
    """The owner's 更新我的进度 from the case card, submitted for one task: the answer."""
    w.press(user, case_card(w)["message_id"], "更新我的进度")
    form = w.last_card(title_contains="更新进度")
    return w.submit(user, form["message_id"], {f"s{task_id}": status, f"p{task_id}": str(progress)},
                    form_name=f"f{task_id}")


def approve_change(w, user: str, mode_label: str, form: dict, form_name: str) -> None:
    """A /调整 request in the given mode (none: the default edit), approved by the lead."""
    w.clock.advance(timedelta(seconds=5))
    w.say(user, "/调整")
    mid = w.last_card(title_contains="调整申请 · ")["message_id"]
    if mode_label:
        w.press(user, mid, mode_label)
    w.submit(user, mid, form, form_name=form_name)
    answer = w.submit(LEAD, w.last_card(title_contains="调整申请 #")["message_id"], {}, form_name="cr_approve")
    assert answer["toast"]["content"].startswith("已批准"), answer


def queue_syncs(w, case_id: int, target: str, *keys: str) -> None:
    """One sync row per key for the case, as a change in the group queues it (not run yet)."""
    with w.state.factory() as s, s.begin():
        case = s.get(Case, case_id)
        for key in keys:
            outbox.enqueue_ops(s, tenant_key=case.tenant_key, chat_id=case.chat_id, key=key, now=w.clock.now(),
                               ops=[outbox.SyncFeishu(target, case_id)], case_id=case_id)


def task_row(w, task_id: int) -> Task:
    with w.state.factory() as s:
        return s.get(Task, task_id)


def audit(w, action: str) -> list[Any]:
    with w.state.factory() as s:
        return [e.detail for e in s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                            .order_by(AuditEntry.id))]
