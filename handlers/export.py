"""`/导出 [步骤号]` — each step's output as Markdown, sent as a text message to copy.

Each step's exporter is registered on a Router (`@router.exporter(step)`, fn(session, case, tz)
-> markdown | None, None = nothing to export yet): steps 1–3 below, steps 4–6 in their modules.
The command exports the group's active case, or its latest case when none is active; `/导出 3`
exports one step only.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, repository, texts
from bot.domain import SignoffStatus
from bot.envelope import MessageEvent
from bot.ids import number
from bot.models import ActionItem, Case, Member
from bot.repository import department_inputs, requirements_of
from bot.routing import Ctx, Router, UserError
from bot.workflow import Step
from handlers import people
from handlers.common import inert, md_table
from handlers.pick import case_by_seq

router = Router()

# A text message may be 150 KB (UTF-8, and a Chinese character is 3 bytes); keep well inside.
MAX_BYTES = 100_000


# ---------------------------------------------------------------- markdown helpers
def when(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "—"


def _header(case: Case, step: int) -> list[str]:
    return [f"# {texts.OUTPUTS[step]}", texts.EXP_CASE.format(title=case.title, seq=case.seq)]


# ---------------------------------------------------------------- steps 1–3
def export_consensus(session: Session, case: Case, tz: ZoneInfo) -> str | None:
    cv = repository.current_consensus(session, case)
    if cv is None:
        return None
    depts = repository.departments(session, case)
    signs = repository.signoffs(session, case, artifact="consensus", version=cv.version)
    agreed = bool(depts) and all(d.id in signs and signs[d.id].status == SignoffStatus.SIGNED for d in depts)
    name = people.namer(session, case.tenant_key, [d.head_open_id for d in depts])
    rows = []
    for d in depts:
        s = signs.get(d.id)
        status = texts.S1_STATUS[s.status if s else "pending"][0]
        rows.append([d.name, name(d.head_open_id), status, when(s.at if s else None, tz),
                     (s.reason or "") if s else ""])
    goal_date = cv.goal_date.isoformat() if cv.goal_date else "—"
    return "\n".join(_header(case, 1) + [
        texts.EXP_CONS_VERSION.format(version=cv.version, agreed=texts.EXP_AGREED if agreed else ""), "",
        texts.EXP_PROBLEM, texts.EXP_BACKGROUND.format(text=cv.background),
        texts.EXP_CURRENT.format(text=cv.current_state), texts.EXP_IMPACT.format(text=cv.impact), "",
        texts.EXP_GOAL, texts.EXP_GOAL_LINE.format(goal=cv.goal, date=goal_date), "",
        texts.EXP_OUTCOME, cv.expected_outcome, "",
        texts.EXP_DEPTS, md_table([texts.S1_COL_DEPT, texts.S1_COL_HEAD, texts.S1_COL_STATUS, texts.S1_COL_WHEN,
                                   texts.S1_COL_REASON], rows)])


def export_team(session: Session, case: Case, tz: ZoneInfo) -> str | None:
    if case.step < Step.TEAM:
        return None
    depts = repository.departments(session, case)
    names = {d.id: d.name for d in depts}
    state = repository.artifact_state(session, case, "team")
    members = list(session.scalars(select(Member).where(
        Member.case_id == case.id, Member.tenant_key == case.tenant_key, Member.chat_id == case.chat_id)
        .order_by(Member.id)))
    items = list(session.scalars(select(ActionItem).where(
        ActionItem.case_id == case.id, ActionItem.tenant_key == case.tenant_key,
        ActionItem.chat_id == case.chat_id).order_by(ActionItem.id)))
    name = people.namer(session, case.tenant_key, [case.lead_open_id, *(m.open_id for m in members),
                                                   *(i.owner_open_id for i in items),
                                                   *(o for d in depts for o in (d.head_open_id, d.contact_open_id))])
    return "\n".join(_header(case, 2) + [
        texts.EXP_LEAD.format(lead=name(case.lead_open_id)),
        texts.EXP_STATE_CONFIRMED.format(at=when(state.archived_at, tz)) if state.archived_at
        else texts.EXP_STATE_DRAFT, "",
        texts.EXP_DEPTS_TEAM, md_table([texts.S2_COL_DEPT, texts.S2_COL_KIND, texts.S2_COL_HEAD, texts.S2_COL_CONTACT],
                                       [[d.name, texts.S2_KINDS.get(d.kind, ("",))[0], name(d.head_open_id),
                                         name(d.contact_open_id)] for d in depts]), "",
        texts.EXP_MEMBERS, md_table([texts.S2_COL_MEMBER, texts.S2_COL_DEPT, texts.S2_COL_ROLE, texts.S2_COL_DUTY],
                                    [[name(m.open_id), names.get(m.department_id or 0, ""), m.role, m.duty]
                                     for m in members]), "",
        texts.EXP_ITEMS, md_table([texts.S2_COL_ITEM, texts.S2_COL_OWNER, texts.S2_COL_DUE],
                                  [[i.content, name(i.owner_open_id), i.due_date.isoformat() if i.due_date else ""]
                                   for i in items])])


def export_requirements(session: Session, case: Case, tz: ZoneInfo) -> str | None:

    if case.step < Step.REQUIREMENTS:
        return None
    depts = repository.departments(session, case)
    names = {d.id: d.name for d in depts}
    state = repository.artifact_state(session, case, "requirements")
    given = department_inputs(session, case)
    confirmed = repository.signoffs(session, case, artifact="requirements", version=state.version)

    def conflict(r) -> str:
        if not r.is_conflict:
            return ""
        state_word = (texts.S3_CONFLICT_DONE if r.resolved_at else texts.S3_CONFLICT_OPEN)[0]
        return f"{state_word} · " + texts.S3_CONFLICT_WITH.format(
            depts="、".join(names.get(int(i), "") for i in r.conflict_department_ids))

    return "\n".join(_header(case, 3) + [
        texts.EXP_CONS_VERSION.format(version=state.version, agreed=""),
        texts.EXP_ARCHIVED.format(at=when(state.archived_at, tz)) if state.archived_at else texts.EXP_NOT_ARCHIVED,
        "", texts.EXP_INPUTS,
        md_table([texts.S3_COL_DEPT, texts.S3_COL_RESOURCES, texts.S3_COL_CONSTRAINTS, texts.S3_COL_DEMANDS],
                 [[d.name, *((given[d.id].resources, given[d.id].constraints, given[d.id].demands)
                             if d.id in given else ("", "", ""))] for d in depts]), "",
        texts.EXP_REQS,
        md_table([texts.S3_COL_DEPT, texts.S3_COL_DEMAND, texts.S3_COL_SOLUTION, texts.S3_COL_PRIORITY,
                  texts.S3_COL_CONFLICT, texts.S3_COL_ADJUST],
                 [[names.get(r.department_id, ""), r.demand, r.solution, texts.LEVEL_LABELS[r.priority], conflict(r),
                   r.adjustment] for r in requirements_of(session, case)]), "",
        texts.EXP_CONFIRMS,
        md_table([texts.S3_COL_DEPT, texts.S3_COL_STATE, texts.S3_COL_WHEN],
                 [[d.name, texts.S3_CONFIRM_STATE["done" if d.id in confirmed else "pending"][0],
                   when(confirmed[d.id].at if d.id in confirmed else None, tz)] for d in depts])])


router.exporter(Step.CONSENSUS)(export_consensus)
router.exporter(Step.TEAM)(export_team)
router.exporter(Step.REQUIREMENTS)(export_requirements)


def _cut(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def pack(parts: list[str], limit: int = MAX_BYTES) -> list[str]:
    """Join the outputs into as few text messages as fit Feishu's size limit (few messages in a
    busy group); an output larger than a message on its own is cut at the limit."""
    messages: list[str] = []
    for part in parts:
        part = _cut(part, limit)
        joined = f"{messages[-1]}{SEPARATOR}{part}" if messages else part
        if messages and len(joined.encode("utf-8")) <= limit:
            messages[-1] = joined
        else:
            messages.append(part)
    return messages


SEPARATOR = "\n\n---\n\n"


# ---------------------------------------------------------------- the command
def _case(ctx: Ctx, token: str | None) -> Case:
    """The case `#N` names, else the active case, else the group's latest."""
    if token is not None:
        picked = case_by_seq(ctx, token)
        if picked is None:
            raise UserError(texts.EXP_USAGE)
        return picked
    case = repository.active_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
    if case is None:
        cases = repository.cases_of_chat(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id)
        case = cases[-1] if cases else None
    if case is None:
        raise UserError(texts.NO_ACTIVE_CASE)
    return case


