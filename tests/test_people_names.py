"""Toasts name the person behind a role when the bot knows their name (from the group's member
list), and fall back to the role alone when it does not."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from bot import texts
from bot.actions import ActionValue
from bot.models import Person, RetroEntry, Risk
from tests.casefactory import TaskSpec, fill_retro, make_case_at_step4, make_plan_published, make_retro
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD
from tests.test_steps13_support import INPUTS, fill_consensus, open_case, reach_step2, reach_step3, sign, team_card_mid


def _toast(ans: dict) -> str:
    return ans["toast"]["content"]


def _forget_names(world) -> None:
    with world.state.factory() as s, s.begin():
        s.execute(delete(Person))


@pytest.mark.usefixtures("paced")
def test_step1_toasts_name_heads_and_signer(world):
    mid = open_case(world)
    world.drain()  # the member list is read after /问题
    fill_consensus(world, mid)
    ans = sign(world, OUTSIDER, mid)
    assert ans["toast"]["type"] == "error"
    assert _toast(ans) == texts.S1_ONLY_HEAD.format(who="市场部负责人陈静、技术部负责人李娜、设计部负责人王芳")
    assert _toast(world.press(OUTSIDER, mid, "修改内容")) == texts.S_ONLY_LEAD_OR_HEADS.format(
        who="协作组长陈静、市场部负责人陈静、技术部负责人李娜、设计部负责人王芳")
    assert _toast(sign(world, TECH_HEAD, mid)) == texts.S1_SIGNED.format(depts="技术部 李娜")
    ans = world.submit(DESIGN_HEAD, mid, {"reason": "3天不够"})
    assert _toast(ans) == texts.S1_OBJECTED.format(depts="设计部 王芳")
    # names unknown: today's wording
    _forget_names(world)
    assert _toast(sign(world, OUTSIDER, mid)) == texts.S1_ONLY_HEAD.format(
        who="市场部负责人、技术部负责人、设计部负责人")
    assert _toast(sign(world, LEAD, mid)) == texts.S1_SIGNED.format(depts="市场部")


@pytest.mark.usefixtures("paced")
def test_step2_and_step3_toasts_name_people(world):
    reach_step2(world)
    world.drain()
    mid = team_card_mid(world)
    assert _toast(world.press(TECH_HEAD, mid, "移交组长")) == texts.LEAD_ONLY_NAMED.format(name="陈静")
    world.press(LEAD, mid, "添加成员")
    ids = _dept_ids(world)
    ans = world.submit(LEAD, mid, {"member": TECH_DEV, "dept": str(ids["技术部"]), "role": "接口开发",
                                   "duty": "加密接口"})
    assert _toast(ans) == texts.S2_MEMBER_SAVED.format(role="接口开发刘洋")
    world.press(LEAD, mid, "移交组长")
    assert _toast(world.submit(LEAD, mid, {"lead": LEAD})) == texts.S2_LEAD_SAME_NAMED.format(name="陈静")

    _forget_names(world)
    assert _toast(world.press(TECH_HEAD, mid, "移交组长")) == texts.S_ONLY_LEAD


def _dept_ids(world):
    from tests.test_steps13_support import dept_ids
    return dept_ids(world)


@pytest.mark.usefixtures("paced")
def test_step3_toasts_name_contacts_and_confirmer(world):
    mid = reach_step3(world)
    world.drain()
    assert _toast(world.press(OUTSIDER, mid, "提交本部门信息")) == texts.S3_NOT_CONTACT.format(
        who="市场部接口人陈静、技术部接口人刘洋、设计部接口人王芳")
    for who, form in INPUTS.items():
        world.press(who, mid, "提交本部门信息")
        world.submit(who, mid, form)
    ids = _dept_ids(world)
    world.press(OUTSIDER, mid, "新增需求")
    ans = world.submit(OUTSIDER, mid, {"dept": str(ids["技术部"]), "demand": "加密", "priority": "high"})
    assert _toast(ans) == texts.S3_NOT_DEPT_MEMBER_NAMED.format(who="协作组长陈静、技术部接口人刘洋或技术部负责人李娜",
                                                            dept="技术部")
    world.press(TECH_DEV, mid, "新增需求")
    world.submit(TECH_DEV, mid, {"dept": str(ids["技术部"]), "demand": "加密", "priority": "high"})
    ans = world.press(OUTSIDER, mid, "确认清单")
    assert _toast(ans) == texts.S3_ONLY_CONTACT_OR_HEAD.format(
        who="市场部接口人陈静/负责人陈静、技术部接口人刘洋/负责人李娜、设计部接口人王芳/负责人王芳")
    assert _toast(world.press(TECH_DEV, mid, "确认清单")) == texts.S3_CONFIRMED.format(depts="技术部 刘洋")


def _steps46(world, *, retro: bool = False):
    world.add_bot()  # reads the member list: names known
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    from datetime import timedelta
    make_plan_published(world.state.factory, case_id, now=now, tasks=[
        TaskSpec("接口开发", TECH_DEV, now - timedelta(days=1), now + timedelta(days=2), progress=10, status="doing")])
    if retro:
        make_retro(world.state.factory, case_id, now=now)
    return case_id


def test_step5_refusals_name_owner_and_lead(world):
    case_id = _steps46(world)
    with world.state.factory() as s:
        risk = s.scalars(select(Risk).where(Risk.case_id == case_id)).first()
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    mid = world.last_card(title_contains="《进度跟踪表》")["message_id"]
    ans = world.submit(DESIGN_HEAD, mid, {"risk": str(risk.id)}, form_name="risk_close")
    assert _toast(ans) == texts.RISK_CLOSE_NOT_ALLOWED.format(owner="技术部技术负责人李娜", lead="协作组长陈静",
                                                              risk=risk.risk[:40])
    assert _toast(world.press(TECH_DEV, mid, "结束执行")) == texts.LEAD_ONLY_NAMED.format(name="陈静")
    world.press(TECH_DEV, mid, "更新我的进度")
    form = world.last_card(title_contains="更新进度")
    task_form = next(n for n in _forms(form["content"]))
    ans = world.submit(DESIGN_HEAD, form["message_id"], {}, form_name=task_form)
    assert _toast(ans) == texts.NOT_TASK_OWNER_NAMED.format(owner="任务负责人刘洋", lead="协作组长陈静", seq=1,
                                                            content="接口开发")


def _forms(card):
    from tests.driver import walk
    return [n["name"] for n in walk(card) if n.get("tag") == "form"]


def test_step6_refusal_names_the_author(world):
    case_id = _steps46(world, retro=True)
    world.say(LEAD, "/进度")
    world.press(TECH_DEV, world.last_card(title_contains="新品推广页面延迟")["message_id"], "填写复盘")
    mid = world.last_card(title_contains="复盘会")["message_id"]
    fill_retro(world, TECH_DEV, mid, {"kind": "success", "content": "站会有效"})
    with world.state.factory() as s:
        entry = s.scalar(select(RetroEntry.id).where(RetroEntry.author_open_id == TECH_DEV))
    ans = world.click(DESIGN_HEAD, mid, value=ActionValue("retro.delete", case_id=case_id, row_id=entry).dump())
    assert _toast(ans) == texts.RETRO_NOT_AUTHOR.format(who="技术部接口人刘洋")



@pytest.mark.usefixtures("paced")
def test_exports_of_steps_4_to_6_show_names(world):
    _steps46(world, retro=True)
    world.say(LEAD, "/进度")
    world.press(TECH_DEV, world.last_card(title_contains="新品推广页面延迟")["message_id"], "填写复盘")
    mid = world.last_card(title_contains="复盘会")["message_id"]
    fill_retro(world, TECH_DEV, mid, {"kind": "success", "content": "站会有效"})
    out = []
    for step in (4, 5, 6):
        world.say(LEAD, f"/导出 {step}")
        out.append(world.texts()[-1])
    plan, tracking, retro = out
    row = "| #1 接口开发 | 刘洋 |"
    assert row in plan and row in tracking and row in retro
    assert "- 站会有效（刘洋）" in retro
    assert "ou_" not in "".join(out)


@pytest.mark.usefixtures("paced")
def test_export_falls_back_to_open_id_when_name_unknown(world):
    mid = reach_step3(world)
    world.drain()
    with world.state.factory() as s, s.begin():
        s.execute(delete(Person).where(Person.open_id == TECH_DEV))
    before = len(world.texts())
    world.say(LEAD, "/导出 2")
    team = world.texts()[before]
    assert "| 技术部 | 核心 | 李娜 | ou_dev_tech |" in team and "协作组长：陈静" in team
    assert mid


@pytest.mark.usefixtures("paced")
def test_case_from_template_starts_step2_with_department_kinds(world):
    from bot.models import Department, Template
    from tests.driver import TENANT
    with world.state.factory() as s, s.begin():
        s.add(Template(tenant_key=TENANT, name="对接SOP", created_by=LEAD, created_at=world.clock.now(),
                       body={"departments": [{"name": "设计部", "kind": "support"}, {"name": "技术部", "kind": "core"}],
                             "roles": [], "tasks": [], "risks": [], "key_nodes": []}))
    world.say(LEAD, "/问题 模板:对接SOP 新品推广页面延迟")
    mid = world.last_card(title_contains="新建协作问题")["message_id"]
    fill_consensus(world, mid)
    for head in (LEAD, TECH_HEAD, DESIGN_HEAD):
        sign(world, head, mid)
    with world.state.factory() as s:
        kinds = {d.name: d.kind for d in s.scalars(select(Department))}
    # the template's 核心/支持 where it knows the department; 市场部 is still to be asked in step 2
    assert kinds == {"市场部": "", "技术部": "core", "设计部": "support"}
