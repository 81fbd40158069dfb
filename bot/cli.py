"""`collab-bot serve | ws | db upgrade`."""
from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from bot import db, texts
from bot.app import create_app, prepare_to_serve, run_background, run_clicks
from bot.longconn import run_long_connection
from bot.server import Limits, serve
from bot.settings import Settings, SettingsError
from bot.worker import WorkerProcess

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            print(texts.CLI_SETTING_ERROR.format(name=name, msg=err["msg"]), file=sys.stderr)
        raise SystemExit(2)
    return settings


def _require_feishu(settings: Settings) -> None:
    try:
        settings.require_feishu()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2)


def _upgrade_or_exit(settings: Settings) -> None:
    """Upgrade the schema before serving; refuse clearly if it cannot be upgraded. An unreachable
    database is not fatal: the bot answers 503 (Feishu retries) and upgrades once it is back."""
    try:
        db.upgrade(settings.database_url)
    except OperationalError:
        logging.getLogger("bot").warning(texts.CLI_DB_DOWN)
    except Exception as exc:  # noqa: BLE001 - e.g. a database newer than this code
        print(texts.CLI_DB_UPGRADE_FAILED.format(error=f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        raise SystemExit(2)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.sandbox or not settings.feishu_configured:
        if args.host not in LOOPBACK:
            # The sandbox page has no login: never expose it (e.g. a container started without an app).
            print(texts.CLI_SANDBOX_LOOPBACK_ONLY.format(host=args.host), file=sys.stderr)
            return 2
        # the sandbox (a dev tool: fake Open API, chat page, the composed handlers) is loaded only
        # when it runs, so a real deployment never imports it
        from sandbox.run import serve_sandbox  # noqa: PLC0415
        return serve_sandbox(settings, host=args.host, port=args.port)
    _require_feishu(settings)
    _upgrade_or_exit(settings)
    # the work nobody waits for (commands after their 200, the outbox, the clock) in a process
    # of its own, so that answering Feishu never shares an interpreter with it (bot/worker.py)
    app = create_app(settings, worker=WorkerProcess() if settings.background_process else None)
    limits = Limits.from_settings(settings, limit_concurrency=args.limit_concurrency)
    prepare_to_serve()  # memory settled, threads switched often (bot/app.py)
    # uvicorn with header/body deadlines and connection caps: slow clients are cut off (S13).
    serve(app, host=args.host, port=args.port, limits=limits, access_log=settings.access_log)
    return 0


def cmd_ws(args: argparse.Namespace) -> int:
    settings = _settings()
    if not settings.feishu_configured or not settings.feishu_app_secret.get_secret_value():
        print(texts.CLI_WS_NEEDS_APP, file=sys.stderr)
        return 2
    return run_long_connection(settings, host=args.host, port=args.port)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    _require_feishu(settings)
    if args.click_fd is not None:
        return run_clicks(settings, args.click_fd, args.kick_fd)
    return run_background(settings, args.kick_fd)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    settings = _settings()
    db.upgrade(settings.database_url)
    print(texts.CLI_DB_UPGRADED)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="collab-bot", description=texts.CLI_DESCRIPTION)
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help=texts.CLI_SERVE_HELP)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", action="store_true", help=texts.CLI_SANDBOX_HELP)
    # Requests being handled at once (body received, answer not sent) beyond which the server answers
    # 503; connections still sending do not count (bot/server.py). 0: no limit.
    serve.add_argument("--limit-concurrency", type=int, default=1000)
    serve.set_defaults(fn=cmd_serve)
    ws = sub.add_parser("ws", help=texts.CLI_WS_HELP)
    ws.add_argument("--host", default="127.0.0.1", help=texts.CLI_WS_HOST_HELP)
    ws.add_argument("--port", type=int, default=8000)
    ws.set_defaults(fn=cmd_ws)
    worker = sub.add_parser("worker", help=texts.CLI_WORKER_HELP)
    # the pipe `serve` wakes it through (bot/worker.py)
    worker.add_argument("--kick-fd", type=int, required=True, help=argparse.SUPPRESS)
    # with it: the process answering the clicks handed over on that socket (it writes to the pipe)
    worker.add_argument("--click-fd", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(fn=cmd_worker)
    dbp = sub.add_parser("db", help=texts.CLI_DB_HELP)
    dbsub = dbp.add_subparsers(dest="dbcmd", required=True)
    up = dbsub.add_parser("upgrade", help=texts.CLI_DB_UPGRADE_HELP)
    up.set_defaults(fn=cmd_db_upgrade)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
