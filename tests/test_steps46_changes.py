"""Step 5 — /调整 change requests (approve, reject, new plan version, diff) and closing execution."""
from datetime import timedelta

from sqlalchemy import select

from bot import texts
from bot.models import Case, ChangeRequest, PlanVersion, StepLog, Task
from tests.cardsnap import assert_snapshot
from tests.casefactory import make_case_at_step4, make_plan_published
from tests.driver import DESIGN_HEAD, LEAD, OUTSIDER, TECH_DEV, TECH_HEAD, card_text, card_title, fits, walk


def _at(open_id: str) -> str:
    return f'<at user_id="{open_id}"></at>'


def _notices(world, template: str) -> list[str]:
    """The group texts that are `template` (in their first line: a lead's note may follow)."""
    return [t for t in world.texts() if fits(template, t.split("\n", 1)[0])]


def setup(world):
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    ids = make_plan_published(world.state.factory, case_id, now=now)
    return case_id, ids


def change_form(world, user=TECH_DEV):
    """/调整 opens the form for the person who typed it only."""
    world.clock.advance(timedelta(seconds=5))  # people do not type six commands a second (the fake limits 5/s)
    n = len(world.messages())
    world.say(user, "/调整")
    assert len(world.messages()) == n, "the form is not the group's"
    form = world.last_card(title_contains="调整申请 · ")
    assert form.get("visible_to") == user, form.get("visible_to")
    return form["message_id"]


def request_card(world, no=None):
    """The request the lead decides on: a new card in the group (it @-mentions the lead)."""
    return world.last_card(title_contains=f"调整申请 #{no or ''}")["message_id"]


def approve(world, user, mid, note=""):
    return world.submit(user, mid, {"approve_note": note} if note else {}, form_name="cr_approve")


def reject(world, user, mid, note=""):
    return world.submit(user, mid, {"reject_note": note} if note else {}, form_name="cr_reject")


def task(world, task_id):
    with world.state.factory() as s:
        return s.get(Task, task_id)


def test_change_approved_creates_version_with_diff(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world)
    assert_snapshot("steps46_change_form_edit", world.card(mid))
    bad = world.submit(TECH_DEV, mid, {"task": str(t1), "due": "2026-12-11 18:00 +0800"}, form_name="change_edit")
    assert bad["toast"]["content"] == texts.CHANGE_NEED_REASON
    due = next(n for n in walk(bad["card"]["data"]) if n.get("name") == "due")
    assert due["initial_datetime"] == "2026-12-11 18:00"
    n_texts = len(world.texts())
    ans = world.submit(TECH_DEV, mid, {"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "加密方案变更",
                                       "retro_note": "复盘会：顺延1天"}, form_name="change_edit")
    assert ans["toast"]["content"] == texts.CHANGE_SUBMITTED
    assert card_title(world.card(mid)) == texts.CHANGE_SUBMITTED        # the private form is done: one line
    assert not [n for n in walk(world.card(mid)) if n.get("tag") == "button"]
    mid = request_card(world, 1)
    assert_snapshot("steps46_change_request_pending", world.card(mid))
    # one message asks the lead (a new card with the @mention notifies), no extra line
    assert f"<at id={LEAD}></at>" in card_text(world.card(mid)) and len(world.texts()) == n_texts
    # only the lead decides
    assert approve(world, TECH_HEAD, mid)["toast"]["content"] == texts.NOT_LEAD
    ans = approve(world, LEAD, mid, "同意顺延，请同步客户")
    assert ans["toast"]["content"] == texts.CHANGE_APPROVED.format(no=1, version=2)
    assert_snapshot("steps46_change_request_approved", world.card(mid))
    assert "**组长意见：**同意顺延，请同步客户" in card_text(world.card(mid))
    assert not _notices(world, texts.CHANGE_APPROVED_NOTICE)    # the requester hears it on the new version's card
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.decision_note)) == "同意顺延，请同步客户"
    assert task(world, t1).due_at.isoformat() == "2026-12-11T10:00:00+00:00"
    with world.state.factory() as s:
        versions = s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)
                             .order_by(PlanVersion.version)).all()
        assert [(v.version, v.reason) for v in versions] == [(1, ""), (2, "加密方案变更")]
        assert versions[1].change_request_id is not None
    diff = world.last_card(title_contains="版本 2")["content"]
    assert_snapshot("steps46_plan_diff", diff)
    text = card_text(diff)
    assert "#1 完成用户数据加密接口开发：截止 12-10 09:00 → 12-11 18:00" in text
    assert f"<at id={TECH_DEV}></at>" in text and "复盘会：顺延1天" in text and "同意顺延" in text
    assert texts.DIFF_APPROVED_FOR.format(who=f"<at id={TECH_DEV}></at>", no=1) in text
    assert text.count(f"<at id={TECH_DEV}></at>") == 1                # told once
    # the second click on the same card changes nothing
    again = world.click(LEAD, mid, value={"a": "change.approve", "c": case_id, "r": versions[1].change_request_id})
    assert again["toast"]["content"] == texts.CHANGE_ALREADY.format(status=texts.CHANGE_STATUS["approved"][0])
    with world.state.factory() as s:
        assert len(s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()) == 2


