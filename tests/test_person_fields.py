"""Person fields are checked when a form is parsed: a value that is not an open_id is a form error
naming the field, never a stored row that breaks a later mention (e.g. 「发布方案」) — in every form
that takes a person."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.models import Base
from tests.casefactory import fill_plan
from tests.driver import LEAD
from tests.test_steps13_support import dept_ids, fill_consensus, open_case, reach_step2, set_contacts, team_card_mid
from tests.test_steps46_changes import change_form, setup
from tests.test_steps46_plan import TASK, open_plan, tasks

HOSTILE_OWNERS = ['ou_x"></at><at user_id="all"></at>', "ou_", "ou_x y", "u_lead", "", "ou_" + "a" * 65]


@pytest.mark.parametrize("owner", HOSTILE_OWNERS)
def test_a_task_owner_that_is_not_a_person_is_a_form_error(world, owner):
    case_id, mid = open_plan(world)
    answer = world.submit(LEAD, mid, dict(TASK, owner=owner), form_name="plan_task")
    assert answer["toast"] == {"type": "error", "content": texts.ERR_OWNER}
    assert tasks(world, case_id) == []
    # what was typed comes back in the form
    assert "完成用户数据加密接口开发" in str(answer["card"]["data"])


# ---------------------------------------------------------------- every other person field
INJECTION = HOSTILE_OWNERS[0]


def _rows(world) -> dict[str, list[str]]:
    """The domain tables (not the delivery bookkeeping): equal before and after = nothing stored."""
    skip = {"inbox_events", "outbox", "posted_cards", "people", "chat_members"}
    with world.state.factory() as s:
        return {t.name: sorted(repr(tuple(r)) for r in s.execute(select(t)))
                for t in Base.metadata.sorted_tables if t.name not in skip}


def _refused(world, submit) -> dict:
    before = _rows(world)
    answer = submit()
    assert answer["toast"]["type"] == "error", answer
    assert _rows(world) == before
    return answer


@pytest.mark.usefixtures("paced")
def test_a_department_head_that_is_not_a_person_is_a_form_error(world):
    mid = open_case(world)
    answer = _refused(world, lambda: fill_consensus(world, mid, dept2_head=INJECTION))
    assert answer["toast"]["content"] == texts.S_BAD_PERSON.format(field=texts.S1_F_DEPT_NAME.format(n=2))


@pytest.mark.usefixtures("paced")
@pytest.mark.parametrize("form", ["contact", "member", "item", "lead"])
def test_step_two_person_fields_that_are_not_a_person_are_form_errors(world, form):
    reach_step2(world)
    mid = team_card_mid(world)
    if form == "contact":
        tech = dept_ids(world)["技术部"]
        answer = _refused(world, lambda: set_contacts(world, mid, **{f"contact_{tech}": INJECTION}))
        assert answer["toast"]["content"] == texts.S_BAD_PERSON.format(field=texts.S2_F_CONTACT.format(dept="技术部"))
        return
    set_contacts(world, mid)
    label, values, field = {
        "member": (texts.S2_BTN_MEMBER, {"member": INJECTION, "role": "测试", "duty": "回归测试"}, texts.S2_COL_MEMBER),
        "item": (texts.S2_BTN_ITEM, {"content": "整理接口清单", "owner": INJECTION, "due": "2026-12-09 +0800"},
                 texts.S2_COL_OWNER),
        "lead": (texts.S2_BTN_LEAD, {"lead": INJECTION}, texts.S2_F_NEW_LEAD),
    }[form]
    world.press(LEAD, mid, label)
    answer = _refused(world, lambda: world.submit(LEAD, mid, values))
    assert answer["toast"]["content"] == texts.S_BAD_PERSON.format(field=field)


def test_a_risk_owner_that_is_not_a_person_is_a_form_error(world):
    _case_id, mid = open_plan(world)
    risk = {"risk": "测试延迟", "likelihood": "mid", "impact": "high", "response": "加班", "owner": INJECTION}
    answer = _refused(world, lambda: fill_plan(world, LEAD, mid, risk, form_name="plan_risk"))
    assert answer["toast"]["content"] == texts.ERR_RISK_OWNER


def test_a_new_task_owner_in_a_change_request_that_is_not_a_person_is_a_form_error(world):
    setup(world)
    mid = change_form(world, LEAD)
    world.press(LEAD, mid, texts.BTN_CHANGE_ADD)
    answer = _refused(world, lambda: world.submit(LEAD, mid, {
        "content": "紧急推广功能", "owner": INJECTION, "due": "2026-12-10 12:00 +0800", "standard": "功能上线",
        "reason": "竞品提前发布"}, form_name="change_add"))
    assert answer["toast"]["content"] == texts.ERR_OWNER


@pytest.mark.parametrize("value", HOSTILE_OWNERS)
def test_a_text_mention_carries_nothing_but_an_open_id(value):
    from bot.ids import text_mention
    from bot.sync_common import at_mention
    from handlers.common import mention

    assert text_mention(value) == mention(value) == at_mention(value) == ""
    assert text_mention("ou_lead") == at_mention("ou_lead") == '<at user_id="ou_lead"></at>'
