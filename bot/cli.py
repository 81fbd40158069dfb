"""`collab-bot serve | ws | db upgrade`."""
from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from bot.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            print(f"配置错误 {name}: {err['msg']}", file=sys.stderr)
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
    from sqlalchemy.exc import OperationalError

    from bot import db

    try:
        db.upgrade(settings.database_url)
    except OperationalError:
        logging.getLogger("bot").warning("数据库暂时无法连接，服务先启动并返回 503，连接恢复后自动升级。")
    except Exception as exc:  # noqa: BLE001 - e.g. a database newer than this code
        print(f"数据库升级失败，未启动：{type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.sandbox or not settings.feishu_configured:
        try:
            from sandbox.run import serve_sandbox
        except ModuleNotFoundError:
            print("未配置飞书应用（FEISHU_APP_ID 为空）。本地沙盒尚未提供，请先按 README 配置飞书应用。",
                  file=sys.stderr)
            return 2
        return serve_sandbox(settings, host=args.host, port=args.port)
    _require_feishu(settings)
    _upgrade_or_exit(settings)
    import uvicorn

    from bot.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info",
                limit_concurrency=args.limit_concurrency, proxy_headers=True)
    return 0


def cmd_ws(args: argparse.Namespace) -> int:
    settings = _settings()
    if not settings.feishu_configured or not settings.feishu_app_secret.get_secret_value():
        print("长连接模式需要 FEISHU_APP_ID 和 FEISHU_APP_SECRET。", file=sys.stderr)
        return 2
    from bot.longconn import run_long_connection

    return run_long_connection(settings, host=args.host, port=args.port)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from bot import db

    settings = _settings()
    db.upgrade(settings.database_url)
    print("数据库已升级到最新版本。")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="collab-bot", description="跨部门协作飞书机器人")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="启动 Webhook 服务（未配置飞书应用时启动本地沙盒）")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", action="store_true", help="强制启动本地沙盒")
    serve.add_argument("--limit-concurrency", type=int, default=1000)
    serve.set_defaults(fn=cmd_serve)
    ws = sub.add_parser("ws", help="通过长连接接收事件（无需公网地址）")
    ws.add_argument("--host", default="127.0.0.1", help="健康检查端口的监听地址")
    ws.add_argument("--port", type=int, default=8000)
    ws.set_defaults(fn=cmd_ws)
    dbp = sub.add_parser("db", help="数据库")
    dbsub = dbp.add_subparsers(dest="dbcmd", required=True)
    up = dbsub.add_parser("upgrade", help="执行数据库迁移")
    up.set_defaults(fn=cmd_db_upgrade)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