def test_change_rejected_keeps_plan(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world, DESIGN_HEAD)
    world.press(DESIGN_HEAD, mid, "取消任务")
    world.submit(DESIGN_HEAD, mid, {"task": str(t2), "reason": "页面不再需要适配"}, form_name="change_drop")
    mid = request_card(world, 1)
    ans = reject(world, LEAD, mid, "上线前不能取消适配<at user_id=\"all\"></at>")
    assert ans["toast"]["content"] == texts.CHANGE_REJECTED.format(no=1)
    assert not task(world, t2).dropped
    notice = _notices(world, texts.CHANGE_REJECTED_NOTICE)
    assert notice == [texts.CHANGE_REJECTED_NOTICE.format(who=_at(DESIGN_HEAD), no=1,
                                                          summary="取消任务 #2 协调设计部完成页面适配")
                      + "\n"  # the note's mention is made inert
                      + texts.CHANGE_NOTICE_NOTE.format(note='上线前不能取消适配＜at user_id="all"＞＜/at＞')]
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.decision_note)).startswith("上线前不能取消适配")
    assert_snapshot("steps46_change_request_rejected", world.card(mid))
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.status)) == "rejected"
        assert len(s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()) == 1


def test_new_task_and_owner_change(world):
    case_id, (t1, t2) = setup(world)
    mid = change_form(world, LEAD)
    world.press(LEAD, mid, "新增任务")
    bad = world.submit(LEAD, mid, {"content": "紧急推广功能", "owner": TECH_HEAD, "due": "2026-12-08 08:00 +0800",
                                   "standard": "功能上线", "reason": "竞品提前发布"}, form_name="change_add")
    assert bad["toast"]["content"] == texts.ERR_PAST.format(field=texts.FIELD_DUE, value="12-08 08:00")
    kept = {n["name"]: n for n in walk(bad["card"]["data"]) if n.get("name") in ("content", "due", "reason")}
    assert kept["content"]["default_value"] == "紧急推广功能" and kept["reason"]["default_value"] == "竞品提前发布"
    assert kept["due"]["initial_datetime"] == "2026-12-08 08:00"
    world.submit(LEAD, mid, {"content": "紧急推广功能", "owner": TECH_HEAD, "due": "2026-12-10 12:00 +0800",
                             "standard": "功能上线", "reason": "竞品提前发布"}, form_name="change_add")
    mid = request_card(world, 1)
    assert "紧急推广功能 · <at id=ou_head_tech></at> · 批准后开始 → 12-10 12:00" in card_text(world.card(mid))
    world.clock.advance(timedelta(hours=1))
    approve(world, LEAD, mid)
    with world.state.factory() as s:
        new = s.scalar(select(Task).where(Task.case_id == case_id, Task.content == "紧急推广功能"))
        assert new.seq == 3 and new.owner_open_id == TECH_HEAD
        assert new.start_at == world.clock.now()  # starts when approved
    assert "#3 紧急推广功能：新增" in card_text(world.last_card(title_contains="版本 2")["content"])
    mid = change_form(world, LEAD)
    world.submit(LEAD, mid, {"task": str(t2), "owner": TECH_DEV, "reason": "设计部人手不足"}, form_name="change_edit")
    approve(world, LEAD, request_card(world, 2))
    assert not _notices(world, texts.CHANGE_APPROVED_NOTICE)  # the lead asked and decided: no notice to self
    assert task(world, t2).owner_open_id == TECH_DEV
    text = card_text(world.last_card(title_contains="版本 3")["content"])
    assert f"负责人 <at id={DESIGN_HEAD}></at> → <at id={TECH_DEV}></at>" in text
    assert "#3 紧急推广功能：新增" in text  # differences are against the baseline


def test_outsider_cannot_request_changes(world):
    setup(world)
    world.say(OUTSIDER, "/调整")
    assert texts.NOT_TEAM_MEMBER in world.texts()


