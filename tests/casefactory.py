"""Writes a case straight into a later step through the models, so step 4–6 tests start where
steps 1–3 leave off: departments with heads and 接口人, members, action items, department
inputs and a confirmed 《需求确认清单》, with a realistic step history (StepLog, signatures).

    case_id = make_case_at_step4(world.state.factory, now=world.clock.now())
    make_plan_published(world.state.factory, case_id, now=..., tasks=[TaskSpec(...)])
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import (
    ActionItem,
    ArtifactState,
    Case,
    ConsensusVersion,
    Department,
    DepartmentInput,
    KeyNode,
    Member,
    PlanVersion,
    Requirement,
    Risk,
    Signoff,
    StepLog,
    Task,
)
from tests.driver import CHAT, DESIGN_HEAD, LEAD, TECH_DEV, TECH_HEAD, TENANT

# (name, head, 接口人)
DEPARTMENTS = (("市场部", LEAD, LEAD), ("技术部", TECH_HEAD, TECH_DEV), ("设计部", DESIGN_HEAD, DESIGN_HEAD))
MEMBERS = ((LEAD, "市场部", "协作组长", "统筹协调"), (TECH_HEAD, "技术部", "技术负责人", "技术方案"),
           (TECH_DEV, "技术部", "接口人", "接口开发"), (DESIGN_HEAD, "设计部", "接口人", "页面适配"))
# days spent in steps 1, 2, 3 before step 4 starts
STEP_DAYS = (1.0, 0.5, 1.5)


@dataclass(frozen=True)
class TaskSpec:
    content: str
    owner: str
    start: datetime
    due: datetime
    standard: str = "提交测试"
    status: str = "todo"
    progress: int = 0
    department: str | None = None


def _scope(**kw):
    return dict(tenant_key=TENANT, chat_id=CHAT, **kw)


def make_case_at_step4(factory: sessionmaker[Session], *, now: datetime, title: str = "新品推广页面延迟",
                       tenant_key: str = TENANT, chat_id: str = CHAT, action_items: bool = True) -> int:
    """A case that has just entered step 4; returns its id. History: created sum(STEP_DAYS) days ago."""
    created = now - timedelta(days=sum(STEP_DAYS))
    with factory() as s, s.begin():
        seq = (s.scalar(select(Case.seq).where(Case.tenant_key == tenant_key, Case.chat_id == chat_id)
                        .order_by(Case.seq.desc()).limit(1)) or 0) + 1
        case = Case(tenant_key=tenant_key, chat_id=chat_id, seq=seq, title=title, step=4, status="active",
                    opener_open_id=LEAD, lead_open_id=LEAD, created_at=created, updated_at=now, step_entered_at=now,
                    draft={})
        s.add(case)
        s.flush()
        _fill_steps_1_to_3(s, case, now=now, created=created, action_items=action_items)
        return case.id


def fast_forward_to_step4(factory: sessionmaker[Session], case_id: int, *, now: datetime) -> None:
    """An existing case (e.g. opened with /问题) gets steps 1–3's rows and is put in step 4."""
    with factory() as s, s.begin():
        case = s.get(Case, case_id)
        for model in (StepLog, ArtifactState, Signoff, Member, DepartmentInput, Requirement, Department,
                      ConsensusVersion):
            s.query(model).filter(model.case_id == case_id).delete()
        case.step, case.step_entered_at = 4, now
        _fill_steps_1_to_3(s, case, now=now, created=now - timedelta(days=sum(STEP_DAYS)), action_items=False)


