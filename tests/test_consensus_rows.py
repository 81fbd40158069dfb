"""The step-1 form shows two department rows; 「还有更多部门」 adds two more on submit without saving
or losing anything typed."""
from sqlalchemy import select

from bot import texts
from bot.models import ConsensusVersion
from tests.driver import DESIGN_HEAD, LEAD, TECH_HEAD, walk
from tests.test_steps13_support import CONSENSUS_FORM, open_case


def _names(card: dict) -> dict[str, dict]:
    return {n["name"]: n for n in walk(card) if n.get("name") and n.get("tag") not in ("form", "button")}


def test_two_rows_then_two_more_on_request(world):
    mid = open_case(world)
    shown = _names(world.card(mid))
    assert [k for k in shown if k.endswith("_name") and k.startswith("dept")] == ["dept1_name", "dept2_name"]
    first = {k: v for k, v in CONSENSUS_FORM.items() if not k.startswith("dept3")}
    ans = world.submit(LEAD, mid, {**first, "more_depts": True})
    assert ans["toast"] == {"type": "info", "content": texts.S1_ROWS_ADDED}
    with world.state.factory() as s:
        assert s.scalars(select(ConsensusVersion)).all() == []          # nothing saved yet
    shown = _names(world.card(mid))
    assert [k for k in shown if k.endswith("_name") and k.startswith("dept")] == [f"dept{n}_name" for n in range(1, 5)]
    assert shown["background"]["default_value"] == CONSENSUS_FORM["background"]      # nothing lost
    assert shown["dept2_head"]["initial_option"] == TECH_HEAD and shown["goal_date"]["initial_date"] == "2026-12-11"
    ans = world.submit(LEAD, mid, {**first, "dept3_name": "设计部", "dept3_head": DESIGN_HEAD,
                                           "more_depts": False})
    assert ans["toast"]["type"] == "success", ans
    with world.state.factory() as s:
        [cv] = s.scalars(select(ConsensusVersion)).all()
        assert [d["name"] for d in cv.departments] == ["市场部", "技术部", "设计部"]
