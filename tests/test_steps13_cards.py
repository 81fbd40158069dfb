"""Every steps 1–3 card: Card JSON 2.0 rules, a reviewed snapshot, user text made inert,
and every action a card emits has a handler."""
from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from bot.actions import ActionValue, from_name
from cards import consensus, requirements, team
from cards.rules import iter_actions, validate_card
from handlers import build_router
from handlers import consensus as h1
from handlers import requirements as h3
from handlers import team as h2
from tests.cardsnap import assert_snapshot

EVIL = "<at id=all></at> **粗体** [链接](https://x.y) <font color='red'>x</font>"
AT = datetime(2026, 12, 8, 10, 2)
A, B, C = "ou_lead_market", "ou_head_tech", "ou_head_design"


def _form_values(**kw):
    base = {"title": "新品推广页面延迟", "background": "原计划本周上线", "current_state": "接口未对接",
            "impact": "延迟3天", "goal": "3天内完成对接", "goal_date": "2026-12-11 +0800",
            "expected_outcome": "按期上线", "dept1_name": "市场部", "dept1_head": A, "dept2_name": "技术部",
            "dept2_head": B}
    return {**base, **kw}


def _table(**kw):
    rows = (consensus.SignRow("市场部", A, "signed", AT), consensus.SignRow("技术部", B, "pending"),
            consensus.SignRow("设计部", C, "objected", AT, "时间不够"))
    args = dict(title="新品推广页面延迟", version=2, background="原计划本周上线", current_state="接口未对接",
                impact="延迟3天，影响客流5000人次", goal="3天内完成对接", goal_date=date(2026, 12, 11),
                expected_outcome="按期上线", rows=rows, change_summary="共同目标",
                sign=ActionValue(h1.SIGN, 1, 2), edit=ActionValue(h1.EDIT, 1, 2),
                object_submit=ActionValue(h1.OBJECT, 1, 2))
    args.update(kw)
    return consensus.table_card(consensus.TableView(**args))


DEPTS = (team.DeptLine(1, "市场部", "core", A, A), team.DeptLine(2, "技术部", "core", B, None),
         team.DeptLine(3, "设计部", "support", C, C))
TEAM_BUTTONS = team.TeamButtons(*(ActionValue(n, 1, 3) for n in (h2.FORM_DEPTS, h2.FORM_MEMBER, h2.FORM_ITEM,
                                                                  h2.FORM_LEAD, h2.CONFIRM)))


def _team(**kw):
    args = dict(title="新品推广页面延迟", lead_open_id=A, depts=DEPTS,
                members=(team.MemberLine(B, "技术部", "技术负责人", "协调资源"),),
                items=(team.ItemLine("整理接口清单", B, date(2026, 12, 9)),), buttons=TEAM_BUTTONS)
    args.update(kw)
    return team.team_card(team.TeamView(**args))


def _tfv(submit, **kw):
    return team.FormView(title="表单", submit=ActionValue(submit, 1, 3), cancel=ActionValue(h2.VIEW, 1), **kw)


def _reqs(**kw):
    args = dict(
        title="新品推广页面延迟", version=4,
        inputs=(requirements.InputLine("市场部", A, "设计稿", "档期固定", "接口按期", True),
                requirements.InputLine("技术部", B)),
        requirements=(requirements.ReqLine("技术部", "接口加密", "多投入1天", "high", "", ("市场部",), False),
                      requirements.ReqLine("市场部", "按期上线", "", "mid", "")),
        confirms=(requirements.ConfirmLine("市场部", True, AT), requirements.ConfirmLine("技术部", False)),
        buttons=requirements.ReqButtons(ActionValue(h3.FORM_INPUT, 1, 4), ActionValue(h3.FORM_ADD, 1, 4),
                                        ActionValue(h3.CONFIRM, 1, 4), ActionValue(h3.FORM_RESOLVE, 1, 4)))
    args.update(kw)
    return requirements.requirements_card(requirements.ReqView(**args))


def _rfv(submit, **kw):
    return requirements.FormView(title="表单", submit=ActionValue(submit, 1), cancel=ActionValue(h3.VIEW, 1), **kw)


