"""Step 6 — authors edit or delete their own retrospective entries until the lead finalises."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.actions import ActionValue, to_name
from bot.models import AuditEntry, RetroEntry
from tests.cardsnap import assert_snapshot
from tests.casefactory import fill_retro, open_retro_card
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, walk


def _retro(world):
    case_id, mid = open_retro_card(world, TECH_DEV)
    fill_retro(world, TECH_DEV, mid, {"kind": "success", "content": "每日站会让滞后提前暴露"})
    fill_retro(world, DESIGN_HEAD, mid, {"kind": "weakness", "content": "设计稿晚到"})
    return case_id, mid


def _entries(world):
    with world.state.factory() as s:
        return {e.author_open_id: (e.id, e.kind, e.content) for e in s.scalars(select(RetroEntry))}


def _audit(world, action):
    with world.state.factory() as s:
        return [a.detail for a in s.scalars(select(AuditEntry).where(AuditEntry.action == action))]


def _click(world, user, mid, action, case_id, row_id=None, form=None):
    value = ActionValue(action, case_id=case_id, row_id=row_id)
    if form is not None:
        return world.click(user, mid, form=form, name=to_name(value))
    return world.click(user, mid, value=value.dump())


def test_author_edits_own_entry_others_cannot(world):
    case_id, mid = _retro(world)
    dev_entry = _entries(world)[TECH_DEV][0]
    # someone else: a toast naming who may, nothing changes
    for action in ("retro.edit", "retro.delete"):
        ans = _click(world, DESIGN_HEAD, mid, action, case_id, dev_entry)
        assert ans["toast"]["type"] == "error"
        assert ans["toast"]["content"] == texts.RETRO_NOT_AUTHOR.format(who="技术部接口人")
    forged = _click(world, DESIGN_HEAD, mid, "retro.add", case_id, dev_entry,
                    form={"kind": "outcome", "content": "改掉"})
    assert forged["toast"]["content"] == texts.RETRO_NOT_AUTHOR.format(who="技术部接口人")
    assert _entries(world)[TECH_DEV][1:] == ("success", "每日站会让滞后提前暴露")
    # the author opens the entry in the form
    ans = _click(world, TECH_DEV, mid, "retro.edit", case_id, dev_entry)
    assert ans["toast"]["content"] == texts.FORM_OPENED_PRIVATELY and "card" not in ans   # only for the author
    assert_snapshot("steps46_retro_editing", world.form_of(TECH_DEV))
    fields = {n["name"]: n for n in walk(world.form_of(TECH_DEV)) if n.get("tag") in ("select_static", "input")}
    assert fields["kind"]["initial_option"] == "success"
    assert fields["content"]["default_value"] == "每日站会让滞后提前暴露"
    # a bad edit keeps what was typed
    bad = world.submit(TECH_DEV, mid, {"kind": "weakness", "content": " "}, form_name="retro_entry")
    assert bad["toast"]["content"] == texts.RETRO_NEED_CONTENT
    kind = next(n for n in walk(bad["card"]["data"]) if n.get("tag") == "select_static")
    assert kind["initial_option"] == "weakness"
    assert any(n.get("text", {}).get("content") == "保存修改" for n in walk(bad["card"]["data"]))
    ok = world.submit(TECH_DEV, mid, {"kind": "weakness", "content": "接口加密方案评估晚了"}, form_name="retro_entry")
    assert ok["toast"]["content"] == texts.RETRO_SAVED.format(kind="不足之处")
    assert _entries(world)[TECH_DEV] == (dev_entry, "weakness", "接口加密方案评估晚了")
    assert _audit(world, "retro.edit") == ["成功经验：每日站会让滞后提前暴露 → 不足之处：接口加密方案评估晚了"]
    # the card is back to adding, showing the new text
    assert "接口加密方案评估晚了" in str(world.card(mid))
    again = _click(world, TECH_DEV, mid, "retro.add", case_id, dev_entry,
                   form={"kind": "weakness", "content": "接口加密方案评估晚了"})
    assert again["toast"]["content"] == texts.RETRO_UNCHANGED and len(_audit(world, "retro.edit")) == 1


def test_author_deletes_own_entry_once(world):
    case_id, mid = _retro(world)
    design_entry = _entries(world)[DESIGN_HEAD][0]
    ans = _click(world, OUTSIDER, mid, "retro.delete", case_id, design_entry)
    assert ans["toast"] == {"type": "error", "content": texts.NOT_TEAM_MEMBER}
    assert DESIGN_HEAD in _entries(world)
    ans = _click(world, DESIGN_HEAD, mid, "retro.delete", case_id, design_entry)
    assert ans["toast"]["content"] == texts.RETRO_DELETED.format(kind="不足之处")
    assert DESIGN_HEAD not in _entries(world) and "设计稿晚到" not in str(world.card(mid))
    again = _click(world, DESIGN_HEAD, mid, "retro.delete", case_id, design_entry)
    assert again["toast"]["content"] == texts.RETRO_ENTRY_GONE
    assert _audit(world, "retro.delete") == ["不足之处：设计稿晚到"]


def test_no_edits_after_the_lead_finalises(world):
    case_id, mid = _retro(world)
    dev_entry = _entries(world)[TECH_DEV][0]
    world.clock.advance(timedelta(seconds=5))
    world.press(LEAD, mid, "定稿并结案")
    assert "编辑" not in {n.get("text", {}).get("content") for n in walk(world.card(mid))}
    for action, form in (("retro.edit", None), ("retro.delete", None),
                         ("retro.add", {"kind": "outcome", "content": "改掉"})):
        ans = _click(world, TECH_DEV, mid, action, case_id, dev_entry, form=form)
        # refused, and shown what became of it: the final report, read-only
        assert ans["toast"] == {"type": "info", "content": texts.ARCHIVED_SHOWN}, ans
        assert "《复盘总结报告》" in ans["card"]["data"]["header"]["title"]["content"]
        assert not [n for n in walk(ans["card"]["data"]["body"]) if n.get("tag") in ("form", "input")]
    assert _entries(world)[TECH_DEV][1:] == ("success", "每日站会让滞后提前暴露")
