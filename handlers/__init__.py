"""Handlers: one module per command, step or job, over shared helpers (common, case_card, views,
people, tasks, lag_alerts, templates). `build_router` is the composition: every module's Router
in one, with its commands, actions, events, on-enter effects, case-card parts, exporters and
outbox renderers; `register_ticks` adds the scheduled scans."""
from __future__ import annotations

from typing import Any

from bot.routing import Router
from handlers import (
    archive,
    consensus,
    export,
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
    for module in (general, consensus, team, requirements, plan, tracking, retro, templates, export,
                   reminders, archive, feishu_tasks):
        router.include(module.router)
    return router


def register_ticks(state: Any) -> None:
    reminders.register_ticks(state)
    feishu_tasks.register_ticks(state)
