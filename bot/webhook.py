"""POST /feishu/events (event subscriptions and card callbacks) and GET /healthz."""
from __future__ import annotations

import asyncio
import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import db, texts
from bot.dispatch import DatabaseUnavailable, Refused
from bot.envelope import CardAction, parse_event
from bot.security import Malformed, Rejected, open_envelope

log = logging.getLogger(__name__)


class TooLarge(Exception):
    pass


class HungUp(Exception):
    """The client closed the connection before sending the whole body."""


async def read_capped(request: Request, limit: int) -> bytes:
    """Refuse a large body before reading it whole (uvicorn accepts any size by default)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge
        except ValueError as exc:
            raise Malformed("bad content-length") from exc
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise TooLarge
    except ClientDisconnect as exc:
        raise HungUp from exc
    return bytes(body)


def _answer(status: int, msg: str) -> JSONResponse:
    return JSONResponse({"msg": msg}, status_code=status)



async def feishu_events(request: Request) -> JSONResponse:
    state = request.app.state.bot
    settings = state.settings
    try:
        raw = await read_capped(request, settings.max_body_bytes)
        opened = open_envelope(raw, request.headers,
                               encrypt_key=settings.feishu_encrypt_key.get_secret_value(),
                               verification_token=settings.feishu_verification_token.get_secret_value(),
                               clock=state.clock, window_seconds=settings.signature_window_seconds)
        if opened.challenge is not None:
            return JSONResponse({"challenge": opened.challenge})
        event = parse_event(opened.payload)
    except TooLarge:
        return _answer(413, "payload too large")
    except HungUp:
        log.info("client hung up before the body was complete")
        return _answer(400, "bad request")
    except Rejected as exc:
        log.info("rejected webhook request: %s", exc)  # reason only; never the body or keys
        return _answer(401, "unauthorized")
    except Malformed as exc:
        log.info("malformed webhook request: %s", exc)
        return _answer(400, "bad request")
    except Exception as exc:  # noqa: BLE001 - a parser bug must still not be a 500
        log.error("unreadable webhook request (%s); answered 400", type(exc).__name__)
        return _answer(400, "bad request")
    if event is None:
        return _answer(200, "ignored")  # a type we don't subscribe to: don't make Feishu retry
    if not for_this_app(settings, event):
        log.info("rejected webhook request: event for app %r", event.header.app_id[:64])
        return _answer(401, "unauthorized")
    return await accept(state, opened.payload, event)


def for_this_app(settings, event) -> bool:
    """An event signed with our key but addressed to another app is not ours to act on."""
    return not settings.feishu_app_id or event.header.app_id == settings.feishu_app_id


async def accept(state, payload: dict, event) -> JSONResponse:
    """The part shared with the long connection: inbox, then handle (a callback: both at once, inline).
    Chatter changes nothing and is answered without touching the database (bot/chatter.py)."""
    dispatcher = state.dispatcher
    if dispatcher.take_chatter(event):
        dispatcher.names.flush_soon(state.spawn)
        return _answer(200, "success")
    if isinstance(event, CardAction):
        # Someone is waiting for this answer (Feishu gives up after 3 s): stored and handled in
        # one transaction, by the clicks' process when there is one (bot/worker.py).
        status, body = await _click_answer(state, payload, event)
        return JSONResponse(body, status_code=status)
    try:
        first = await state.dispatcher.astore(payload, event)  # group commit with concurrent requests
    except DatabaseUnavailable:
        return _answer(503, "temporarily unavailable")
    except Exception as exc:  # noqa: BLE001 - never a 500: Feishu retries a 503
        log.error("inbox write failed (%s); answered 503", type(exc).__name__)
        return _answer(503, "temporarily unavailable")
    if first is None:
        return _answer(400, "bad request")  # the database refused this event's data
    if first:
        state.handle_later(event.header.event_id, event)
    return _answer(200, "success")


# How long a click waits for the clicks' process's answer; Feishu gives up at 3 s.
CLICK_WAIT_SECONDS = 2.5


async def _click_answer(state, payload: dict, event: CardAction) -> tuple[int, dict]:
    if state.worker is not None:
        try:
            answer = await state.worker.click(payload, CLICK_WAIT_SECONDS)
        except TimeoutError:
            log.warning("click %s not answered in %s s", event.header.event_id, CLICK_WAIT_SECONDS)
            return 200, {"toast": {"type": "warning", "content": texts.CLICK_SLOW}}
        if answer is not None:
            return answer
    return await answer_click(state, payload, event)


async def answer_click(state, payload: dict, event: CardAction) -> tuple[int, dict]:
    """A card callback handled in this process, on the callbacks' threads: never queued behind
    the work left over from commands."""
    try:
        answer = await state.lanes.callback(state.dispatcher.callback, payload, event)
    except DatabaseUnavailable:
        return 503, {"msg": "temporarily unavailable"}
    except Exception as exc:  # noqa: BLE001 - never a 500: Feishu retries a 503
        log.error("inbox write failed (%s); answered 503", type(exc).__name__)
        return 503, {"msg": "temporarily unavailable"}
    if isinstance(answer, Refused):
        return 400, {"msg": "bad request"}  # the database refused this event's data
    return 200, answer.body() if answer else {}


async def healthz(request: Request) -> JSONResponse:
    state = request.app.state.bot
    ok = await asyncio.to_thread(db.ping, state.engine)
    body = {"database": "ok" if ok else "unreachable"}
    if state.worker is not None:   # `collab-bot serve`'s helper processes (bot/worker.py)
        body["helpers"] = "ready" if state.worker.ready() else "starting"
    return JSONResponse(body, status_code=200 if ok else 503)


# Plain Starlette routes: the webhook needs no dependency injection, and FastAPI's per-request
# dependency solving cost ~35 µs on the ack path.
routes = [Route("/feishu/events", feishu_events, methods=["POST"]),
          Route("/healthz", healthz, methods=["GET"])]