def _fill_steps_1_to_3(s: Session, case: Case, *, now: datetime, created: datetime, action_items: bool) -> None:
    sc = dict(tenant_key=case.tenant_key, chat_id=case.chat_id)
    at = created
    for step, days in enumerate(STEP_DAYS, start=1):
        s.add(StepLog(**sc, case_id=case.id, step=step, entered_at=at, left_at=at + timedelta(days=days)))
        at += timedelta(days=days)
    s.add(StepLog(**sc, case_id=case.id, step=4, entered_at=now))
    cv = ConsensusVersion(**sc, case_id=case.id, version=1, background="原计划本周上线新品推广页面",
                          current_state="技术部未完成接口对接", impact="推广活动延迟3天，预计影响客流5000人次",
                          goal="3天内完成页面对接，保证推广活动按期上线", goal_date=date(2026, 12, 11),
                          expected_outcome="推广页面12月11日上线",
                          departments=[{"name": n, "head": h} for n, h, _ in DEPARTMENTS],
                          created_by=LEAD, created_at=created)
    s.add(cv)
    depts = {}
    for pos, (name, head, contact) in enumerate(DEPARTMENTS):
        d = Department(**sc, case_id=case.id, name=name, head_open_id=head, contact_open_id=contact, position=pos,
                       kind="core" if pos < 2 else "support")
        s.add(d)
        s.flush()
        depts[name] = d
        # heads signed the consensus 2, 5, 8 hours after it was written
        s.add(Signoff(**sc, case_id=case.id, artifact="consensus", artifact_version=1, department_id=d.id,
                      status="signed", actor_open_id=head, at=created + timedelta(hours=2 + 3 * pos)))
    for open_id, dept, role, duty in MEMBERS:
        s.add(Member(**sc, case_id=case.id, department_id=depts[dept].id, open_id=open_id, role=role, duty=duty))
    step3 = created + timedelta(days=STEP_DAYS[0] + STEP_DAYS[1])
    for pos, d in enumerate(depts.values()):
        s.add(DepartmentInput(**sc, case_id=case.id, department_id=d.id, resources="2人", constraints="人力紧张",
                              demands="提供测试账号", submitted_by=d.contact_open_id, submitted_at=step3))
        s.add(Signoff(**sc, case_id=case.id, artifact="requirements", artifact_version=1, department_id=d.id,
                      status="signed", actor_open_id=d.head_open_id, at=step3 + timedelta(hours=4 * (pos + 1))))
    s.add(Requirement(**sc, case_id=case.id, department_id=depts["技术部"].id, demand="接口增加用户数据加密",
                      solution="额外1天完成", priority="high", created_by=TECH_HEAD, created_at=step3))
    for artifact in ("team", "requirements"):
        s.add(ArtifactState(**sc, case_id=case.id, artifact=artifact, version=1, archived_at=step3))
    if action_items:
        s.add(ActionItem(**sc, case_id=case.id, content="完成用户数据加密接口开发", owner_open_id=TECH_DEV,
                         due_date=date(2026, 12, 10)))
        s.add(ActionItem(**sc, case_id=case.id, content="协调设计部完成页面适配", owner_open_id=DESIGN_HEAD,
                         due_date=None))


def add_tasks(factory: sessionmaker[Session], case_id: int, tasks: list[TaskSpec], *, now: datetime) -> list[int]:
    with factory() as s, s.begin():
        case = s.get(Case, case_id)
        ids = []
        top = s.scalar(select(Task.seq).where(Task.case_id == case_id).order_by(Task.seq.desc()).limit(1)) or 0
        for i, spec in enumerate(tasks, start=top + 1):
            dept = None
            if spec.department:
                dept = s.scalar(select(Department.id).where(Department.case_id == case_id,
                                                            Department.name == spec.department))
            t = Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id, seq=i, content=spec.content,
                     owner_open_id=spec.owner, department_id=dept, start_at=spec.start, due_at=spec.due,
                     delivery_standard=spec.standard, status=spec.status, progress=spec.progress, updated_at=now)
            s.add(t)
            s.flush()
            ids.append(t.id)
        return ids


def make_bare_step5_case(factory: sessionmaker[Session], *, now: datetime, tenant_key: str, chat_id: str, lead: str,
                         tasks: list[TaskSpec], title: str = "新品推广页面延迟") -> int:
    """A case already in step 5 with its tasks and nothing of steps 1–4 (for the sandbox's clock
    tests; those steps have tests of their own): its id."""
    with factory() as s, s.begin():
        case = Case(tenant_key=tenant_key, chat_id=chat_id, seq=1, title=title, step=5, opener_open_id=lead,
                    lead_open_id=lead, created_at=now - timedelta(days=4), updated_at=now,
                    step_entered_at=now - timedelta(days=1))
        s.add(case)
        s.flush()
        case_id = case.id
    add_tasks(factory, case_id, tasks, now=now)
    return case_id


def default_tasks(now: datetime) -> list[TaskSpec]:
    """Two tasks in the spirit of the method's example (times relative to `now`)."""
    return [TaskSpec("完成用户数据加密接口开发", TECH_DEV, now, now + timedelta(days=2), "12月10日18点前提交测试"),
            TaskSpec("协调设计部完成页面适配", DESIGN_HEAD, now, now + timedelta(days=1), "页面适配稿通过评审")]


