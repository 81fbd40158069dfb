"""The card kit builds valid Card JSON 2.0 and keeps user text inert."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.actions import ActionValue
from cards import kit
from cards.rules import iter_actions, validate_card
from tests import cardsnap

OU_A = "ou_a1b2c3"
OU_B = "ou_B-4_5"


def full_card() -> dict:
    """One card using every kit builder, the way feature code will."""
    return kit.card(
        "新品推广页面延迟",
        template="orange",
        subtitle="步骤 2/6",
        tags=[("待签字", "orange")],
        summary="还缺：技术部 接口人",
        elements=[
            kit.md(kit.step_strip(2, {1})),
            kit.md(f"协作组长：{kit.at(OU_A)}  背景：{kit.esc('**不是粗体** <at id=all></at>')}"),
            kit.hr(),
            kit.columns([[kit.button("填写分工", ActionValue("fill_roles", case_id=7, version=2),
                                     type="primary_filled")],
                          [kit.button("查看问题共识表", {"a": "show_consensus", "c": 7})]]),
            kit.table([("dept", "部门", "text"), ("owner", "负责人", "persons"),
                       ("st", "状态", "options"), ("at", "时间", "date")],
                      [{"dept": "市场部", "owner": OU_A, "st": kit.tag_option("已签字", "green"),
                        "at": 1702000920000},
                       {"dept": "技术部", "owner": [OU_B], "st": kit.tag_option("待签字", "orange")}],
                      page_size=5),
            kit.form("f_case_7", [
                kit.text_input("title", "标题", placeholder="新品推广页面延迟", required=True,
                               max_length=100),
                kit.text_input("background", "背景：原计划是什么", multiline=True, default="原计划…"),
                kit.select_static("impact", [("高", "high"), ("低", "low")], placeholder="影响程度",
                                  initial="high"),
                kit.select_person("owner", placeholder="负责人", required=True, initial=OU_A),
                kit.multi_select_person("members", placeholder="成员", initial=[OU_A, OU_B]),
                kit.date_picker("due", placeholder="目标日期", initial=dt.date(2024, 12, 11)),
                kit.datetime_picker("meet", placeholder="会议时间",
                                    initial=dt.datetime(2024, 12, 10, 9, 30)),
                kit.submit_button("提交", "submit_case_7"),
            ]),
            kit.collapsible("风险", [kit.md("暂无"), kit.person_list([OU_A, OU_B])]),
            kit.chart_bar("完成率", [{"task": "页面", "pct": 40, "dept": "技术部"},
                                    {"task": "文案", "pct": 80, "dept": "市场部"}],
                          "task", "pct", series_field="dept"),
            kit.button("签字确认", ActionValue("sign", case_id=7, version=2, row_id=3),
                       confirm=("确认签字？", "签字后不可撤销"), disabled=True,
                       disabled_tips="已签字", name="sign_3", width="fill"),
        ],
    )


def test_full_card_is_valid_and_snapshotted():
    card = full_card()
    assert validate_card(card) == []
    cardsnap.assert_snapshot("kit_full_card", card)


def test_card_top_level_shape():
    c = kit.card("T", elements=[kit.md("x")])
    assert c["schema"] == "2.0"
    assert c["config"] == {"update_multi": True, "width_mode": "fill"}
    assert c["header"] == {"title": {"tag": "plain_text", "content": "T"}, "template": "blue"}
    assert c["body"] == {"elements": [{"tag": "markdown", "content": "x"}]}
    assert "width_mode" not in kit.card("T", elements=[], width_mode="default")["config"]


def test_button_carries_dumped_action_value():
    b = kit.button("认领", ActionValue("claim", case_id=1, version=3, row_id=9, extra={"k": "v"}))
    assert b["behaviors"] == [{"type": "callback",
                               "value": {"a": "claim", "c": 1, "v": 3, "r": 9, "x": {"k": "v"}}}]
    assert "disabled" not in b and "confirm" not in b


def test_iter_actions_lists_callbacks_and_submits():
    acts = iter_actions(full_card())
    assert {"a": "fill_roles", "c": 7, "v": 2} in acts
    assert {"a": "show_consensus", "c": 7} in acts
    assert {"a": "sign", "c": 7, "v": 2, "r": 3} in acts
    assert {"submit": "submit_case_7", "form": "f_case_7"} in acts
    assert len(acts) == 4


def test_step_strip():
    assert kit.step_strip(2, {1}) == (
        "✅ ① 问题共识  ▶ ② 组建小组  ○ ③ 需求确认  ○ ④ 行动方案  ○ ⑤ 执行跟踪  ○ ⑥ 复盘")
    assert kit.step_strip(6, {1, 2, 3, 4, 5, 6}).count("✅") == 6


@pytest.mark.parametrize("raw, forbidden", [
    ("<at id=all></at>", ["<at", "</at>"]),
    ("**x**", ["**"]),
    ("[a](http://x)", ["[a]", "](", "(http"]),
    ("<font color=red>红</font>", ["<font", "</font>"]),
    ("# 标题", ["# "]),  # entities themselves contain '#', the heading marker must not survive
    ("~~删~~ `code` :DONE: | a |", ["~~", "`", ":DONE:", "|"]),
])
def test_esc_neutralises_markup(raw, forbidden):
    out = kit.esc(raw)
    for bit in forbidden:
        assert bit not in out, (raw, out)
    # the escapes are entities, and no mention survives for the validator either
    assert validate_card(kit.card("t", elements=[kit.md(out)])) == []


def test_esc_line_start_blocks_and_entities():
    out = kit.esc("- item\n+ x\n1. one\n---\n&#42;")
    assert "\n- " not in "\n" + out and "\n+ " not in "\n" + out
    assert "1." not in out and "---" not in out
    assert "&#42;" not in out.replace("&#38;#42;", "")  # a typed entity stays literal
    assert kit.esc("普通文字 ok") == "普通文字 ok"


@pytest.mark.parametrize("bad", ["all", "", "ou_", "ou_a b", "ou_x></at><at id=all", "on_abc",
                                 "OU_abc", None, 123])
def test_at_refuses_malformed_ids(bad):
    with pytest.raises(ValueError):
        kit.at(bad)


def test_at_accepts_open_id():
    assert kit.at(OU_B) == "<at id=ou_B-4_5></at>"


def test_person_builders_refuse_bad_ids():
    with pytest.raises(ValueError):
        kit.person_list(["ou_ok", "all"])
    with pytest.raises(ValueError):
        kit.select_person("p", placeholder="x", initial="bad")


def test_required_only_emitted_when_true():
    assert "required" not in kit.text_input("n", "标签")
    assert kit.text_input("n", "标签", required=True)["required"] is True


def test_card_json_is_small_and_utf8():
    size = len(json.dumps(full_card(), ensure_ascii=False).encode("utf-8"))
    assert size < 30 * 1024


def test_chart_labels_are_short_and_unique():
    assert kit.short("完成用户数据加密接口开发与联调") == "完成用户数据加密接…"
    assert kit.short("页面  适配") == "页面 适配"
    assert kit.unique_labels(["页面适配", "接口", "页面适配"], ["#1", "#2", "#3"]) == [
        "页面适配 #1", "接口", "页面适配 #3"]


def test_timeline_chart_is_a_horizontal_range_column_with_node_lines():
    t = kit.Timeline(title="时间线", axis="天（0 = 12-08 09:00）",
                     spans=(kit.Span("接口开发", 0, 2.375), kit.Span("页面适配", 0.5, 1.0)), marks=(("上线", 3.0),))
    chart = kit.chart_timeline(t)
    spec = chart["chart_spec"]
    assert (spec["type"], spec["direction"], spec["xField"], spec["yField"]) == (
        "rangeColumn", "horizontal", ["start", "end"], "label")
    assert spec["data"]["values"][0] == {"label": "接口开发", "start": 0, "end": 2.38}
    assert spec["markLine"][0]["x"] == 3.0 and spec["markLine"][0]["label"]["text"] == "上线"
    assert "seriesField" not in spec and chart["height"] == "160px"
    planned_actual = kit.chart_timeline(kit.Timeline(title="t", axis="a", spans=(
        kit.Span("接口", 0, 2, "计划"), kit.Span("接口", 0, 2.5, "实际"))))
    assert planned_actual["chart_spec"]["seriesField"] == "series"
    assert {v["series"] for v in planned_actual["chart_spec"]["data"]["values"]} == {"计划", "实际"}
