"""The sandbox page and its small JSON API, mounted on the bot's own app (same port).

GET  /sandbox                   the page (static files under /sandbox/static/, no CDN)
GET  /sandbox/api/config        chat, members, bot, page labels
GET  /sandbox/api/state?rev=…   sandbox time + the group's messages (polled every second)
POST /sandbox/api/messages      {"as": open_id, "text": "/问题 …"}
POST /sandbox/api/action        {"as": open_id, "message_id": …, "action": {tag, value, name, form_value, …}}
POST /sandbox/api/clock         {"advance": "hour" | "day" | "standup" | "key_node"}
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
router = APIRouter()


class SandboxError(ValueError):
    """A request from the page that cannot be carried out; the message is shown as a toast."""


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/sandbox/static", StaticFiles(directory=STATIC), name="sandbox-static")


def _sandbox(request: Request):
    return request.app.state.sandbox


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _refuse(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


_NO_CACHE = {"Cache-Control": "no-store"}


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/sandbox")


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)


@router.get("/sandbox", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=_NO_CACHE)


@router.get("/sandbox/api/config")
async def config(request: Request) -> JSONResponse:
    config = await asyncio.to_thread(_sandbox(request).page_config)   # reads the standup time
    return JSONResponse(config, headers=_NO_CACHE)


@router.get("/sandbox/api/state")
async def state(request: Request, rev: str = "") -> JSONResponse:
    return JSONResponse(_sandbox(request).snapshot(rev), headers=_NO_CACHE)


@router.post("/sandbox/api/messages")
async def post_message(request: Request) -> JSONResponse:
    data = await _body(request)
    try:
        result = await _sandbox(request).say(str(data.get("as") or ""), str(data.get("text") or ""))
    except SandboxError as exc:
        return _refuse(str(exc))
    return JSONResponse(result)


@router.post("/sandbox/api/action")
async def card_action(request: Request) -> JSONResponse:
    data = await _body(request)
    action = data.get("action") if isinstance(data.get("action"), dict) else {}
    try:
        result = await _sandbox(request).act(str(data.get("as") or ""), str(data.get("message_id") or ""), action)
    except SandboxError as exc:
        return _refuse(str(exc))
    return JSONResponse(result)


@router.post("/sandbox/api/clock")
async def clock(request: Request) -> JSONResponse:
    data = await _body(request)
    sandbox = _sandbox(request)
    try:
        message = await sandbox.advance(str(data.get("advance") or ""))
    except SandboxError as exc:
        return _refuse(str(exc))
    config = await asyncio.to_thread(sandbox.page_config)
    return JSONResponse({"now": sandbox.now_label(), "message": message,
                         "standup_label": config["texts"]["clock_standup"]})
