"""Handlers: one module per command, step or job, over shared helpers (common, case_card, views,
people, tasks, lag_alerts, templates). `build_router` is the composition: every module's Router
in one, with its commands, actions, events, on-enter effects, case-card parts, exporters and
outbox renderers; `register_ticks` adds the scheduled scans."""
from __future__ import annotations

from typing import Any

from bot.reminders import case_tz
from bot.routing import Router
from handlers import (
    archive,
    case_card,
    common,
    consensus,
    ending,
    export,
    feishu_board,
    feishu_tasks,
    general,
    plan,
    reminders,
    requirements,
    retro,
    team,
    templates,
    tracking,
)


def build_router() -> Router:
    router = Router()
    for module in (general, ending, consensus, team, requirements, plan, tracking, retro, templates, export,
                   reminders, archive, feishu_tasks, feishu_board):
        router.include(module.router)
    # cards that stay true: how each posted view is redrawn, and the outbox kind that patches them
    router.card_view("case")(case_card.build)
    router.renderer(case_card.SYNC_KIND)(case_card.sync_renderer(router, case_tz))
    router.answer_hook = common.answer_hook
    router.bundle = reminders.BUNDLE
    return router


def register_ticks(state: Any) -> None:
    reminders.register_ticks(state)
    feishu_tasks.register_ticks(state)
    feishu_board.register_ticks(state)
