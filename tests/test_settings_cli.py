"""Settings from the environment, clear messages for missing ones, the CLI's commands."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from bot.settings import Settings, SettingsError


def test_defaults(monkeypatch):
    for name in ("FEISHU_APP_ID", "DATABASE_URL", "TIMEZONE", "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.database_url.startswith("sqlite:///")
    assert s.timezone == "Asia/Shanghai"
    assert s.feishu_base_url == "https://open.feishu.cn"
    assert not s.feishu_configured


@pytest.mark.parametrize("url", ["https://open.larksuite.com", "http://127.0.0.1:18080", "http://localhost:9"])
def test_base_url_accepted(url):
    assert Settings(_env_file=None, feishu_base_url=url + "/").feishu_base_url == url


def test_non_loopback_http_refused():
    with pytest.raises(ValidationError):
        Settings(_env_file=None, feishu_base_url="http://fake-feishu:8000")


def test_bad_timezone_refused():
    with pytest.raises(ValidationError):
        Settings(_env_file=None, timezone="Mars/Olympus")


def test_missing_required_named():
    s = Settings(_env_file=None, feishu_app_id="cli_x", feishu_app_secret="s")
    with pytest.raises(SettingsError) as err:
        s.require_feishu()
    assert "FEISHU_ENCRYPT_KEY" in str(err.value) and "FEISHU_VERIFICATION_TOKEN" in str(err.value)
    assert "FEISHU_APP_SECRET" not in str(err.value)


def test_secrets_masked_in_repr():
    s = Settings(_env_file=None, feishu_app_id="cli_x", feishu_app_secret="top-secret-1",
                 feishu_encrypt_key="top-secret-2", feishu_verification_token="top-secret-3")
    shown = repr(s) + str(s) + str(s.model_dump())
    assert "top-secret" not in shown


def _cli(args, env, tmp_path):
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def test_cli_serve_refuses_incomplete_app_config(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": "very-secret-value",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PYTHONPATH": str(__import__('pathlib').Path.cwd())}
    out = _cli(["serve"], env, tmp_path)
    assert out.returncode != 0
    assert "FEISHU_ENCRYPT_KEY" in out.stderr and "FEISHU_VERIFICATION_TOKEN" in out.stderr
    assert "very-secret-value" not in out.stderr + out.stdout


def test_cli_db_upgrade(tmp_path):
    from pathlib import Path

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/up.db", "PYTHONPATH": str(Path.cwd())}
    out = _cli(["db", "upgrade"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "up.db").exists()


def test_sandbox_never_listens_publicly(tmp_path):
    """A container started without a Feishu app must not expose the login-less sandbox."""
    from pathlib import Path

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "PYTHONPATH": str(Path.cwd())}
    out = _cli(["serve", "--host", "0.0.0.0"], env, tmp_path)
    assert out.returncode == 2
    assert "127.0.0.1" in out.stderr
