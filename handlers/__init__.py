"""Handlers: one module per command / step / job. `build_router` collects their routes;
`register_ticks` adds the scheduled scans."""
from __future__ import annotations

from typing import Any

from bot.routing import Router


def build_router() -> Router:
    from handlers import general

    router = Router()
    router.include(general.router)
    for name in ("consensus", "team", "requirements", "plan", "tracking", "retro", "reminders"):
        module = _optional(name)
        if module is not None and hasattr(module, "router"):
            router.include(module.router)
    return router


def register_ticks(state: Any) -> None:
    for name in ("jobs", "reminders"):
        module = _optional(name)
        if module is not None and hasattr(module, "register_ticks"):
            module.register_ticks(state)


def _optional(name: str):
    import importlib

    try:
        return importlib.import_module(f"handlers.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"handlers.{name}":
            raise
        return None
