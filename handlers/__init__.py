"""Handlers: one module per command / step / job. `build_router` collects their routes;
`register_ticks` adds the scheduled scans."""
from __future__ import annotations

from typing import Any

from bot.routing import Router


def build_router() -> Router:
    from handlers import (consensus, export, general, plan, reminders, requirements, retro, team,
                          templates, tracking)

    router = Router()
    for module in (general, consensus, team, requirements, plan, tracking, retro, templates, export,
                   reminders):
        router.include(module.router)
    return router


def register_ticks(state: Any) -> None:
    from handlers import reminders

    reminders.register_ticks(state)
