"""Step 4 — 制定行动方案 → 《跨部门协作行动方案》.

Tasks, risks and key nodes are drafted in private forms (仅对你可见) that the shared plan card's
「＋任务」「＋风险」「＋关键节点」 open for the clicker; the lead
publishes: the plan goes out as 会议纪要, each owner is @mentioned with their tasks, version 1 is
stored as the baseline and the case moves to step 5. Shared helpers of steps 4–6 live here too."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import (
    outbox,
    repository,
    texts,
)
from bot.actions import PLAN_OPEN, ActionValue

# ---------------------------------------------------------------- step 4 handlers
from bot.domain import CaseStatus, Level, RiskStatus, parse
from bot.envelope import CardAction
from bot.ids import is_open_id, number
from bot.lagging import is_lagging
from bot.models import ActionItem, Case, KeyNode, PlanVersion, Risk, Task
from bot.repository import department_of, get_task, nodes_of, plan_version, risks_of, tasks_of, team_open_ids
from bot.routing import CallbackAnswer, Ctx, Router, UserError, Versioned
from bot.workdays import WORK_START, calendar_for
from bot.workflow import Blocked, Publish, Step
from cards.plan import (
    TASK_ROWS,
    MinutesView,
    PlanActions,
    PlanNode,
    PlanRisk,
    PlanTask,
    PlanView,
    minutes_card,
    plan_card,
    plan_form,
    row_key,
)
from handlers import feishu_board, feishu_tasks, people, templates, warnings
from handlers.common import (
    audit,
    first_too_long,
    fmt,
    from_private_form,
    gap_labels,
    load_case,
    md_table,
    not_member,
    open_form,
    parse_when,
    picker_value,
    require_step,
    send_private_form,
    transition,
    typed_back,
)
from handlers.tasks import (
    check_depends,
    check_task,
    depends_id,
    find_cycle,
    next_task_seq,
    plan_snapshot,
    today_start,
    when_field,
)
from handlers.views import plan_timeline

router = Router(Step.PLAN)

PLAN_MODE = "plan.mode"
PLAN_TASK = "plan.task"          # add (no row) or save an edited task (row = task id)
PLAN_EDIT = "plan.edit"
PLAN_DEL_TASK = "plan.del_task"
PLAN_RISK = "plan.risk"
PLAN_DEL_RISK = "plan.del_risk"
PLAN_NODE = "plan.node"
PLAN_DEL_NODE = "plan.del_node"
PLAN_CARRY = "plan.carry"
PLAN_PUBLISH = "plan.publish"
PLAN_DEPENDS = "plan.depends"    # form: task + the task it waits for ("0": none)
ACTIONS = PlanActions(mode=PLAN_MODE, add_task=PLAN_TASK, add_risk=PLAN_RISK, add_node=PLAN_NODE,
                      edit_task=PLAN_EDIT, delete_task=PLAN_DEL_TASK, delete_risk=PLAN_DEL_RISK,
                      delete_node=PLAN_DEL_NODE, carry=PLAN_CARRY, publish=PLAN_PUBLISH, set_depends=PLAN_DEPENDS)


def meeting_hours(case: Case) -> int:
    offsets = case.key_node_offsets_h or [24]
    return int(max(offsets))


def _plan_tasks(tasks: list[Task], tz: ZoneInfo, now: datetime | None = None) -> tuple[PlanTask, ...]:
    """The plan's task rows; with `now` (a published plan being carried out) lagging ones are marked."""
    seqs = {t.id: t.seq for t in tasks}
    return tuple(PlanTask(task_id=t.id, seq=t.seq, content=t.content, owner=t.owner_open_id, start=fmt(t.start_at, tz),
                          due=fmt(t.due_at, tz), standard=t.delivery_standard, resources=t.resources,
                          depends=f"#{seqs[t.depends_on_id]}" if t.depends_on_id in seqs else "",
                          lagging=now is not None and is_lagging(t, now)) for t in tasks)


