"""Settings from the environment or `.env`. Secrets are SecretStr so they never show in
logs, reprs or error pages."""
from __future__ import annotations

from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import texts

DEFAULT_DATABASE_URL = "sqlite:///./collab-bot.db"


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    feishu_app_id: str = ""
    feishu_app_secret: SecretStr = SecretStr("")
    feishu_encrypt_key: SecretStr = SecretStr("")
    feishu_verification_token: SecretStr = SecretStr("")
    feishu_base_url: str = "https://open.feishu.cn"
    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "Asia/Shanghai"
    # How far a request's X-Lark-Request-Timestamp may be from our clock (S2).
    signature_window_seconds: int = 300
    max_body_bytes: int = 64 * 1024
    # Slow or stalled clients (S13), enforced by `collab-bot serve` (bot/server.py): a request's
    # headers must arrive within header_timeout_seconds, its body within body_timeout_seconds after
    # them; connections per client address beyond max_connections_per_client are refused (0: no cap,
    # for a reverse proxy in front); at max_connections the longest-waiting connection is closed.
    header_timeout_seconds: float = Field(5.0, gt=0)
    body_timeout_seconds: float = Field(10.0, gt=0)
    max_connections_per_client: int = Field(64, ge=0)
    max_connections: int = Field(4096, ge=0)
    # One access-log line per request: off by default, because with the group-message scope every
    # chat message is a request (README, Performance). Rejected and failed requests are logged anyway.
    access_log: bool = False
    # `collab-bot serve` runs the work nobody waits for (commands after their answer, sending, the
    # clock) in a second process, so answering Feishu never waits for it (bot/worker.py); off: all
    # in the webhook's process, as `collab-bot ws` and the sandbox run.
    background_process: bool = True
    # Handled inbox rows are kept this long to recognise Feishu's redeliveries (its retries span
    # about 7.1 h, platform.md §1.7), then deleted; pending and failed rows are never deleted.
    inbox_retention_hours: int = Field(24, ge=8)
    # Reminders (step 5): delays and thresholds.
    standup_nudge_minutes: int = Field(30, ge=1)
    standup_window_minutes: int = Field(60, ge=5)
    task_warn_hours: int = Field(24, ge=1)
    overdue_escalate_days: int = Field(2, ge=1)
    signoff_nudge_hours: int = Field(24, ge=1)
    # 飞书任务 sync (docs/feishu-tasks-bitable.md): off (no button), offer (the lead turns it on
    # per case from the case card), default (on for every case unless the lead turns it off).
    feishu_tasks: Literal["off", "offer", "default"] = "off"
    # 多维表格 board (docs/feishu-tasks-bitable.md): off (no button), offer (the lead creates it per
    # case from the case card), default (created for every case unless the lead stops it).
    feishu_board: Literal["off", "offer", "default"] = "off"

    @field_validator("feishu_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if value.startswith("https://"):
            return value
        if value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            return value  # loopback plain http: tests and local fakes
        raise ValueError("FEISHU_BASE_URL must be https://… or a loopback http:// address")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def feishu_configured(self) -> bool:
        return bool(self.feishu_app_id)

    def require_feishu(self) -> None:
        """Once an app id is set, the other credentials must be too (else events can't be verified)."""
        missing = [
            name
            for name, value in (
                ("FEISHU_APP_SECRET", self.feishu_app_secret),
                ("FEISHU_ENCRYPT_KEY", self.feishu_encrypt_key),
                ("FEISHU_VERIFICATION_TOKEN", self.feishu_verification_token),
            )
            if not value.get_secret_value()
        ]
        if missing:
            raise SettingsError(texts.CLI_MISSING_SETTINGS.format(names="、".join(missing)))