CARDS = {
    "s1_form_new": lambda: consensus.form_card(consensus.FormView("新建协作问题", ActionValue(h1.SUBMIT, 1, 0),
                                                                  values={"title": "新品推广页面延迟"})),
    "s1_form_error": lambda: consensus.form_card(consensus.FormView(
        "修改《问题共识表》", ActionValue(h1.SUBMIT, 1, 1), ActionValue(h1.VIEW, 1), _form_values(),
        "请填写「背景」。")),
    "s1_table_waiting": lambda: _table(),
    "s1_table_agreed": lambda: _table(rows=(consensus.SignRow("市场部", A, "signed", AT),
                                            consensus.SignRow("技术部", B, "signed", AT)),
                                      agreed=True, sign=None, edit=None, object_submit=None),
    "s2_team_draft": lambda: _team(),
    "s2_team_confirmed": lambda: _team(confirmed_at=AT, buttons=None),
    "s2_form_depts": lambda: team.depts_form(_tfv(h2.SAVE_DEPTS), DEPTS),
    "s2_form_member": lambda: team.member_form(_tfv(h2.SAVE_MEMBER, error="请选择成员所属的部门。",
                                                    values={"role": "开发"}), DEPTS),
    "s2_form_item": lambda: team.item_form(_tfv(h2.SAVE_ITEM, values={"due": "2026-12-09 +0800"})),
    "s2_form_lead": lambda: team.lead_form(_tfv(h2.SAVE_LEAD)),
    "s3_list_conflict": lambda: _reqs(),
    "s3_list_archived": lambda: _reqs(archived_at=AT, buttons=None),
    "s3_form_input": lambda: requirements.input_form(_rfv(h3.SAVE_INPUT), (("市场部", "1"),)),
    "s3_form_add": lambda: requirements.add_form(_rfv(h3.SAVE_ADD, values={"conflict": ["1"]}),
                                                 (("市场部", "1"), ("技术部", "2"))),
    "s3_form_resolve": lambda: requirements.resolve_form(_rfv(h3.SAVE_RESOLVE), (("技术部：接口加密", "7"),)),
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_rules_and_snapshot(name):
    card = CARDS[name]()
    assert validate_card(card) == []
    assert len(json.dumps(card, ensure_ascii=False).encode()) < 30 * 1024
    assert_snapshot(name, card)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_every_action_has_a_handler(name):
    router = build_router()
    for action in iter_actions(CARDS[name]()):
        value = from_name(action["submit"]) if "submit" in action else ActionValue.parse(action)
        assert value.action in router.actions, value.action


def _markdown(card):
    from tests.driver import walk
    return [n["content"] for n in walk(card) if n.get("tag") == "markdown"]


def test_user_text_is_inert_everywhere():
    cards = [
        _table(title=EVIL, background=EVIL, current_state=EVIL, impact=EVIL, goal=EVIL, expected_outcome=EVIL,
               change_summary=EVIL, rows=(consensus.SignRow(EVIL, A, "objected", AT, EVIL),)),
        consensus.form_card(consensus.FormView("x", ActionValue(h1.SUBMIT, 1, 0), values={"dept1_head": EVIL},
                                               error=EVIL)),
        _team(title=EVIL, depts=(team.DeptLine(1, EVIL, "core", A, None),),
              members=(team.MemberLine(A, EVIL, EVIL, EVIL),), items=(team.ItemLine(EVIL, A, None),)),
        team.depts_form(_tfv(h2.SAVE_DEPTS, error=EVIL, values={"contact_1": EVIL}), (DEPTS[0],)),
        _reqs(title=EVIL, inputs=(requirements.InputLine(EVIL, None, EVIL, EVIL, EVIL, False),),
              requirements=(requirements.ReqLine(EVIL, EVIL, EVIL, "high", EVIL, (EVIL,)),)),
    ]
    for card in cards:
        assert validate_card(card) == []
        for content in _markdown(card):
            assert "<at id=all" not in content and "**粗体**" not in content and "<font color='red'>x" not in content
        # header, table cells and inputs are plain text: Feishu does not interpret them
        assert card["header"]["title"]["tag"] == "plain_text"