def make_plan_published(factory: sessionmaker[Session], case_id: int, *, now: datetime,
                        tasks: list[TaskSpec] | None = None) -> list[int]:
    """Tasks + a risk + a key node, published as baseline version 1; the case is put in step 5."""
    ids = add_tasks(factory, case_id, tasks if tasks is not None else default_tasks(now), now=now)
    with factory() as s, s.begin():
        case = s.get(Case, case_id)
        sc = dict(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id)
        s.add(Risk(**sc, risk="测试延迟", likelihood="mid", impact="high", response="安排1名测试加班",
                   owner_open_id=TECH_HEAD))
        s.add(KeyNode(**sc, name="上线", at=now + timedelta(days=3)))
        # the columns the snapshot needs (migration tests run this on older schemas)
        rows = s.execute(select(Task.id, Task.seq, Task.content, Task.owner_open_id, Task.start_at, Task.due_at,
                                Task.delivery_standard).where(Task.case_id == case_id).order_by(Task.id)).all()
        snap = {"tasks": [{"id": t.id, "seq": t.seq, "content": t.content, "owner": t.owner_open_id,
                           "start": t.start_at.isoformat(), "due": t.due_at.isoformat(),
                           "standard": t.delivery_standard} for t in rows]}
        s.add(PlanVersion(**sc, version=1, snapshot=snap, published_by=case.lead_open_id, published_at=now))
        state = s.scalar(select(ArtifactState).where(ArtifactState.case_id == case_id,
                                                     ArtifactState.artifact == "plan"))
        if state is None:
            s.add(ArtifactState(**sc, artifact="plan", version=1, archived_at=now))
        else:
            state.archived_at = now
        log = s.scalar(select(StepLog).where(StepLog.case_id == case_id, StepLog.left_at.is_(None)))
        if log is not None:
            log.left_at = now
        s.add(StepLog(**sc, step=5, entered_at=now))
        case.step, case.step_entered_at = 5, now
    return ids


def make_retro(factory: sessionmaker[Session], case_id: int, *, now: datetime) -> None:
    """A published case whose execution has ended: put in step 6 (the retrospective)."""
    with factory() as s, s.begin():
        case = s.get(Case, case_id)
        log = s.scalar(select(StepLog).where(StepLog.case_id == case_id, StepLog.left_at.is_(None)))
        if log is not None:
            log.left_at = now
        s.add(StepLog(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case_id, step=6, entered_at=now))
        case.step, case.step_entered_at = 6, now


def retro_case_card(world) -> tuple[int, str]:
    """A case in step 6 and its case card, posted by the lead's /进度: (case id, message id)."""
    now = world.clock.now()
    case_id = make_case_at_step4(world.state.factory, now=now)
    make_plan_published(world.state.factory, case_id, now=now)
    make_retro(world.state.factory, case_id, now=now)
    world.say(LEAD, "/进度")
    return case_id, world.last_card(title_contains="新品推广页面延迟")["message_id"]


def open_retro_card(world, user: str = LEAD) -> tuple[int, str]:
    """A case in step 6 and the 复盘会 card `user` opened from the case card: (case id, message id)."""
    case_id, case_mid = retro_case_card(world)
    world.press(user, case_mid, "填写复盘")
    return case_id, world.last_card(title_contains="复盘会")["message_id"]


def fill_retro(world, user: str, mid: str, form: dict) -> dict:
    """`user` writes in the retrospective: their private form (opened from the shared 复盘会 card
    with 「填写我的复盘」 unless one is open already), submitted once."""
    from bot import texts
    from tests.driver import has_submit
    if not any(has_submit(m["content"], "retro_entry") for m in world.private_cards(user)):
        world.press(user, mid, texts.BTN_RETRO_FILL)
    return world.submit(user, mid, form, form_name="retro_entry")


PLAN_FORM_BUTTONS = {"plan_task": "＋任务", "plan_risk": "＋风险", "plan_node": "＋关键节点",
                     "plan_depends": "设置依赖"}


def fill_plan(world, user: str, mid: str, form: dict, form_name: str = "plan_task") -> dict:
    """`user` submits a plan form: their private one (opened from the shared plan card with
    「＋任务」「＋风险」「＋关键节点」「设置依赖」 unless that form is open already), submitted once."""
    from tests.driver import has_submit
    if not any(has_submit(m["content"], form_name) for m in world.private_cards(user)):
        world.press(user, mid, PLAN_FORM_BUTTONS[form_name])
    return world.submit(user, mid, form, form_name=form_name)