def test_lead_closes_execution_with_reason(world):
    case_id, _ = setup(world)
    world.say(LEAD, "/进度")
    world.press(LEAD, world.last_card(title_contains="新品推广页面延迟")["message_id"], "查看进度跟踪表")
    track = world.last_card(title_contains="《进度跟踪表》")["message_id"]
    assert world.press(TECH_DEV, track, "结束执行")["toast"]["content"] == texts.NOT_LEAD
    world.press(LEAD, track, "结束执行")
    mid = world.last_card(title_contains="结束执行")["message_id"]
    assert_snapshot("steps46_close_execution", world.card(mid))
    assert world.submit(LEAD, mid, {"reason": " "})["toast"]["content"] == texts.EXEC_CLOSE_NEED_REASON
    world.submit(LEAD, mid, {"reason": "推广活动已上线，剩余优化转入常规迭代"})
    with world.state.factory() as s:
        assert s.get(Case, case_id).step == 6
        log = s.scalar(select(StepLog).where(StepLog.case_id == case_id, StepLog.step == 6))
        assert log.reason == "推广活动已上线，剩余优化转入常规迭代"


def _concurrently(world, mid, clicks):
    """Store every click first, then process them at the same moment on the real database."""
    from tests.racing import process_at_once, stored_click

    ids = [stored_click(world, user, mid, form=form, name=name) for user, name, form in clicks]
    answers = process_at_once(world, ids)
    world.drain()
    return [a.toast for a in answers]


def _pending_request(world, user=TECH_DEV):
    case_id, (t1, _t2) = setup(world)
    mid = change_form(world, user)
    world.submit(user, mid, {"task": str(t1), "due": "2026-12-11 18:00 +0800", "reason": "加密方案变更"},
                 form_name="change_edit")
    return case_id, request_card(world, 1)


def test_double_clicks_on_approve_decide_once(world):
    from tests.driver import find_submit
    case_id, mid = _pending_request(world)
    card = world.card(mid)
    ok, no = find_submit(card, "cr_approve"), find_submit(card, "cr_reject")
    toasts = _concurrently(world, mid, [(LEAD, ok, {"approve_note": "同意"}), (LEAD, ok, {"approve_note": "同意"}),
                                        (LEAD, no, {"reject_note": "不同意"})])
    decided = [t for t in toasts
               if t in (texts.CHANGE_APPROVED.format(no=1, version=2), texts.CHANGE_REJECTED.format(no=1))]
    assert len(decided) == 1, toasts
    assert all(t in decided or fits(texts.CHANGE_ALREADY, t) for t in toasts), toasts
    with world.state.factory() as s:
        cr = s.scalar(select(ChangeRequest))
        versions = s.scalars(select(PlanVersion).where(PlanVersion.case_id == case_id)).all()
        assert len(versions) == (2 if cr.status == "approved" else 1)
        assert cr.decision_note == ("同意" if cr.status == "approved" else "不同意")
    # the asker is told once: an approval on the new version's card, a rejection in one line
    told_on_card = [m for m in world.cards() if texts.DIFF_APPROVED_FOR.split("{who}")[1].split("{no}")[0]
                    in str(m["content"])]
    notices = _notices(world, texts.CHANGE_APPROVED_NOTICE) + _notices(world, texts.CHANGE_REJECTED_NOTICE)
    assert len(told_on_card) + len(notices) == 1, (told_on_card, notices)
    assert (len(told_on_card) == 1) == (cr.status == "approved")
    # and a later click on the old card changes nothing either
    again = world.click(LEAD, mid, form={"reject_note": "再点一次"}, name=no)
    assert again["toast"]["content"] == texts.CHANGE_ALREADY.format(status=texts.CHANGE_STATUS[cr.status][0])
    with world.state.factory() as s:
        assert s.scalar(select(ChangeRequest.decision_note)) == cr.decision_note


def test_double_clicks_on_reject_decide_once(world):
    from tests.driver import find_submit
    _case_id, mid = _pending_request(world, DESIGN_HEAD)
    no = find_submit(world.card(mid), "cr_reject")
    toasts = _concurrently(world, mid, [(LEAD, no, {"reject_note": "人手够"})] * 3)
    assert toasts.count(texts.CHANGE_REJECTED.format(no=1)) == 1, toasts
    assert toasts.count(texts.CHANGE_ALREADY.format(status=texts.CHANGE_STATUS["rejected"][0])) == 2, toasts
    assert len(_notices(world, texts.CHANGE_REJECTED_NOTICE)) == 1