def _parts(session: Session, case: Case, tz: ZoneInfo, now: datetime | None = None):
    tasks = _plan_tasks(tasks_of(session, case), tz, now if case.step == Step.EXECUTION else None)
    risks = tuple(PlanRisk(risk_id=r.id, risk=r.risk, likelihood=r.likelihood, impact=r.impact, response=r.response,
                           owner=r.owner_open_id, open=r.status == RiskStatus.OPEN) for r in risks_of(session, case))
    hours = meeting_hours(case)
    nodes = tuple(PlanNode(node_id=n.id, name=n.name, at=fmt(n.at, tz), meeting=fmt(n.at - timedelta(hours=hours), tz))
                  for n in nodes_of(session, case))
    return tasks, risks, nodes


def _uncarried(session: Session, case: Case) -> list[ActionItem]:
    return list(session.scalars(select(ActionItem).where(
        ActionItem.case_id == case.id, ActionItem.tenant_key == case.tenant_key, ActionItem.chat_id == case.chat_id,
        ActionItem.carried_to_task_id.is_(None)).order_by(ActionItem.id)))


def _published_card(session: Session, case: Case, tz: ZoneInfo, now: datetime | None) -> dict:
    tasks, risks, nodes = _parts(session, case, tz, now)
    version = plan_version(session, case)
    return plan_card(PlanView(case.id, case.version, case.title, tasks, risks, nodes,
                              meeting_hours=meeting_hours(case), published_version=version))


def plan_card_for(session: Session, case: Case, tz: ZoneInfo, *, now: datetime | None = None) -> dict:
    """The plan card the group shares: the draft and its buttons in step 4 (no form in it), the
    read-only plan afterwards (with `now` during step 5: lagging tasks first, then open risks)."""
    if case.step != Step.PLAN:
        return _published_card(session, case, tz, now)
    tasks, risks, nodes = _parts(session, case, tz, now)
    card = plan_card(PlanView(case.id, case.version, case.title, tasks, risks, nodes,
                              meeting_hours=meeting_hours(case), actions=ACTIONS,
                              carry_count=len(_uncarried(session, case))))
    return templates.with_template_review(session, case, card)  # what a template copied, for the lead to check


def plan_form_for(session: Session, case: Case, tz: ZoneInfo, *, mode: str = "task", editing: Task | None = None,
                  typed: dict[str, str] | None = None, warning: str = "", confirm: str = "") -> dict:
    """One person's private form in step 4: new tasks (or the edit of one), a risk, a key node or
    a dependency; what they typed is shown again when it is refused."""
    tasks, risks, nodes = _parts(session, case, tz)
    if editing is not None and typed is None:
        typed = {"content": editing.content, "owner": editing.owner_open_id, "standard": editing.delivery_standard,
                 "resources": editing.resources, "start": picker_value(editing.start_at, tz) or "",
                 "due": picker_value(editing.due_at, tz) or ""}
    ed = next((t for t in tasks if editing is not None and t.task_id == editing.id), None)
    return plan_form(PlanView(case.id, case.version, case.title, tasks, risks, nodes,
                              meeting_hours=meeting_hours(case), actions=ACTIONS, mode=mode, editing=ed,
                              typed=typed or {}, warning=warning, confirm=confirm,
                              suggested_start=_suggested_start(session, case, tz)))


def _suggested_start(session: Session, case: Case, tz: ZoneInfo) -> str:
    """New task rows start the next working morning unless changed: most tasks start after the plan is out."""
    today = (case.updated_at or datetime.now(ZoneInfo("UTC"))).astimezone(tz).date()
    day = calendar_for(session, case.tenant_key).next_workday(today, inclusive=False)
    return f"{day.isoformat()} {WORK_START.strftime('%H:%M')}"


def _draft_case(ctx: Ctx, value: ActionValue) -> Case:
    case = load_case(ctx, value.case_id)
    if case.status == CaseStatus.ACTIVE and case.step > Step.PLAN and value.action != PLAN_OPEN:
        raise UserError(texts.PLAN_ALREADY_PUBLISHED, card=plan_card_for(ctx.session, case, ctx.tz, now=ctx.now),
                        kind="info")
    require_step(case, Step.PLAN)
    if ctx.actor not in team_open_ids(ctx.session, case):
        raise UserError(texts.NOT_TEAM_MEMBER)
    return case


