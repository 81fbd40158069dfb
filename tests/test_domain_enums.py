"""Domain codes (bot.domain): every code has its label in bot.texts, a value outside an enum is
refused when written and fails loudly when read (never shown as if it were a code), and a form
that sends an unknown code gets a clear answer and changes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from bot import texts
from bot.domain import (
    CaseStatus,
    ChangeStatus,
    DeptKind,
    Level,
    RetroKind,
    RiskStatus,
    SignoffStatus,
    TaskStatus,
    parse,
)
from bot.models import Case, ChangeRequest, Department, Risk, Signoff
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import LEAD
from tests.test_steps13_support import dept_ids, reach_step2, team_card_mid

# enum → the bot.texts table its labels come from (keyed by the code)
LABELS = ((TaskStatus, texts.TASK_STATUS_LABELS), (Level, texts.LEVEL_LABELS), (RetroKind, texts.RETRO_KIND_LABELS),
          (CaseStatus, texts.CASE_STATUS), (RiskStatus, texts.RISK_STATUS), (ChangeStatus, texts.CHANGE_STATUS))


@pytest.mark.parametrize(("enum", "labels"), LABELS, ids=[e.__name__ for e, _ in LABELS])
def test_every_code_has_its_label_and_nothing_else_has_one(enum, labels):
    assert list(labels) == [e.value for e in enum]
    assert all(isinstance(labels[member], (str, tuple)) and labels[member] for member in enum)


def test_labels_of_codes_shown_beside_a_display_state():
    # a department not yet asked (UNSET) shows S2_KIND_UNSET; the others are the form's choices
    assert set(texts.S2_KINDS) == {k.value for k in DeptKind if k is not DeptKind.UNSET}
    assert texts.S2_KIND_UNSET[0]
    # a department with no sign-off row yet is 待签字, the only key that is not a code
    assert set(texts.S1_STATUS) == {s.value for s in SignoffStatus} | {"pending"}
    # a decided change request says how it was decided
    assert set(texts.CHANGE_REQ_DECIDED) == {s.value for s in ChangeStatus if s is not ChangeStatus.PENDING}


def test_parse_takes_codes_only():
    assert parse(CaseStatus, " closed ") is CaseStatus.CLOSED
    assert parse(RiskStatus, texts.RISK_STATUS["closed"][0]) is None     # a label is not a code
    assert parse(ChangeStatus, "") is None
    assert parse(DeptKind, "") is DeptKind.UNSET                          # "" is a department's stored code


def _world_with_every_row(world) -> int:
    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    make_plan_published(world.state.factory, case_id, now=world.clock.now())
    with world.state.factory() as s, s.begin():
        case = s.get(Case, case_id)
        s.add(ChangeRequest(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id, requested_by=LEAD,
                            reason="接口延期", changes={}, created_at=world.clock.now()))
    return case_id


def test_codes_come_back_as_enum_members(world):
    case_id = _world_with_every_row(world)
    with world.state.factory() as s:
        assert s.get(Case, case_id).status is CaseStatus.ACTIVE
        assert {d.kind for d in s.scalars(select(Department))} == {DeptKind.CORE, DeptKind.SUPPORT}
        assert all(type(d.kind) is DeptKind for d in s.scalars(select(Department)))
        assert {x.status for x in s.scalars(select(Signoff))} == {SignoffStatus.SIGNED}
        assert type(s.scalars(select(Signoff)).first().status) is SignoffStatus
        assert s.scalars(select(Risk)).one().status is RiskStatus.OPEN
        assert s.scalars(select(ChangeRequest)).one().status is ChangeStatus.PENDING


STORED = ((Case, "cases", "status", "已结案"), (Department, "departments", "kind", "核心"),
          (Signoff, "signoffs", "status", "agreed"), (Risk, "risks", "status", "已关闭"),
          (ChangeRequest, "change_requests", "status", "done"))


@pytest.mark.parametrize(("model", "table", "column", "bad"), STORED, ids=[t for _, t, _, _ in STORED])
def test_a_stored_value_outside_the_enum_fails_loudly(world, model, table, column, bad):
    _world_with_every_row(world)
    with world.state.factory() as s, s.begin():
        s.execute(text(f"UPDATE {table} SET {column} = :bad"), {"bad": bad})
    with world.state.factory() as s, pytest.raises(ValueError, match=bad):
        s.scalars(select(model)).all()


@pytest.mark.parametrize(("model", "table", "column", "bad"), STORED, ids=[t for _, t, _, _ in STORED])
def test_writing_a_value_outside_the_enum_is_refused(world, model, table, column, bad):
    _world_with_every_row(world)
    with world.state.factory() as s:
        before = list(s.execute(text(f"SELECT id, {column} FROM {table} ORDER BY id")))
    with world.state.factory() as s, pytest.raises(StatementError, match=bad):
        with s.begin():
            row = s.scalars(select(model)).first()
            setattr(row, column, bad)
    with world.state.factory() as s:
        assert list(s.execute(text(f"SELECT id, {column} FROM {table} ORDER BY id"))) == before


def test_an_unknown_department_kind_from_the_form_is_refused_and_changes_nothing(paced):
    world = paced
    reach_step2(world)
    mid = team_card_mid(world)
    world.press(LEAD, mid, "设置部门与接口人")
    ids = dept_ids(world)
    with world.state.factory() as s:
        before = {d.id: d.kind for d in s.scalars(select(Department))}
    ans = world.submit(LEAD, mid, {f"kind_{i}": "核心" for i in ids.values()})
    assert ans["toast"] == {"type": "error", "content": texts.S2_BAD_KIND.format(dept=next(iter(ids)))}
    with world.state.factory() as s:
        assert {d.id: d.kind for d in s.scalars(select(Department))} == before == dict.fromkeys(before, DeptKind.UNSET)