@router.command(texts.CMD_EXPORT)
def export(ctx: Ctx, _event: MessageEvent, args: str) -> None:
    words = args.split()
    token = next((w for w in words if w[:1] in ("#", "＃")), None)   # 「/导出 #1 3」 or 「/导出 3 #1」
    rest = [w for w in words if w is not token]
    arg = rest[0] if len(rest) == 1 else ""
    step_no = number(arg, top=6) if arg else None
    if len(rest) > 1 or (arg and not step_no):
        raise UserError(texts.EXP_USAGE)
    case = _case(ctx, token)
    exporters = ctx.registry.exporters if ctx.registry is not None else {}
    steps = [Step(step_no)] if step_no else sorted(exporters)
    parts = []
    for step in steps:
        fn = exporters.get(step)
        if fn is None:
            raise UserError(texts.EXP_NO_EXPORTER.format(step=step))
        body = fn(ctx.session, case, ctx.tz)
        if body is None:
            if arg:
                raise UserError(texts.EXP_NOT_YET.format(step=step, output=texts.OUTPUTS[step]))
            continue
        head = texts.EXP_HEADER.format(title=case.title, output=texts.OUTPUTS[step])
        parts.append(inert(f"{head}\n\n{body}"))
    for message in pack(parts):  # one message for the whole export unless it is too large
        ctx.send(outbox.SendText(message))
    sent = len(parts)
    if not sent:
        raise UserError(texts.EXP_NOTHING.format(title=case.title))
