"""Person fields are checked when a form is parsed: a value that is not an open_id is a form error
naming the field, never a stored row that breaks a later mention (e.g. 「发布方案」)."""
from __future__ import annotations

import pytest

from bot import texts
from tests.driver import LEAD
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