def _answer(ctx: Ctx, case: Case, toast: str) -> CallbackAnswer:
    return CallbackAnswer(toast=toast, card=plan_card_for(ctx.session, case, ctx.tz))


def _saved(ctx: Ctx, event: CardAction, case: Case, toast: str, mode: str = "task") -> CallbackAnswer:
    """A saved form stays open, emptied, for the next one (the editor's private mode); the shared
    card is brought up to date by sync. A click from a shared card redraws that card only."""
    if from_private_form(ctx, event):
        return CallbackAnswer(toast=toast, card=plan_form_for(ctx.session, case, ctx.tz, mode=mode))
    return _answer(ctx, case, toast)


@router.action(PLAN_OPEN)
def open_plan(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = load_case(ctx, value.case_id)
    if case.step == Step.PLAN:
        templates.prefill_plan(ctx, case)
    elif case.step < Step.PLAN:
        require_step(case, Step.PLAN)
    ctx.send(outbox.SendCard(plan_card_for(ctx.session, case, ctx.tz, now=ctx.now), view="plan", case_id=case.id))
    if (case.step == Step.PLAN and case.status == CaseStatus.ACTIVE
            and ctx.actor in team_open_ids(ctx.session, case)):  # a member came to add tasks
        send_private_form(ctx, plan_form_for(ctx.session, case, ctx.tz), case)
        return CallbackAnswer(toast=texts.FORM_OPENED_PRIVATELY, toast_type="info")
    return CallbackAnswer(toast=texts.OUTPUTS[Step.PLAN])


@router.card_view("plan")
def _plan_view(ctx: Ctx, case: Case) -> dict:
    return plan_card_for(ctx.session, case, ctx.tz, now=ctx.now)


@router.action(PLAN_MODE)
def switch_mode(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    mode = value.extra.get("m", "task")
    return open_form(ctx, event, plan_form_for(ctx.session, case, ctx.tz,
                                               mode=mode if mode in ("task", "risk", "node", "depends") else "task"),
                     case)


@router.action(PLAN_EDIT)
def edit_task(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    task = get_task(ctx.session, case, value.row_id)
    if task is None:
        raise UserError(texts.ROW_ALREADY_DELETED, card=plan_card_for(ctx.session, case, ctx.tz), kind="info")
    return open_form(ctx, event, plan_form_for(ctx.session, case, ctx.tz, editing=task), case)


@router.action(PLAN_DEPENDS)
def set_depends(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    """The optional second step of a task: which task it waits for."""
    case = _draft_case(ctx, value)
    form = event.form_value or {}
    typed = typed_back(form, ("task", "depends"))
    task = get_task(ctx.session, case, number(typed["task"]))
    try:
        if task is None:
            raise ValueError(texts.ERR_DEPENDS_TASK)
        dep_id = depends_id(form, task)
        check_depends(tasks_of(ctx.session, case), task.id, dep_id)
    except ValueError as exc:
        raise UserError(str(exc), card=plan_form_for(ctx.session, case, ctx.tz, mode="depends", typed=typed)) from exc
    dep = get_task(ctx.session, case, dep_id)
    toast = (texts.DEPENDS_SET.format(seq=task.seq, dep=dep.seq) if dep else texts.DEPENDS_CLEARED.format(seq=task.seq))
    if task.depends_on_id != dep_id:  # a double submit changes nothing twice
        task.depends_on_id, task.updated_at = dep_id, ctx.now
        audit(ctx, case, "plan.save", toast)
    return _saved(ctx, event, case, toast, mode="depends")


TASK_KEYS = ("content", "owner", "start", "due", "standard", "resources", "depends")
ROW_KEYS = ("content", "owner", "due", "standard", "resources")   # start is pre-filled: it alone is no task


def _row_typed(form: dict) -> dict[str, str]:
    typed: dict[str, str] = {}
    for n in range(1, TASK_ROWS + 1):
        sub = {k: form.get(row_key(k, n)) for k in TASK_KEYS}
        typed.update({row_key(k, n): v for k, v in typed_back(sub, TASK_KEYS).items() if v})
    return typed


def _warn_unless_confirmed(ctx: Ctx, case: Case, value: ActionValue, problems: list[str], parsed: object,
                           **card: object) -> None:
    """Warnings are shown on the form; the same values submitted again (the button then carries
    their fingerprint) are saved."""
    if not problems:
        return
    token = warnings.fingerprint(parsed)
    if warnings.confirmed(value, token):
        return
    raise UserError(problems[0], kind="warning", card=plan_form_for(
        ctx.session, case, ctx.tz, warning="\n".join(problems), confirm=token, **card))  # type: ignore[arg-type]


@router.action(PLAN_TASK)
def save_task(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    form = event.form_value or {}
    if not value.row_id:
        return _add_tasks(ctx, event, case, form, value)
    editing = get_task(ctx.session, case, value.row_id)
    if editing is None:
        raise UserError(texts.ROW_ALREADY_DELETED, card=plan_card_for(ctx.session, case, ctx.tz), kind="info")
    typed = typed_back(form, TASK_KEYS)
    try:
        data = check_task(ctx, case, form, editing)
    except ValueError as exc:
        raise UserError(str(exc), card=plan_form_for(ctx.session, case, ctx.tz, editing=editing, typed=typed)) from exc
    problems = [w for w in (warnings.due_off_hours(ctx.session, case, texts.WARN_TASK_WHAT.format(seq=editing.seq),
                                                   data["due_at"], ctx.tz),) if w]
    problems += warnings.dependency_warnings(tasks_of(ctx.session, case), editing, data["due_at"], ctx.tz)
    _warn_unless_confirmed(ctx, case, value, problems, data, editing=editing, typed=typed)
    dept = department_of(ctx.session, case, data["owner_open_id"])
    for k, v in data.items():
        setattr(editing, k, v)
    editing.department_id, editing.updated_at = dept.id if dept else None, ctx.now
    audit(ctx, case, "plan.save", f"#{editing.seq} {data['content']}")
    return _saved(ctx, event, case, texts.TASK_SAVED.format(seq=editing.seq))


def _add_tasks(ctx: Ctx, event: CardAction, case: Case, form: dict, value: ActionValue) -> CallbackAnswer:
    """Every filled row of the form becomes a task, or none does (the first problem is named by row)."""
    typed = _row_typed(form)
    rows = []
    for n in range(1, TASK_ROWS + 1):
        sub = {k: form[row_key(k, n)] for k in TASK_KEYS if row_key(k, n) in form}
        if any(str(sub.get(k) or "").strip() for k in ROW_KEYS):
            rows.append((n, sub))
    if not rows:
        raise UserError(texts.PLAN_NO_ROWS, card=plan_form_for(ctx.session, case, ctx.tz, typed=typed))
    parsed = []
    for n, sub in rows:
        try:
            parsed.append((n, check_task(ctx, case, sub, None)))
        except ValueError as exc:
            problem = str(exc) if len(rows) == 1 and n == 1 else texts.PLAN_ROW_PROBLEM.format(n=n, problem=exc)
            raise UserError(problem, card=plan_form_for(ctx.session, case, ctx.tz, typed=typed)) from exc
    problems = [w for n, data in parsed if (w := warnings.due_off_hours(
        ctx.session, case, texts.WARN_ROW_WHAT.format(n=n), data["due_at"], ctx.tz))]
    _warn_unless_confirmed(ctx, case, value, problems, [d for _, d in parsed], typed=typed)
    existing = tasks_of(ctx.session, case)
    added, again = [], []
    for _n, data in parsed:
        same = next((t for t in existing if (t.content, t.owner_open_id, t.start_at, t.due_at) == (
            data["content"], data["owner_open_id"], data["start_at"], data["due_at"])), None)
        if same is not None:  # a double submit adds nothing twice
            again.append(same.seq)
            continue
        dept = department_of(ctx.session, case, data["owner_open_id"])
        task = Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                    seq=next_task_seq(ctx.session, case), department_id=dept.id if dept else None,
                    updated_at=ctx.now, **data)
        ctx.session.add(task)
        ctx.session.flush()
        existing.append(task)
        added.append(task.seq)
        audit(ctx, case, "plan.save", f"+#{task.seq} {task.content}")
    if not added:
        return _saved(ctx, event, case, texts.TASK_ALREADY_ADDED.format(seq=again[0]))
    toast = (texts.TASK_ADDED.format(seq=added[0]) if len(added) == 1
             else texts.TASKS_ADDED.format(seqs="、".join(f"#{s}" for s in added)))
    return _saved(ctx, event, case, toast)


# Publishing, deleting and carrying over act on the plan as the card showed it.
PLAN_AS_SHOWN = Versioned(step=Step.PLAN, current=lambda _s, case, _v: case.version,
                          card=lambda ctx, case, _v: plan_card_for(ctx.session, case, ctx.tz))


@router.action(PLAN_DEL_TASK, versioned=PLAN_AS_SHOWN)
def delete_task(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    task = get_task(ctx.session, case, value.row_id)
    if task is None:
        return _answer(ctx, case, texts.ROW_ALREADY_DELETED)
    other = next((t for t in tasks_of(ctx.session, case) if t.depends_on_id == task.id), None)
    if other is not None:
        raise UserError(texts.DEPENDED_ON.format(seq=task.seq, other=other.seq))
    ctx.session.execute(ActionItem.__table__.update().where(ActionItem.carried_to_task_id == task.id)
                        .values(carried_to_task_id=None))
    seq = task.seq
    ctx.session.delete(task)
    audit(ctx, case, "plan.save", f"-#{seq}")
    return _answer(ctx, case, texts.TASK_DELETED.format(seq=seq))


@router.action(PLAN_RISK)
def add_risk(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    form = event.form_value or {}
    typed = typed_back(form, ("risk", "likelihood", "impact", "response", "owner"))
    problem = (texts.ERR_RISK if not typed["risk"] else
               texts.ERR_LEVEL if parse(Level, typed["likelihood"]) is None
               or parse(Level, typed["impact"]) is None else
               texts.ERR_RISK_OWNER if not is_open_id(typed["owner"]) else
               not_member(ctx, typed["owner"], texts.COL_OWNER) or
               first_too_long(typed, {"risk": (texts.FIELD_RISK, 500), "response": (texts.FIELD_RESPONSE, 500)}))
    if problem:
        raise UserError(problem, card=plan_form_for(ctx.session, case, ctx.tz, mode="risk", typed=typed))
    if not any(r.risk == typed["risk"] and r.owner_open_id == typed["owner"] for r in risks_of(ctx.session, case)):
        ctx.session.add(Risk(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                             risk=typed["risk"], likelihood=Level(typed["likelihood"]),
                             impact=Level(typed["impact"]), response=typed["response"],
                             owner_open_id=typed["owner"]))
        audit(ctx, case, "plan.save", f"+{texts.COL_RISK} {typed['risk']}")
    return _saved(ctx, event, case, texts.RISK_ADDED, mode="risk")


@router.action(PLAN_NODE)
def add_node(ctx: Ctx, event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    form = event.form_value or {}
    typed = typed_back(form, ("name", "at"))
    try:
        if not typed["name"]:
            raise ValueError(texts.ERR_NODE_NAME)
        if problem := first_too_long(typed, {"name": (texts.FIELD_NODE_NAME, 64)}):
            raise ValueError(problem)
        at = when_field(form, "at", texts.FIELD_NODE_AT, ctx.tz)
        if at <= ctx.now:
            raise ValueError(texts.ERR_PAST.format(field=texts.FIELD_NODE_AT, value=fmt(at, ctx.tz)))
    except ValueError as exc:
        raise UserError(str(exc), card=plan_form_for(ctx.session, case, ctx.tz, mode="node", typed=typed)) from exc
    late = warnings.node_after_goal(ctx.session, case, typed["name"], at, ctx.tz)
    _warn_unless_confirmed(ctx, case, value, [late] if late else [], [typed["name"], at], mode="node", typed=typed)
    if not any(n.name == typed["name"] and n.at == at for n in nodes_of(ctx.session, case)):
        ctx.session.add(KeyNode(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                                name=typed["name"], at=at))
        audit(ctx, case, "plan.save", f"+{texts.COL_NODE} {typed['name']} {fmt(at, ctx.tz)}")
    return _saved(ctx, event, case, texts.NODE_ADDED.format(name=typed["name"]), mode="node")


def _delete_row(ctx: Ctx, value: ActionValue, model, toast: str) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    row = ctx.session.scalar(select(model).where(model.id == (value.row_id or 0), model.case_id == case.id,
                                                 model.tenant_key == case.tenant_key, model.chat_id == case.chat_id))
    if row is None:
        return _answer(ctx, case, texts.ROW_ALREADY_DELETED)
    ctx.session.delete(row)
    audit(ctx, case, "plan.save", toast)
    return _answer(ctx, case, toast)


@router.action(PLAN_DEL_RISK, versioned=PLAN_AS_SHOWN)
def delete_risk(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _delete_row(ctx, value, Risk, texts.RISK_DELETED)


@router.action(PLAN_DEL_NODE, versioned=PLAN_AS_SHOWN)
def delete_node(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    return _delete_row(ctx, value, KeyNode, texts.NODE_DELETED)


def _next_morning(now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    return (local + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0).astimezone(ZoneInfo("UTC"))


@router.action(PLAN_CARRY, versioned=PLAN_AS_SHOWN)
def carry_items(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    """Step 2's action items become tasks (start: next morning; due: the item's date 18:00, else
    a day later); the delivery standard is left for people to fill in before publishing."""
    case = _draft_case(ctx, value)
    items = _uncarried(ctx.session, case)
    if not items:
        return _answer(ctx, case, texts.NO_ITEMS_TO_CARRY)
    start = _next_morning(ctx.now, ctx.tz)
    for item in items:
        due = parse_when(f"{item.due_date.isoformat()} 18:00", ctx.tz) if item.due_date else None
        dept = department_of(ctx.session, case, item.owner_open_id)
        task = Task(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id,
                    seq=next_task_seq(ctx.session, case), content=item.content, owner_open_id=item.owner_open_id,
                    department_id=dept.id if dept else None,
                    start_at=start, due_at=due if due and due > start else start + timedelta(days=1),
                    delivery_standard="", updated_at=ctx.now)
        ctx.session.add(task)
        ctx.session.flush()
        item.carried_to_task_id = task.id
    audit(ctx, case, "plan.save", texts.ITEMS_CARRIED.format(n=len(items)))
    return _answer(ctx, case, texts.ITEMS_CARRIED.format(n=len(items)))


def publish_problems(session: Session, case: Case, now: datetime, tz: ZoneInfo) -> list[str]:
    """Everything that stops the plan from being published (server-side, whatever the card showed)."""
    tasks = tasks_of(session, case)
    if not tasks:
        return [texts.PUBLISH_NO_TASKS]
    out = []
    links = {t.id: t.depends_on_id for t in tasks}
    for t in tasks:
        for bad, problem in ((not t.owner_open_id, texts.PROBLEM_NO_OWNER),
                             (not t.delivery_standard.strip(), texts.PROBLEM_NO_STANDARD),
                             (t.due_at <= t.start_at, texts.PROBLEM_END_BEFORE_START),
                             (t.due_at <= now, texts.PROBLEM_DUE_PAST),
                             (t.start_at < today_start(now, tz), texts.PROBLEM_START_PAST)):
            if bad:
                out.append(texts.PUBLISH_TASK_PROBLEM.format(seq=t.seq, problem=problem))
        loop = find_cycle(links, t.id)
        if loop and loop[0] == t.id:
            seqs = {x.id: x.seq for x in tasks}
            out.append(texts.ERR_CYCLE.format(path=" → ".join(f"#{seqs[i]}" for i in loop)))
    out += [texts.PROBLEM_NODE_PAST.format(name=n.name) for n in nodes_of(session, case) if n.at <= now]
    return out


def minutes_card_for(session: Session, case: Case, version: int, now: datetime, tz: ZoneInfo) -> dict:
    tasks, risks, nodes = _parts(session, case, tz)
    return minutes_card(MinutesView(title=case.title, version=version, when=fmt(now, tz), tasks=tasks, risks=risks,
                                    nodes=nodes, meeting_hours=meeting_hours(case),
                                    timeline=plan_timeline(session, case, tz)))


@router.action(PLAN_PUBLISH, versioned=PLAN_AS_SHOWN)
def publish(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
    case = _draft_case(ctx, value)
    if ctx.actor != case.lead_open_id:
        raise UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.NOT_LEAD))
    problems = publish_problems(ctx.session, case, ctx.now, ctx.tz)
    if problems:
        raise UserError(texts.PUBLISH_PROBLEMS.format(problems="；".join(problems[:8])),
                        card=plan_card_for(ctx.session, case, ctx.tz))
    state = repository.artifact_state(ctx.session, case, "plan")
    state.archived_at, state.version = ctx.now, 1
    ctx.session.add(PlanVersion(tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id, version=1,
                                snapshot=plan_snapshot(ctx.session, case), published_by=ctx.actor,
                                published_at=ctx.now))
    audit(ctx, case, "plan.publish", texts.PLAN_PUBLISHED)
    ctx.send(outbox.SendCard(minutes_card_for(ctx.session, case, 1, ctx.now, ctx.tz), pin=True))
    try:
        transition(ctx, case, Publish())
    except Blocked as exc:  # rolls back the publication and the minutes
        raise UserError(texts.PUBLISH_PROBLEMS.format(problems="、".join(gap_labels(exc.missing)))) from exc
    feishu_tasks.touch(ctx, case)  # every task becomes a 飞书任务 when the lead turned that on
    feishu_board.touch(ctx, case)  # … and a record of the board when the lead created one
    return CallbackAnswer(toast=texts.PLAN_PUBLISHED, card=plan_card_for(ctx.session, case, ctx.tz))


router.buttons(Step.PLAN, (texts.BTN_OPEN_PLAN, PLAN_OPEN, True))


@router.output_card(Step.PLAN)
def _output(ctx: Ctx, case: Case, when: datetime) -> dict:
    """《跨部门协作行动方案》: the minutes of its latest published version, or the draft."""
    version = plan_version(ctx.session, case)
    return (minutes_card_for(ctx.session, case, version, when, ctx.tz) if version
            else plan_card_for(ctx.session, case, ctx.tz))


# ---------------------------------------------------------------- Markdown export (/导出 4)
def export_plan(session: Session, case: Case, tz: ZoneInfo) -> str | None:
    if case.step < Step.PLAN:
        return None
    tasks, risks, nodes = _parts(session, case, tz)
    name = people.namer(session, case.tenant_key, [t.owner for t in tasks] + [r.owner for r in risks])
    version = plan_version(session, case)
    state = texts.EXP_PLAN_STATE["published" if version else "draft"]
    return "\n".join([
        f"# {texts.OUTPUTS[Step.PLAN]}", f"「{case.title}」#{case.seq}",
        texts.EXP_PLAN_VERSION.format(version=version or 0, state=state), "",
        texts.EXP_PLAN_TASKS,
        md_table([texts.COL_TASK, texts.COL_OWNER, texts.COL_START, texts.COL_DUE, texts.COL_STANDARD,
                  texts.COL_RESOURCES, texts.COL_DEPENDS],
                 [[f"#{t.seq} {t.content}", name(t.owner), t.start, t.due, t.standard, t.resources, t.depends]
                  for t in tasks]), "",
        texts.EXP_PLAN_NODES,
        md_table([texts.COL_NODE, texts.COL_NODE_AT, texts.COL_MEETING], [[n.name, n.at, n.meeting] for n in nodes]),
        "", texts.EXP_PLAN_RISKS,
        md_table([texts.COL_RISK, texts.COL_LIKELIHOOD, texts.COL_IMPACT, texts.COL_RESPONSE, texts.COL_OWNER],
                 [[r.risk, texts.LEVEL_LABELS[r.likelihood], texts.LEVEL_LABELS[r.impact], r.response, name(r.owner)]
                  for r in risks])])


router.exporter(Step.PLAN)(export_plan)
