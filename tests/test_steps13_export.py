"""`/导出`: each of the three outputs as Markdown; the registry steps 4–6 extend."""
from __future__ import annotations

import pytest

from handlers import export
from tests.driver import LEAD, OTHER_CHAT, TECH_DEV
from tests.test_steps13_support import fill_consensus, open_case, reach_step3, submit_inputs
from tests.test_steps13_support import paced  # noqa: F401 (fixture)


@pytest.mark.usefixtures("paced")
def test_export_each_output(world):
    mid = reach_step3(world)
    submit_inputs(world, mid)
    before = len(world.texts())
    world.say(LEAD, "/导出")
    out = world.texts()[before:]
    assert len(out) == 3
    assert "《问题共识表》" in out[0] and "| 技术部 | 李娜 | 已签字 |" in out[0]
    assert "推广活动延迟3天" in out[0] and "（已达成共识）" in out[0]
    assert "《协作小组分工表》" in out[1] and "| 技术部 | 核心 | 李娜 | 刘洋 |" in out[1]
    assert "协作组长：陈静" in out[1] and "ou_" not in "".join(out)  # names, not open_ids
    assert "《需求确认清单》" in out[2] and "可抽调2人开发接口" in out[2]
    world.say(LEAD, "/导出 2")
    assert len(world.texts()) == before + 4 and "协作小组分工表" in world.texts()[-1]


@pytest.mark.usefixtures("paced")
def test_export_usage_nothing_yet_and_escaping(world):
    world.say(LEAD, "/导出")
    assert "还没有进行中" in world.texts()[-1]
    mid = open_case(world)
    world.say(LEAD, "/导出")
    assert "还没有可以导出" in world.texts()[-1]
    fill_consensus(world, mid, background="原计划|上线 <at user_id=\"all\"></at>\n第二行")
    world.say(LEAD, "/导出 3")
    assert "还没有内容" in world.texts()[-1]
    world.say(LEAD, "/导出 九")
    assert "用法" in world.texts()[-1]
    world.say(LEAD, "/导出 1")
    md = world.texts()[-1]
    assert "<at" not in md and "＜at user_id" in md
    world.say(TECH_DEV, "/导出", chat=OTHER_CHAT)
    assert "还没有进行中" in world.texts(OTHER_CHAT)[-1]


def test_registry_is_extensible():
    assert set(export.EXPORTERS) >= {1, 2, 3}
    assert export.md_table(["a", "b"], [["x|y", "1\n2"]]).splitlines()[-1] == "| x\\|y | 1 / 2 |"
