"""`/导出`: each of the three outputs as Markdown; the registry steps 4–6 extend."""
from __future__ import annotations

import pytest

from bot import texts
from tests.driver import LEAD, OTHER_CHAT, TECH_DEV
from tests.test_steps13_support import fill_consensus, open_case, reach_step3, submit_inputs


@pytest.mark.usefixtures("paced")
def test_export_each_output(world):
    mid = reach_step3(world)
    submit_inputs(world, mid)
    before = len(world.texts())
    world.say(LEAD, "/导出")
    out = world.texts()[before:]
    assert len(out) == 1  # one message for the whole export: few messages in a busy group
    consensus, team, reqs = out[0].split("\n\n---\n\n")
    assert "《问题共识表》" in consensus and "| 技术部 | 李娜 | 已签字 |" in consensus
    assert "推广活动延迟3天" in consensus and "（已达成共识）" in consensus
    assert "《协作小组分工表》" in team and "| 技术部 | 核心 | 李娜 | 刘洋 |" in team
    assert "协作组长：陈静" in team and "ou_" not in out[0]  # names, not open_ids
    assert "《需求确认清单》" in reqs and "可抽调2人开发接口" in reqs
    world.say(LEAD, "/导出 2")
    assert len(world.texts()) == before + 2 and "协作小组分工表" in world.texts()[-1]


def test_pack_splits_only_when_too_large():
    from handlers.export import pack

    assert pack(["甲", "乙"], limit=100) == ["甲\n\n---\n\n乙"]
    big = "字" * 40  # 120 bytes in UTF-8
    out = pack(["甲", big, "乙"], limit=100)
    assert [len(m.encode()) <= 100 for m in out] == [True, True, True]
    assert out[0] == "甲" and out[1] == "字" * 33 and out[2] == "乙"


@pytest.mark.usefixtures("paced")
def test_export_usage_nothing_yet_and_escaping(world):
    world.say(LEAD, "/导出")
    assert world.texts()[-1] == texts.NO_ACTIVE_CASE
    mid = open_case(world)
    world.say(LEAD, "/导出")
    assert world.texts()[-1] == texts.EXP_NOTHING.format(title="新品推广页面延迟")
    fill_consensus(world, mid, background="原计划|上线 <at user_id=\"all\"></at>\n第二行")
    world.say(LEAD, "/导出 3")
    assert world.texts()[-1] == texts.EXP_NOT_YET.format(step=3, output=texts.OUTPUTS[3])
    world.say(LEAD, "/导出 九")
    assert world.texts()[-1] == texts.EXP_USAGE
    world.say(LEAD, "/导出 1")
    md = world.texts()[-1]
    assert "<at" not in md and "＜at user_id" in md
    world.say(TECH_DEV, "/导出", chat=OTHER_CHAT)
    assert world.texts(OTHER_CHAT)[-1] == texts.NO_ACTIVE_CASE


def test_every_step_registers_an_exporter_and_cells_cannot_break_a_row():
    from handlers import build_router
    from handlers.common import md_table

    assert sorted(build_router().exporters) == [1, 2, 3, 4, 5, 6]
    assert md_table(["a", "b"], [["x|y", "1\n2"]]).splitlines()[-1] == "| x\\|y | 1 / 2 |"
