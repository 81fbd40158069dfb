"""Regenerate the README's screenshot of the sandbox: `python -m sandbox.screenshot docs/sandbox.png`.

Starts a sandbox (temporary SQLite database), opens it in Debian's Chromium (headless), opens a case,
fills the step-1 form and lets two of three department heads sign, then captures the page."""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from datetime import timedelta

from bot.settings import Settings
from sandbox.run import MEMBERS, SandboxServer

LEAD, TECH, DESIGN, DEV, QA = (p.open_id for p in MEMBERS)


def capture(path: str, chromium: str = "/usr/bin/chromium") -> None:
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415 - playwright is a test extra, not installed in production

    with tempfile.TemporaryDirectory() as tmp:
        server = SandboxServer(Settings(_env_file=None), host="127.0.0.1", port=0,
                               database_url=f"sqlite:///{tmp}/sandbox.db", log_level="warning").start_in_thread()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium,
                                            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN",
                                        timezone_id="Asia/Shanghai", device_scale_factor=1)
                page.goto(server.url)
                expect(page.locator(".msg .card").first).to_be_visible()
                page.fill("#composer-text", "/问题 新品推广页面延迟")
                page.press("#composer-text", "Enter")
                form = page.locator(".msg").filter(has=page.locator(".card-title", has_text="新建协作问题")).last
                mid = form.get_attribute("data-message-id")
                form = page.locator(f'.msg[data-message-id="{mid}"]')
                goal = server.sandbox.clock.now() + timedelta(days=10)
                for name, value in (("background", "市场部原计划本周五上线新品推广页面"),
                                    ("current_state", "技术部尚未完成用户数据接口对接"),
                                    ("impact", "推广活动延迟3天，预计影响客流5000人次"),
                                    ("goal", "3天内完成页面对接，保证推广活动按期上线"),
                                    ("expected_outcome", "推广页面按期上线，客流损失控制在1000人次以内")):
                    form.locator(f"[name={name}]").fill(value)
                form.locator("[name=goal_date]").fill(goal.astimezone(server.sandbox.settings.tz).strftime("%Y-%m-%d"))
                for i, (dept, head) in enumerate((("市场部", LEAD), ("技术部", TECH), ("设计部", DESIGN)), start=1):
                    form.locator(f"[name=dept{i}_name]").fill(dept)
                    form.locator(f"select[name=dept{i}_head]").select_option(head)
                form.get_by_role("button", name="提交问题共识表").click()
                expect(form.locator(".card-title")).to_contain_text("问题共识表")
                for head in (LEAD, TECH):
                    page.select_option("#acting-as", head)
                    form.get_by_role("button", name="签字确认").click()
                    expect(page.locator(".toast", has_text="已签字").last).to_be_visible()
                page.select_option("#acting-as", DESIGN)
                page.fill("#composer-text", "/进度")
                page.wait_for_timeout(3500)   # let the toasts fade
                form.scroll_into_view_if_needed()
                page.screenshot(path=path)
                browser.close()
        finally:
            server.stop()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default="docs/sandbox.png")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    capture(args.path, args.chromium)
    print(args.path)


if __name__ == "__main__":
    main()
