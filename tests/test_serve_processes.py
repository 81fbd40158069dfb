"""`collab-bot serve` as it runs: the webhook's process and its two helpers (bot/worker.py), a
real server on loopback, the fake Open API over HTTP, signed and sealed events. A command is
answered by the background process, a click by the clicks' process; either helper killed is
started again and nothing stored is lost; stopping serve stops them."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot import texts
from bot.clock import SystemClock
from bot.security import seal
from feishu_fake import FakeFeishu
from feishu_fake import events as ev
from tests.driver import APP_ID, APP_SECRET, CHAT, ENCRYPT_KEY, LEAD, NAMES, TENANT, VERIFICATION_TOKEN
from tests.loopback import serve_in_thread, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> dict[str, int]:
    """The helpers of a serve process, by role."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"worker" in cmdline:
                found["clicks" if b"--click-fd" in cmdline else "background"] = int(child)
    return found


class Served:
    def __init__(self, proc: subprocess.Popen, url: str, fake: FakeFeishu) -> None:
        self.proc, self.url, self.fake = proc, url, fake
        self._n = 0

    def post(self, payload: dict) -> httpx.Response:
        body, headers = seal(payload, encrypt_key=ENCRYPT_KEY, timestamp=int(time.time()))
        return httpx.post(self.url + "/feishu/events", content=body,
                          headers={**headers, "Content-Type": "application/json"}, timeout=10)

    def say(self, text: str) -> httpx.Response:
        self._n += 1
        return self.post(ev.message_event(chat_id=CHAT, sender_open_id=LEAD, text=text, app_id=APP_ID,
                                          tenant_key=TENANT, token=VERIFICATION_TOKEN,
                                          create_ms=int(time.time() * 1000) + self._n))

    def click(self, value: dict) -> httpx.Response:
        return self.post(ev.card_action_event(chat_id=CHAT, message_id="om_not_ours", operator_open_id=LEAD,
                                              value=value, app_id=APP_ID, tenant_key=TENANT,
                                              token=VERIFICATION_TOKEN, create_ms=int(time.time() * 1000)))

    def bot_messages(self) -> int:
        return sum(1 for m in self.fake.messages(CHAT) if m.sender == "bot")

    def helpers(self) -> dict[str, int]:
        return _children(self.proc.pid)

    def both_ready(self) -> dict[str, int]:
        """The two helpers by role once both run and the clicks' one takes clicks, else {}."""
        helpers = self.helpers()
        ready = httpx.get(self.url + "/healthz", timeout=5).json().get("helpers") == "ready"
        return helpers if len(helpers) == 2 and ready else {}


@pytest.fixture
def served(database_url, tmp_path):
    fake = FakeFeishu(app_id=APP_ID, app_secret=APP_SECRET, clock=SystemClock(), tenant_key=TENANT)
    fake.add_chat(CHAT, members=list(NAMES.items()))
    fake_server, fake_thread, fake_port = serve_in_thread(fake.asgi_app(), lifespan="off")
    port = _free_port()
    env = {**os.environ, "FEISHU_APP_ID": APP_ID, "FEISHU_APP_SECRET": APP_SECRET,
           "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY, "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
           "FEISHU_BASE_URL": f"http://127.0.0.1:{fake_port}", "DATABASE_URL": database_url,
           "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), "serve answers /healthz", 60, every=0.05)
        served = Served(proc, url, fake)
        wait_until(served.both_ready, "both helpers ready", 60, every=0.05)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        fake_server.should_exit = True
        fake_thread.join(10)
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _toast(resp: httpx.Response) -> str:
    return resp.json().get("toast", {}).get("content", "")


def test_a_command_is_handled_and_delivered_by_the_background_process(served):
    assert served.say("/帮助").status_code == 200
    wait_until(lambda: served.bot_messages() >= 1, "the help card reaches the group", 20, every=0.05)
    assert served.bot_messages() == 1


def test_a_click_is_answered_by_the_clicks_process(served):
    helpers = served.helpers()
    resp = served.click({"a": "track.show", "c": 999})
    assert resp.status_code == 200 and _toast(resp)
    answered = _toast(resp)
    # a stopped clicks' process: the click is waited for (not answered twice), then the clicker is
    # told it is being handled; once it runs again the next click is answered by it as before
    os.kill(helpers["clicks"], signal.SIGSTOP)
    try:
        start = time.monotonic()
        slow = served.click({"a": "track.show", "c": 999})
        waited = time.monotonic() - start
    finally:
        os.kill(helpers["clicks"], signal.SIGCONT)
    assert slow.status_code == 200 and _toast(slow) == texts.CLICK_SLOW
    assert 2.4 < waited < 3.5   # answered at 2.5 s, before Feishu gives up at 3 s (HTTP on top)
    again = served.click({"a": "track.show", "c": 999})
    assert again.status_code == 200 and _toast(again) == answered
    assert served.helpers() == helpers


def test_a_killed_helper_is_started_again_and_nothing_stored_is_lost(served):
    helpers = served.helpers()
    os.kill(helpers["background"], signal.SIGKILL)
    # stored while no background process runs: the next one handles it when it starts
    assert served.say("/帮助").status_code == 200
    wait_until(lambda: served.bot_messages() >= 1, "the help card after the restart", 30, every=0.05)
    restarted = wait_until(served.both_ready, "both helpers again", 30, every=0.05)
    assert restarted["background"] != helpers["background"]
    # a killed clicks' process: the click is answered by the webhook's own process meanwhile
    os.kill(restarted["clicks"], signal.SIGKILL)
    time.sleep(0.2)
    resp = served.click({"a": "track.show", "c": 999})
    assert resp.status_code == 200 and _toast(resp)
    again = wait_until(served.both_ready, "both helpers again", 30, every=0.05)
    assert again["clicks"] != restarted["clicks"]
    assert served.say("/帮助").status_code == 200
    wait_until(lambda: served.bot_messages() >= 2, "the second help card", 30, every=0.05)
    assert served.bot_messages() == 2


def test_stopping_serve_stops_its_helpers(served):
    helpers = served.helpers()
    start = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then exits by the signal it caught
    assert served.proc.wait(30) in (0, -signal.SIGTERM)
    assert time.monotonic() - start < 10   # the helpers finished on their own, none was killed
    for pid in helpers.values():
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), f"helper {pid} exits", 10, every=0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
