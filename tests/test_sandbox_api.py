"""The local sandbox without a browser: the real bot and the fake Open API served on loopback
ports in a background thread, driven through the page's JSON API. Every request to the page's
API returns once the bot has answered (the sandbox waits for the bot's outbox), so there is no
sleeping here."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot import texts
from bot.models import InboxEvent
from bot.settings import Settings
from sandbox.run import MEMBERS, SandboxServer
from tests.driver import fits, walk

LEAD, TECH, DESIGN, DEV, QA = (p.open_id for p in MEMBERS)
STATIC = Path(__file__).resolve().parents[1] / "sandbox" / "static"


@pytest.fixture
def sandbox(database_url):
    server = SandboxServer(Settings(_env_file=None), host="127.0.0.1", port=0, database_url=database_url,
                           log_level="warning").start_in_thread()
    client = httpx.Client(base_url=server.url.rsplit("/sandbox", 1)[0], timeout=30)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def bot_cards(client: httpx.Client) -> list[dict]:
    state = client.get("/sandbox/api/state").json()
    return [m for m in state["messages"] if m["sender"] == "bot" and m["msg_type"] == "interactive"]


def title(card: dict) -> str:
    return card.get("header", {}).get("title", {}).get("content", "")


def last_card(client: httpx.Client, contains: str) -> dict:
    for m in reversed(bot_cards(client)):
        if contains in title(m["content"]):
            return m
    raise AssertionError(f"no card {contains!r}: {[title(m['content']) for m in bot_cards(client)]}")


def button_value(card: dict, label: str) -> dict:
    for node in walk(card["body"]):
        if node.get("tag") == "button" and node.get("text", {}).get("content") == label:
            return next(b["value"] for b in node["behaviors"] if b["type"] == "callback")
    raise AssertionError(f"no button {label!r}")


def submit_name(card: dict) -> str:
    for node in walk(card["body"]):
        if node.get("tag") == "button" and node.get("form_action_type") == "submit":
            return node["name"]
    raise AssertionError("no submit button")


# ------------------------------------------------------------------ the page
def test_page_and_assets_are_served_and_need_no_internet(sandbox):
    _server, client = sandbox
    page = client.get("/sandbox")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith("/sandbox/static/") for r in refs), refs
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
    config = client.get("/sandbox/api/config").json()
    assert {m["name"] for m in config["members"]} == {"陈静", "李娜", "王芳", "刘洋", "赵强"}
    assert len({m["dept"] for m in config["members"]}) >= 4
    assert config["tz_offset"] == "+0800"


def test_static_files_reference_nothing_external():
    files = list(STATIC.glob("*"))
    assert {f.name for f in files} >= {"index.html", "app.js", "cards.js", "style.css"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text), f.name   # no CDN, no URL at all
        assert "@import" not in text and "url(" not in text, f.name


def test_welcome_card_when_the_bot_joins(sandbox):
    _server, client = sandbox
    assert [title(m["content"]) for m in bot_cards(client)] == ["你好，我是跨部门协作助手"]


# ------------------------------------------------------------------ end to end
def test_command_goes_through_the_webhook_and_the_card_comes_back_through_the_open_api(sandbox):
    server, client = sandbox
    r = client.post("/sandbox/api/messages", json={"as": TECH, "text": "/帮助"})
    assert r.status_code == 200 and r.json()["status"] == 200
    state = client.get("/sandbox/api/state").json()
    user_msgs = [m for m in state["messages"] if m["sender"] == TECH]
    assert [m["content"]["text"] for m in user_msgs] == ["/帮助"]
    assert title(bot_cards(client)[-1]["content"]) == "协作助手 · 使用说明"
    # the bot's real client sent it over HTTP with a tenant token (the fake checks both)
    sends = server.sandbox.fake.calls_to("/open-apis/im/v1/messages", "POST")
    assert sends and all(c.status == 200 for c in sends)
    assert server.sandbox.fake.calls_to("/open-apis/auth/v3/tenant_access_token/internal")
    # and the event was stored in the inbox by the webhook
    with server.sandbox.state.factory() as s:
        types = s.scalars(select(InboxEvent.event_type)).all()
    assert "im.message.receive_v1" in types and "im.chat.member.bot.added_v1" in types


def test_webhook_still_refuses_unsigned_requests(sandbox):
    _server, client = sandbox
    r = client.post("/feishu/events", content=json.dumps({"encrypt": "AAAA"}),
                    headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 401)


def test_form_submit_and_sign_round_trip_updates_the_card_in_place(sandbox):
    server, client = sandbox
    client.post("/sandbox/api/messages", json={"as": LEAD, "text": "/问题 新品推广页面延迟"})
    form = last_card(client, "新建协作问题")
    values = {"title": "新品推广页面延迟", "background": "市场部原计划本周上线新品推广页面",
              "current_state": "技术部未完成接口对接", "impact": "推广活动延迟3天，预计影响客流5000人次",
              "goal": "3天内完成页面对接，保证推广活动按期上线",
              "goal_date": (server.sandbox.clock.now() + timedelta(days=10)).strftime("%Y-%m-%d") + " +0800",
              "expected_outcome": "推广页面按期上线",
              "dept1_name": "市场部", "dept1_head": LEAD, "dept2_name": "技术部", "dept2_head": TECH}
    answer = client.post("/sandbox/api/action", json={"as": LEAD, "message_id": form["message_id"], "action": {
        "tag": "button", "name": submit_name(form["content"]), "form_value": values}}).json()
    assert answer["card_replaced"] and answer["toast"]["type"] == "success", answer
    table = next(m for m in bot_cards(client) if m["message_id"] == form["message_id"])
    assert "问题共识表" in title(table["content"]) and table["updated"]
    # a wrong person's click: an error toast naming who may act; the card stays
    value = button_value(table["content"], "签字确认")
    refused = client.post("/sandbox/api/action", json={"as": QA, "message_id": form["message_id"], "action": {
        "tag": "button", "value": value}}).json()
    assert refused["toast"]["type"] == "error" and fits(texts.S1_ONLY_HEAD, refused["toast"]["content"])
    assert "市场部" in refused["toast"]["content"]
    for head in (LEAD, TECH):
        table = next(m for m in bot_cards(client) if m["message_id"] == form["message_id"])
        value = button_value(table["content"], "签字确认")
        signed = client.post("/sandbox/api/action", json={"as": head, "message_id": form["message_id"],
                                                          "action": {"tag": "button", "value": value}}).json()
        assert signed["toast"]["type"] == "success", signed
    table = next(m for m in bot_cards(client) if m["message_id"] == form["message_id"])
    assert table["content"]["header"]["template"] == "green"
    with server.sandbox.state.factory() as s:
        types = s.scalars(select(InboxEvent.event_type)).all()
    assert types.count("card.action.trigger") == 4


def test_mentions_are_sent_like_feishu(sandbox):
    server, _client = sandbox
    text, mentions = server.sandbox._mentions("@协作助手 /进度 请@李娜 看一下，@李娜")
    assert text == "@_user_1 /进度 请@_user_2 看一下，@_user_2"
    assert [(m["key"], m["open_id"]) for m in mentions] == [("@_user_1", "ou_sandbox_bot"), ("@_user_2", TECH)]


# ------------------------------------------------------------------ refusals and the clock
def test_bad_requests_get_a_clear_answer_and_change_nothing(sandbox):
    _server, client = sandbox
    before = client.get("/sandbox/api/state").json()["messages"]
    assert client.post("/sandbox/api/messages", json={"as": "ou_stranger", "text": "/帮助"}).json()["error"] \
        == "沙盒里没有这个成员。"
    assert client.post("/sandbox/api/messages", json={"as": LEAD, "text": "   "}).status_code == 400
    assert client.post("/sandbox/api/action", json={"as": LEAD, "message_id": "om_nope", "action": {}}
                       ).status_code == 400
    assert client.post("/sandbox/api/clock", json={"advance": "week"}).status_code == 400
    assert client.post("/sandbox/api/clock", json={"advance": "key_node"}).json()["error"] \
        == "当前没有尚未到来的关键节点。"
    assert client.get("/sandbox/api/state").json()["messages"] == before


def test_clock_moves_forward_and_state_polling_reports_changes(sandbox):
    server, client = sandbox
    first = client.get("/sandbox/api/state").json()
    same = client.get("/sandbox/api/state", params={"rev": first["rev"]}).json()
    assert same.get("unchanged") is True and "messages" not in same
    before = server.sandbox.clock.now()
    r = client.post("/sandbox/api/clock", json={"advance": "hour"}).json()
    assert 3599 <= (server.sandbox.clock.now() - before).total_seconds() < 3700
    assert r["now"] == server.sandbox.now_label()
    r = client.post("/sandbox/api/clock", json={"advance": "standup"}).json()
    local = server.sandbox.clock.now().astimezone(server.sandbox.settings.tz)
    assert local.strftime("%H:%M") == "09:30" and local.weekday() < 5


def test_serve_without_feishu_app_starts_the_sandbox(monkeypatch):
    import sandbox.run
    from bot import cli

    seen = {}
    monkeypatch.setattr(sandbox.run, "serve_sandbox",
                        lambda settings, host, port: seen.update(host=host, port=port) or 0)
    monkeypatch.setattr(cli, "_settings", lambda: Settings(_env_file=None))
    assert cli.main(["serve", "--port", "8123"]) == 0
    assert seen == {"host": "127.0.0.1", "port": 8123}


def test_jump_to_24_hours_before_a_key_node_brings_its_reminder(sandbox):
    from bot.models import KeyNode
    from tests.casefactory import TaskSpec, make_bare_step5_case

    server, client = sandbox
    sb = server.sandbox
    now = sb.clock.now()
    task = TaskSpec("接口联调测试", DEV, now - timedelta(days=1), now + timedelta(days=2), status="doing", progress=30)
    case_id = make_bare_step5_case(sb.state.factory, now=now, tenant_key=sb.tenant_key, chat_id=sb.chat_id, lead=LEAD,
                                   tasks=[task])
    with sb.state.factory() as s, s.begin():
        s.add(KeyNode(tenant_key=sb.tenant_key, chat_id=sb.chat_id, case_id=case_id, name="推广页上线",
                      at=now + timedelta(days=3)))
    from bot.reminders import keynode_check_slot
    from bot.workdays import WorkCalendar

    # 24 hours before the node, moved to working hours as the bot holds it
    eve = keynode_check_slot(now + timedelta(days=3), 24, WorkCalendar(), sb.state.settings.tz)
    r = client.post("/sandbox/api/clock", json={"advance": "key_node"})
    assert r.status_code == 200, r.text
    assert abs((sb.clock.now() - eve).total_seconds()) < 60
    card = last_card(client, "推广页上线前")
    assert "接口联调测试" in json.dumps(card["content"], ensure_ascii=False)
    answer = client.post("/sandbox/api/action", json={"as": LEAD, "message_id": card["message_id"], "action": {
        "tag": "button", "value": button_value(card["content"], "确认可以按期进行")}}).json()
    assert answer["toast"]["type"] == "success", answer


def test_sandbox_database_is_temporary_unless_chosen_and_never_the_production_one(tmp_path):
    from sandbox.run import database_for

    url, shown = database_for(Settings(_env_file=None), str(tmp_path))
    assert url == f"sqlite:///{tmp_path}/sandbox.db" and "临时" in shown
    chosen = Settings(_env_file=None, database_url="postgresql://bot:secret@127.0.0.1/sandbox")
    url, shown = database_for(chosen, str(tmp_path))
    assert url == chosen.database_url and "secret" not in shown
    production = Settings(_env_file=None, database_url="postgresql://bot:secret@db/prod", feishu_app_id="cli_real")
    assert database_for(production, str(tmp_path))[0].startswith("sqlite:///")


READ_ONLY_VIEWS = [
    pytest.param("feishu_tasks", "同步到飞书任务", "已开启飞书任务同步，正在把任务同步到飞书任务", "summary",
                 lambda t: t["done"] is False and t["due"], id="feishu_tasks"),
    pytest.param("feishu_board", "创建多维表格看板", "正在创建多维表格看板，稍后群里会收到链接", "task",
                 lambda r: r["status"] == "未开始" and r["progress"] == 0 and r["owner"], id="feishu_board"),
]


@pytest.mark.parametrize(("view", "button", "toast", "name", "as_published"), READ_ONLY_VIEWS)
def test_a_feishu_sync_appears_read_only_in_the_page_state(sandbox, view, button, toast, name, as_published):
    """The sandbox offers 飞书任务 sync and the 多维表格 board against its fake; the page's state
    lists the tasks (the board's 任务 records) as the simulated Feishu holds them, so a newcomer
    sees the sync happen."""
    import time as _time

    from bot.models import Case
    from tests.casefactory import make_case_at_step4, make_plan_published

    server, client = sandbox
    sb = server.sandbox
    assert client.get("/sandbox/api/state").json()[view] == []
    lead = MEMBERS[0].open_id
    now = sb.clock.now()
    case_id = make_case_at_step4(sb.state.factory, now=now, tenant_key=sb.tenant_key, chat_id=sb.chat_id)
    with sb.state.factory() as s, s.begin():
        s.get(Case, case_id).lead_open_id = lead
    make_plan_published(sb.state.factory, case_id, now=now)
    client.post("/sandbox/api/messages", json={"as": lead, "text": "/进度"})
    card = last_card(client, "新品推广页面延迟")
    answer = client.post("/sandbox/api/action", json={"as": lead, "message_id": card["message_id"], "action": {
        "tag": "button", "value": button_value(card["content"], button)}}).json()
    assert answer["toast"]["content"] == toast, answer
    deadline = _time.monotonic() + 20
    items: list = []
    while _time.monotonic() < deadline and len(items) < 2:
        items = client.get("/sandbox/api/state").json()[view]
        _time.sleep(0.2)
    assert sorted(i[name] for i in items) == ["#1 完成用户数据加密接口开发", "#2 协调设计部完成页面适配"]
    assert all(as_published(i) for i in items)
