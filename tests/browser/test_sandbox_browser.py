"""The sandbox in a real browser: Debian's Chromium, headless, driven by Playwright (never a
browser download). The sandbox server (bot + fake Open API) runs in a background thread on
loopback ports with a fresh database. On failure a screenshot is kept in test-artifacts/."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium "
                "fonts-wqy-microhei); .ci/run does", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
expect = sync_api.expect

from bot.settings import Settings  # noqa: E402
from sandbox.run import MEMBERS, SandboxServer  # noqa: E402

LEAD, TECH, DESIGN, DEV, QA = (p.open_id for p in MEMBERS)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def sandbox(database_url):
    server = SandboxServer(Settings(_env_file=None), host="127.0.0.1", port=0, database_url=database_url,
                           log_level="warning").start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser, sandbox, request):
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai",
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    outside: list[str] = []
    # nothing may leave the machine: every request the page makes goes to the sandbox itself
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/).*"),
                  lambda route: (outside.append(route.request.url), route.abort()))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(sandbox.url)
    expect(pg.locator(".msg .card-title").first).to_have_text("你好，我是跨部门协作助手")
    try:
        yield pg
        assert not errors, errors
        assert not outside, outside
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise
    finally:
        context.close()


@contextmanager
def screenshot_on_failure(pg, name: str):
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def act_as(pg, open_id: str) -> None:
    pg.select_option("#acting-as", open_id)


def say(pg, text: str) -> None:
    pg.fill("#composer-text", text)
    pg.press("#composer-text", "Enter")
    expect(pg.locator("#composer-text")).to_have_value("")


def message(pg, mid: str):
    return pg.locator(f'.msg[data-message-id="{mid}"]')


def card_titled(pg, title: str):
    msg = pg.locator(".msg").filter(has=pg.locator(".card-title", has_text=title)).last
    expect(msg).to_be_visible()
    return msg.get_attribute("data-message-id")


def toast(pg, text: str):
    expect(pg.locator(".toast", has_text=text).last).to_be_visible()


# ------------------------------------------------------------------ step 1 end to end
def test_open_a_case_fill_step1_and_every_head_signs(page, sandbox):
    pg = page
    with screenshot_on_failure(pg, "step1"):
        act_as(pg, LEAD)
        say(pg, "/问题 新品推广页面延迟")
        mid = card_titled(pg, "新建协作问题")
        form = message(pg, mid)
        goal = (sandbox.sandbox.clock.now() + timedelta(days=10)).astimezone(sandbox.sandbox.settings.tz)
        form.get_by_label("背景").fill("市场部原计划本周上线新品推广页面")
        form.get_by_label("现状").fill("技术部未完成接口对接")
        # the bot checks the fields: an error toast, and the form comes back with what was typed
        form.get_by_role("button", name="提交问题共识表").click()
        expect(pg.locator(".toast.toast-error").last).to_be_visible()
        expect(form.get_by_label("背景")).to_have_value("市场部原计划本周上线新品推广页面")
        form.get_by_label("影响").fill("推广活动延迟3天，预计影响客流5000人次")
        form.get_by_label("共同目标").fill("3天内完成页面对接，保证推广活动按期上线")
        form.locator("input[name=goal_date]").fill(goal.strftime("%Y-%m-%d"))
        form.get_by_label("预期成果").fill("推广页面按期上线，客流损失控制在1000人次以内")
        for i, (dept, head) in enumerate((("市场部", LEAD), ("技术部", TECH)), start=1):
            form.locator(f"[name=dept{i}_name]").fill(dept)
            form.locator(f"select[name=dept{i}_head]").select_option(head)
        expect(form.locator("[name=dept3_name]")).to_have_count(0)     # two rows; more on request
        form.locator("input[name=more_depts]").check()
        form.get_by_role("button", name="提交问题共识表").click()
        expect(form.locator("[name=dept3_name]")).to_have_count(1)
        expect(form.locator("[name=dept2_name]")).to_have_value("技术部")   # nothing typed is lost
        form.locator("[name=dept3_name]").fill("设计部")
        form.locator("select[name=dept3_head]").select_option(DESIGN)
        form.get_by_role("button", name="提交问题共识表").click()
        # the callback's answer replaces the form with 《问题共识表》 in place
        expect(form.locator(".card-title")).to_contain_text("问题共识表")
        expect(form).to_contain_text("待签字")
        # someone who is not a head: a toast naming who may sign, nothing changes
        act_as(pg, QA)
        form.get_by_role("button", name="签字确认").click()
        toast(pg, "市场部")
        for n, head in enumerate((LEAD, TECH), start=1):
            act_as(pg, head)
            form.get_by_role("button", name="签字确认").click()
            expect(form.locator(".card-table .tag", has_text="已签字")).to_have_count(n)  # patched in place
        toast(pg, "已签字")
        act_as(pg, DESIGN)
        form.get_by_role("button", name="签字确认").click()
        toast(pg, "已达成共识")
        expect(form.locator(".card-header")).to_have_class(re.compile(r"\btpl-green\b"))
        expect(form).to_contain_text("已达成共识")
        expect(form.get_by_role("button", name="签字确认")).to_have_count(0)
        # the step change is the new case card, with the line at its top
        expect(pg.locator(".msg.from-bot", has_text="进入第 2 步").last).to_be_visible()


# ------------------------------------------------------------------ the clock and the standup
def _seed_execution_case(sandbox) -> None:
    """A case already in step 5 with open tasks (steps 1–4 are covered by their own tests)."""
    from tests.casefactory import TaskSpec, make_bare_step5_case

    sb = sandbox.sandbox
    now = sb.clock.now()
    make_bare_step5_case(sb.state.factory, now=now, tenant_key=sb.tenant_key, chat_id=sb.chat_id, lead=LEAD, tasks=[
        TaskSpec(content, owner, now - timedelta(days=1), now + timedelta(days=6), status="doing", progress=30)
        for owner, content in ((TECH, "完成用户数据加密接口开发"), (DEV, "接口联调测试"))])


def test_move_the_clock_to_the_standup_and_answer_it(page, sandbox):
    pg = page
    _seed_execution_case(sandbox)
    with screenshot_on_failure(pg, "standup"):
        pg.locator(".clock-btn[data-advance=standup]").click()
        expect(pg.locator("#clock-now")).to_contain_text("09:30")
        mid = card_titled(pg, "今日站会")
        standup = message(pg, mid)
        expect(standup).to_contain_text("@李娜")
        expect(standup).to_contain_text("接口联调测试")
        act_as(pg, TECH)
        standup.get_by_role("button", name="今日无变化").click()
        toast(pg, "已记录：今日无变化")
        expect(standup).to_contain_text("已回复")
        act_as(pg, DEV)
        standup.get_by_role("button", name="更新我的进度").click()
        form_mid = card_titled(pg, "更新进度")
        form = message(pg, form_mid)
        # the form is private: labelled for 刘洋 only, and gone from the view of anyone else
        expect(form.locator(".tag-private")).to_have_text("仅刘洋可见")
        act_as(pg, TECH)
        expect(form).to_be_hidden()
        act_as(pg, DEV)
        expect(form).to_be_visible()
        form.locator("select").first.select_option("doing")
        form.get_by_label("完成率").first.fill("60")
        form.get_by_role("button", name=re.compile(r"^保存")).first.click()
        toast(pg, "60%")
        expect(standup).to_contain_text("60%")   # the shared standup card shows it, patched in place


def test_quarter_hour_steps_reach_the_standup_nudge(page, sandbox):
    pg = page
    _seed_execution_case(sandbox)
    with screenshot_on_failure(pg, "nudge"):
        pg.locator(".clock-btn[data-advance=standup]").click()
        card_titled(pg, "今日站会")
        quarter = pg.locator(".clock-btn[data-advance=quarter]")
        expect(quarter).to_have_text("+15 分钟")
        quarter.click()
        expect(pg.locator("#clock-now")).to_contain_text("09:45")
        expect(pg.locator(".msg.from-bot .text-body", has_text="今日站会还没收到你的进度")).to_have_count(0)
        quarter.click()
        expect(pg.locator("#clock-now")).to_contain_text("10:00")
        expect(pg.locator(".msg.from-bot .text-body", has_text="今日站会还没收到你的进度")).to_have_count(1)


# ------------------------------------------------------------------ the renderer itself
def test_renderer_shows_unsupported_features_and_renders_markdown_faithfully(page):
    pg = page
    html = pg.evaluate("""() => {
      const ctx = {members: {ou_a: {name: '李娜', dept: '技术部'}}, bot: {open_id: 'ou_bot', name: '协作助手'},
                   texts: {unsupported: '[不支持的组件: {tag}]', unsupported_markdown: '[不支持的 Markdown: {what}]',
                           unknown_user: '未知用户', at_all: '所有人', page_prev: '上一页', page_next: '下一页',
                           page_of: '第 {page}/{pages} 页', select_placeholder: '请选择',
                           person_placeholder: '选择成员'},
                   tzOffset: '+0800', onAction: () => Promise.resolve(), toast: () => {}, busy: (n, p) => p};
      const card = {schema: '2.0', header: {title: {tag: 'plain_text', content: 'T'}, template: 'red'},
        body: {elements: [
          {tag: 'markdown',
           content: "**粗** &#42;不是斜体&#42; <at id=ou_a></at> <font color='red'>红</font>\\n- 一\\n- 二"},
          {tag: 'img', img_key: 'img_x'},
          {tag: 'column_set', columns: [{tag: 'column', elements: [{tag: 'audio'}]}]},
          {tag: 'chart', chart_spec: {type: 'pie', data: {values: []}}},
          {tag: 'chart', chart_spec: {type: 'bar', data: {values: [{task: '接口', pct: 60}, {task: '设计', pct: 100}]},
                                      xField: 'task', yField: 'pct'}},
          {tag: 'table', page_size: 1, columns: [{name: 's', display_name: '状态', data_type: 'options'},
                                                 {name: 'p', display_name: '人', data_type: 'persons'},
                                                 {name: 'x', display_name: 'X', data_type: 'weird'}],
           rows: [{s: [{text: '已签字', color: 'green'}], p: 'ou_a', x: 1},
                  {s: [{text: '待签字', color: 'orange'}], p: [], x: 2}]},
        ]}};
      const el = window.SandboxCards.render(card, ctx);
      document.body.appendChild(el);
      return {text: el.innerText, strong: el.querySelector('strong').textContent, em: el.querySelectorAll('em').length,
              unsupported: Array.from(el.querySelectorAll('[data-unsupported]'))
                .map(e => e.getAttribute('data-unsupported')),
              bars: el.querySelectorAll('.chart-bar').length, li: el.querySelectorAll('li').length,
              red: el.querySelector('.fc-red').textContent, header: el.querySelector('.card-header').className};
    }""")
    assert html["unsupported"] == ["img", "audio", "chart:pie", "table:weird"]
    assert "[不支持的组件: img]" in html["text"] and "[不支持的组件: audio]" in html["text"]
    assert html["strong"] == "粗" and html["em"] == 0 and "*不是斜体*" in html["text"]
    assert "@李娜" in html["text"] and html["red"] == "红" and html["li"] == 2
    assert html["bars"] == 2 and "tpl-red" in html["header"]
    assert "已签字" in html["text"] and "第 1/2 页" in html["text"]


def test_renderer_draws_the_bots_timelines(page):
    """The plan's and the report's rangeColumn timelines: a row per task, bars placed on the day
    axis, one bar per series side by side, the key node as a dashed line, the axis and legend."""
    got = page.evaluate("""() => {
      const ctx = {members: {}, bot: {open_id: 'ou_bot', name: '协作助手'},
                   texts: {unsupported: '[不支持的组件: {tag}]', unsupported_markdown: '[{what}]', unknown_user: '?',
                           at_all: '所有人', page_prev: '<', page_next: '>', page_of: '{page}/{pages}',
                           select_placeholder: '', person_placeholder: ''},
                   tzOffset: '+0800', onAction: () => Promise.resolve(), toast: () => {}, busy: (n, p) => p};
      const spec = {type: 'rangeColumn', direction: 'horizontal', title: {text: '计划与实际'},
        data: {values: [{label: '接口开发', start: 0, end: 2, series: '计划'},
                        {label: '接口开发', start: 0, end: 3, series: '实际'},
                        {label: '页面适配', start: 1, end: 2, series: '计划'}]},
        xField: ['start', 'end'], yField: 'label', seriesField: 'series',
        axes: [{orient: 'bottom', type: 'linear', title: {visible: true, text: '天（0 = 12-08 09:00）'}},
               {orient: 'left', type: 'band'}],
        markLine: [{x: 4, label: {visible: true, text: '上线', position: 'end'}}]};
      const card = {schema: '2.0', header: {title: {tag: 'plain_text', content: 'T'}, template: 'blue'},
                    body: {elements: [{tag: 'chart', height: '160px', chart_spec: spec}]}};
      const el = window.SandboxCards.render(card, ctx);
      document.body.appendChild(el);
      const bars = Array.from(el.querySelectorAll('.timeline-bar'));
      return {text: el.innerText, unsupported: el.querySelectorAll('[data-unsupported]').length,
              rows: Array.from(el.querySelectorAll('.chart-label')).map(e => e.textContent),
              bars: bars.map(b => [b.style.left, b.style.width]),
              marks: Array.from(el.querySelectorAll('.timeline-mark')).map(m => m.style.left)};
    }""")
    assert got["unsupported"] == 0 and got["rows"] == ["接口开发", "页面适配"]
    assert got["bars"] == [["0%", "50%"], ["0%", "75%"], ["25%", "25%"]]
    assert got["marks"] == ["100%", "100%"]
    assert "上线" in got["text"] and "天（0 = 12-08 09:00）" in got["text"] and "实际" in got["text"]


def test_every_card_the_bot_sends_renders_without_placeholders(page):
    """The reviewed card snapshots are what the bot sends: the sandbox must render all of them."""
    import json

    snapshots = sorted((Path(__file__).resolve().parents[1] / "snapshots").glob("*.json"))
    assert snapshots
    cards = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in snapshots}
    result = page.evaluate("""(cards) => {
      const ctx = {members: {}, bot: {open_id: 'ou_bot', name: '协作助手'},
                   texts: {unsupported: '[不支持的组件: {tag}]', unsupported_markdown: '[不支持的 Markdown: {what}]',
                           unknown_user: '未知用户', at_all: '所有人', page_prev: '上一页', page_next: '下一页',
                           page_of: '第 {page}/{pages} 页', select_placeholder: '请选择',
                           person_placeholder: '选择成员', date_placeholder: '选择日期', time_placeholder: '选择时间',
                           datetime_placeholder: '选择日期时间'},
                   tzOffset: '+0800', onAction: () => Promise.resolve(), toast: () => {}, busy: (n, p) => p};
      const out = {};
      for (const [name, card] of Object.entries(cards)) {
        const el = window.SandboxCards.render(card, ctx);
        out[name] = {bad: Array.from(el.querySelectorAll('[data-unsupported]'))
                       .map(e => e.getAttribute('data-unsupported')),
                     text: el.textContent.length};
      }
      return out;
    }""", cards)
    bad = {name: r["bad"] for name, r in result.items() if r["bad"]}
    assert not bad, bad
    assert all(r["text"] > 0 for r in result.values())
