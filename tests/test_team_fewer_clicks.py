"""Step 2 asks each thing once: 核心/支持 per department (nothing starts as 核心), the 接口人 suggested
as the head, no department for a head or 接口人 added as a member; members and items can be removed."""
from sqlalchemy import select

from bot import texts
from bot.models import ActionItem, Department, Member
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, walk
from tests.test_steps13_support import dept_ids, reach_step2, set_contacts, team_card_mid


def _buttons(card: dict, label: str) -> list[dict]:
    return [n for n in walk(card) if n.get("tag") == "button" and n["text"]["content"] == label]


def test_kind_is_asked_once_and_the_contact_defaults_to_the_head(paced):
    world = paced
    reach_step2(world)
    mid = team_card_mid(world)
    with world.state.factory() as s:
        assert {d.kind for d in s.scalars(select(Department))} == {""}
    assert texts.S2_KIND_UNSET[0] in card_text(world.card(mid))
    world.press(LEAD, mid, "设置部门与接口人")
    ids = dept_ids(world)
    shown = {n["name"]: n for n in walk(world.form_of(LEAD)) if n.get("name")}
    assert "initial_option" not in shown[f"kind_{ids['市场部']}"]
    assert shown[f"contact_{ids['技术部']}"]["initial_option"] == TECH_HEAD
    ans = world.submit(LEAD, mid, {f"kind_{ids['市场部']}": "core", f"contact_{ids['市场部']}": LEAD})
    assert ans["toast"] == {"type": "error", "content": texts.S2_NEED_KIND.format(dept="技术部")}
    again = {n["name"]: n for n in walk(ans["card"]["data"]) if n.get("name")}
    assert again[f"kind_{ids['市场部']}"]["initial_option"] == "core"        # what was chosen stays
    world.press(LEAD, mid, texts.S_CANCEL)
    assert set_contacts(world, mid)["toast"]["type"] == "success"


def test_a_head_is_added_without_asking_the_department_and_rows_can_be_removed(paced):
    world = paced
    reach_step2(world)
    mid = team_card_mid(world)
    set_contacts(world, mid)
    world.press(LEAD, mid, "添加成员")
    ans = world.submit(LEAD, mid, {"member": TECH_HEAD, "role": "技术负责人", "duty": "协调开发资源"})
    assert ans["toast"]["type"] == "success", ans
    world.press(LEAD, mid, "添加成员")
    unknown = world.submit(LEAD, mid, {"member": OUTSIDER, "role": "测试", "duty": "回归测试"})
    assert unknown["toast"] == {"type": "error", "content": texts.S2_MEMBER_DEPT_UNKNOWN.format(who="赵强")}
    world.press(LEAD, mid, texts.S_CANCEL)
    world.press(LEAD, mid, "添加行动项")
    world.submit(LEAD, mid, {"content": "整理接口功能清单", "owner": LEAD, "due": "2026-12-09 +0800"})
    with world.state.factory() as s:
        head = s.scalar(select(Member).where(Member.open_id == TECH_HEAD))
        assert head.department_id == dept_ids(world)["技术部"]
    removes = _buttons(world.card(mid), texts.S2_BTN_REMOVE)
    assert all(b["confirm"]["title"]["content"] in (texts.S2_REMOVE_MEMBER_CONFIRM[0], texts.S2_REMOVE_ITEM_CONFIRM[0])
               for b in removes)
    values = [b["behaviors"][0]["value"] for b in removes]
    member_values = [v for v in values if v["a"] == "team.remove_member"]
    item_value = next(v for v in values if v["a"] == "team.remove_item")
    # a 接口人 stays until replaced; the head added as a member goes
    with world.state.factory() as s:
        by_id = {m.id: m.open_id for m in s.scalars(select(Member))}
    contact = next(v for v in member_values if by_id[v["r"]] == TECH_DEV)
    assert world.click(LEAD, mid, value=contact)["toast"]["type"] == "error"
    head_value = next(v for v in member_values if by_id[v["r"]] == TECH_HEAD)
    assert world.click(LEAD, mid, value=head_value)["toast"]["content"] == texts.S2_MEMBER_REMOVED
    assert world.click(LEAD, mid, value=head_value)["toast"]["content"] == texts.S2_ROW_GONE   # a double click
    assert world.click(LEAD, mid, value=item_value)["toast"]["content"] == texts.S2_ITEM_REMOVED
    with world.state.factory() as s:
        assert s.scalar(select(Member).where(Member.open_id == TECH_HEAD)) is None
        assert s.scalars(select(ActionItem)).all() == []
        assert {m.open_id for m in s.scalars(select(Member))} == {LEAD, TECH_DEV, DESIGN_HEAD}


def test_a_template_suggests_last_times_contacts(paced):
    world = paced
    from datetime import timezone

    from bot.models import Template
    from tests.driver import TENANT
    from tests.test_steps13_support import HEADS, fill_consensus, sign
    with world.state.factory() as s, s.begin():
        s.add(Template(tenant_key=TENANT, name="SOP", body={
            "departments": [{"name": "市场部", "kind": "core", "head": LEAD, "contact": LEAD},
                            {"name": "技术部", "kind": "core", "head": TECH_HEAD, "contact": TECH_DEV}],
            "roles": [], "tasks": [], "risks": [], "key_nodes": []},
            created_by=LEAD, created_at=world.clock.now().astimezone(timezone.utc)))
    world.say(LEAD, "/问题 模板:SOP 第二个问题")
    form = world.last_card(title_contains="新建协作问题")["message_id"]
    shown = {n["name"]: n for n in walk(world.card(form)) if n.get("name")}
    assert shown["dept1_head"]["initial_option"] == LEAD and shown["dept2_head"]["initial_option"] == TECH_HEAD
    fill_consensus(world, form, title="第二个问题")
    for head in HEADS:
        sign(world, head, form)
    mid = team_card_mid(world)
    world.press(LEAD, mid, "设置部门与接口人")
    ids = dept_ids(world)
    shown = {n["name"]: n for n in walk(world.form_of(LEAD)) if n.get("name")}
    assert shown[f"contact_{ids['技术部']}"]["initial_option"] == TECH_DEV          # last time's 接口人
    assert shown[f"contact_{ids['设计部']}"]["initial_option"] == DESIGN_HEAD       # not in the SOP: the head
    assert shown[f"kind_{ids['技术部']}"]["initial_option"] == "core"               # the SOP's 核心/支持
