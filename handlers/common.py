"""What every step's handlers share: the one way a case changes step (`transition`), loading the
case a card points at, the step and permission checks, the audit trail, and reading forms."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm.attributes import flag_modified

from bot import outbox, repository, texts, workflow
from bot.actions import ActionError, ActionValue, from_name
from bot.domain import CaseStatus
from bot.envelope import CardAction
from bot.ids import is_open_id, text_mention
from bot.models import Case, Department, PostedCard
from bot.routing import CallbackAnswer, CaseArchived, Ctx, Router, UserError, Versioned
from bot.workflow import Blocked, Cancel, Check, CloseEarly, Command, Effect, Facts, Open, Outcome, SendBack, Step
from handlers import case_card, people
from handlers.case_card import gap_labels

__all__ = ["open_case", "transition", "try_advance", "gap_labels", "load_case", "load_active_case", "require_step",
           "open_form", "answer_hook"]

_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
_WHEN = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?\s*(?:([+-])(\d{2}):?(\d{2}))?\s*$")

_AUDIT_ACTIONS = {SendBack: "step.back", Cancel: "case.cancel", CloseEarly: "case.close_early"}


def open_case(ctx: Ctx, title: str) -> Case:
    """A new case of the group, in the step the state machine opens it in, led by its opener."""
    first = workflow.apply(None, Open(), Facts(), actor_is_lead=True).step
    case = Case(tenant_key=ctx.tenant_key, chat_id=ctx.chat_id,
                seq=repository.next_seq(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id),
                title=title, step=first, status=CaseStatus.ACTIVE, opener_open_id=ctx.actor, lead_open_id=ctx.actor,
                created_at=ctx.now, updated_at=ctx.now, step_entered_at=ctx.now, timezone=ctx.tz.key)
    ctx.session.add(case)
    ctx.session.flush()
    repository.enter_step(ctx.session, case, first, now=ctx.now)
    audit(ctx, case, "case.open", case.title)
    return case


def transition(ctx: Ctx, case: Case, command: Command, *, reason: str | None = None,
               say: Callable[[Outcome], outbox.Op] | None = None,
               actor_is_lead: bool | None = None) -> Outcome | None:
    """Hand `command` to the state machine; record the step change and carry out its effects.
    `say` words the change for the group; it is sent before what entering the step brings.

    A `Check` whose guard does not hold yet returns None; any other refusal raises the
    workflow's Blocked or NotAllowed for the caller to word for the person who clicked.
    `actor_is_lead` overrides who counts as the lead (the opener may end an unsigned case)."""
    ctx.session.flush()
    before = Step(case.step)
    try:
        outcome = workflow.apply(before, command, repository.facts(ctx.session, case),
                                 actor_is_lead=ctx.actor == case.lead_open_id if actor_is_lead is None
                                 else actor_is_lead)
    except Blocked:
        if isinstance(command, Check):
            return None
        raise
    given = command.reason.strip() if isinstance(command, (SendBack, Cancel, CloseEarly)) else None
    repository.enter_step(ctx.session, case, outcome.step, now=ctx.now, reason=given or reason)
    if isinstance(command, Cancel):
        case.status = CaseStatus.CANCELLED
    detail = f"{int(before)} → {int(outcome.step)}" + (f"：{given}" if given else "")
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action=_AUDIT_ACTIONS.get(type(command), "step.enter"), detail=detail, now=ctx.now)
    if say is not None:
        ctx.send(say(outcome))
    for effect in outcome.effects:
        _run(ctx, case, effect, before)
    return outcome


def _run(ctx: Ctx, case: Case, effect: Effect, before: Step) -> None:
    if effect is Effect.ANNOUNCE_STEP:
        case_card.announce_step(ctx, case, before)
    elif effect is Effect.POST_CASE_CARD:
        case_card.post(ctx, case)
    elif effect is Effect.REFRESH_CASE_CARD:
        case_card.refresh(ctx, case)
    elif effect is Effect.STOP_REMINDERS:
        outbox.cancel_case_reminders(ctx.session, tenant_key=case.tenant_key, chat_id=case.chat_id, case_id=case.id)
    else:  # effects owned by a step module, registered on its Router
        assert ctx.registry is not None, "a transition needs the composed Router"
        ctx.registry.effects[effect](ctx, case, before)


def artifact_as_shown(step: Step, artifact: str, draw: Callable[[Ctx, Case], dict]) -> Versioned:
    """The stale-click check of a step's table whose version is its ArtifactState's (the table is
    redrawn for a click on an older one)."""
    return Versioned(step=step, current=lambda s, case, _v: repository.artifact_state(s, case, artifact).version,
                     card=lambda ctx, case, _v: draw(ctx, case))


def output_buttons(router: Router, open_name: str, view_name: str, draw: Callable[[Ctx, Case], dict],
                   view: str) -> None:
    """The two buttons every step's table has: `open_name` posts the table to the group (as the
    case's `view`), `view_name` (a form's 取消) brings back the card the form came from."""

    @router.action(open_name)
    def post_table(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
        case = load_active_case(ctx, value.case_id)
        ctx.send(outbox.SendCard(draw(ctx, case), view=view, case_id=case.id))
        return CallbackAnswer(toast=texts.S_CARD_SENT, toast_type="info")

    @router.action(view_name)
    def show_table(ctx: Ctx, _event: CardAction, value: ActionValue) -> CallbackAnswer:
        case = load_active_case(ctx, value.case_id)
        return CallbackAnswer(toast=texts.S_FORM_CANCELLED, toast_type="info", card=draw(ctx, case))


def try_advance(ctx: Ctx, case: Case) -> bool:
    """Move on if the step's guard now holds (the new step is announced). False if not yet."""
    return transition(ctx, case, Check()) is not None


# ---------------------------------------------------------------- private forms (cards.md 9)
def _posted(ctx: Ctx, event: CardAction) -> PostedCard | None:
    """The recorded card this click came from (a shared card of a case, or one person's form)."""
    card = repository.posted_card(ctx.session, tenant_key=ctx.tenant_key, message_id=event.message_id)
    return card if card is not None and card.chat_id == ctx.chat_id else None


def _private_card(ctx: Ctx, event: CardAction) -> PostedCard | None:
    """The private card this click came from (one person's form), if it is one."""
    posted = _posted(ctx, event)
    return posted if posted is not None and posted.private_for else None


def from_private_form(ctx: Ctx, event: CardAction) -> bool:
    """The click came from one person's private form (not from a card the group shares)."""
    return _private_card(ctx, event) is not None


def send_private_form(ctx: Ctx, form: dict, case: Case | None) -> None:
    """Show `form` to the person acting only (a command's answer, or a click's via open_form)."""
    ctx.send(outbox.SendPrivate(open_id=ctx.actor, card=form, case_id=case.id if case else None,
                                view=case_card.private_view(case)))


def open_form(ctx: Ctx, event: CardAction, form: dict, case: Case | None) -> CallbackAnswer:
    """Show `form` to the person who clicked only. From a shared card: a private card in the
    group (仅对你可见) and a toast, the shared card untouched; from their own private form (a
    mode switch, the next task): the form is redrawn in place."""
    if _private_card(ctx, event) is not None:
        return CallbackAnswer(card=form)
    send_private_form(ctx, form, case)
    return CallbackAnswer(toast=texts.FORM_OPENED_PRIVATELY, toast_type="info")


def _has_form(card: dict) -> bool:
    stack: list[object] = [card.get("body", {})]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("tag") == "form":
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def answer_hook(ctx: Ctx, event: CardAction, answer: CallbackAnswer) -> CallbackAnswer:
    """Every card action's answer, last: a private form that is done becomes one line for its
    person (the shared view the handler drew goes to the group's cards by sync, not into the
    private card); a shared card the answer redraws is noted as showing that; and, when the click
    changed something or posts a shared card, the case's posted cards are brought up to date."""
    try:
        case_id = (ActionValue.parse(event.value) if isinstance(event.value, dict) and event.value
                   else from_name(event.name)).case_id
    except ActionError:
        case_id = None
    posted = _posted(ctx, event)   # the one read this adds to a click
    if posted is not None and posted.private_for:
        if answer.card is not None and not _has_form(answer.card):
            posted.superseded = True
            answer = CallbackAnswer(toast=answer.toast, toast_type=answer.toast_type,
                                    card=case_card.result_line(answer.toast or texts.PRIVATE_FORM_DONE))
        case_id = case_id or posted.case_id
    elif posted is not None and answer.card is not None:
        case_card.answered(ctx, posted, answer.card)
    if case_id is not None and (ctx.wrote() or _posts_shared_card(ctx)):
        case_card.request_sync(ctx, case_id)
    return answer


def _posts_shared_card(ctx: Ctx) -> bool:
    """The click sends a card the group keeps (a new 《进度跟踪表》…): the older ones shrink to a pointer."""
    return any(isinstance(op, outbox.SendCard) and op.view for op in ctx.ops)


# ---------------------------------------------------------------- the case a card points at
def load_case(ctx: Ctx, case_id: int | None) -> Case:
    """The case, in THIS tenant and chat only (S7/S8), whatever its status."""
    case = repository.get_case(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, case_id=case_id or 0)
    if case is None:
        raise UserError(texts.CASE_NOT_FOUND)
    return case


def load_active_case(ctx: Ctx, case_id: int | None) -> Case:
    """The case, refused when it is archived (read-only)."""
    case = load_case(ctx, case_id)
    if case.status != CaseStatus.ACTIVE:
        raise CaseArchived(texts.CASE_CLOSED)
    return case


def require_step(case: Case, step: Step, what: str = "") -> None:
    """Refuse an action that belongs to another step, naming where the case is."""
    if case.status == CaseStatus.CLOSED or case.step >= Step.CLOSED:
        raise CaseArchived(texts.CASE_CLOSED)
    if case.step != step:
        raise UserError(texts.S_NOT_IN_STEP.format(current=int(case.step), name=texts.STEP_NAMES[case.step],
                                                   what=what or texts.OUTPUTS[step], step=int(step)))


def touch(ctx: Ctx, case: Case) -> None:
    """Bump the case's version: concurrent writers to one case conflict and are retried."""
    case.updated_at = ctx.now
    flag_modified(case, "updated_at")  # an UPDATE (and a version bump) even if `now` did not move
    ctx.session.flush()


def audit(ctx: Ctx, case: Case, action: str, detail: str) -> None:
    repository.audit(ctx.session, case, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, actor=ctx.actor,
                     action=action, detail=detail, now=ctx.now)


def not_lead(ctx: Ctx, case: Case) -> UserError:
    """The refusal of a lead-only action: 「只有协作组长陈静可以执行此操作。」."""
    return UserError(people.only_lead(ctx.session, ctx.tenant_key, case.lead_open_id, texts.S_ONLY_LEAD))


def is_lead_or_head(ctx: Ctx, case: Case, depts: list[Department]) -> bool:
    return ctx.actor == case.lead_open_id or any(d.head_open_id == ctx.actor for d in depts)


def require_lead_or_head(ctx: Ctx, case: Case, depts: list[Department]) -> None:
    if not is_lead_or_head(ctx, case, depts):
        lead = people.who(ctx.session, ctx.tenant_key, case.lead_open_id, texts.S1_LEAD_WORD)
        who = "、".join([lead, heads_of(ctx, depts)] if depts else [lead])
        raise UserError(texts.S_ONLY_LEAD_OR_HEADS.format(who=who))


def heads_of(ctx: Ctx, depts: list[Department]) -> str:
    return "、".join(people.who(ctx.session, ctx.tenant_key, d.head_open_id, texts.S1_HEAD_OF.format(dept=d.name))
                    for d in depts)


def signed_as(ctx: Ctx, depts: list[Department]) -> str:
    """For a success toast: 「技术部 李娜」 (the departments the actor acted for, then their name)."""
    return people.with_name(ctx.session, ctx.tenant_key, ctx.actor, "、".join(d.name for d in depts))


# ---------------------------------------------------------------- text and markup in messages
def inert(user_text: str) -> str:
    """User text for a *text* message: no `<at user_id=all>` or other tags can survive."""
    return str(user_text).replace("<", "＜").replace(">", "＞")


mention = text_mention   # handlers' name for it


# ---------------------------------------------------------------- times and forms
def local(ctx: Ctx, when: datetime | None) -> datetime | None:
    return when.astimezone(ctx.tz) if when else None


def parse_when(raw: object, tz: ZoneInfo) -> datetime | None:
    """'2026-12-11 12:00 +0800' (picker_datetime) or '2026-12-10 +0800' (date_picker, → 18:00)
    → aware UTC datetime; None when empty. Raises ValueError for anything else or impossible dates."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise ValueError(raw)
    m = _WHEN.match(raw)
    if not m:
        raise ValueError(raw)
    y, mo, d, hh, mm, sign, oh, om = m.groups()
    hour, minute = (int(hh), int(mm)) if hh is not None else (18, 0)
    if sign:
        offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
        zone = timezone(offset)
    else:
        zone = tz
    when = datetime(int(y), int(mo), int(d), hour, minute, tzinfo=zone)  # ValueError on 2月30日
    return when.astimezone(ZoneInfo("UTC"))


def fmt(when: datetime | None, tz: ZoneInfo, pattern: str = texts.DATETIME_FMT) -> str:
    return when.astimezone(tz).strftime(pattern) if when else "—"


def picker_value(when: datetime | None, tz: ZoneInfo) -> str | None:
    """A stored time as a picker's initial value ('yyyy-MM-dd HH:mm' in the group's zone)."""
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else None


def parse_day(raw: object, field: str, *, today: date, keep: date | None = None) -> tuple[date | None, str]:
    """A date picker value ("2026-12-10 +0800") → date, or an error message."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None, texts.S_FIELD_REQUIRED.format(field=field)
    m = _DATE.match(text)
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except ValueError:
        day = None
    if day is None:
        return None, texts.S_BAD_DATE.format(field=field)
    if day < today and day != keep:
        return None, texts.S_DATE_PAST.format(field=field, date=day.isoformat())
    return day, ""


def form_text(form: dict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def typed_back(form: dict, keys: tuple[str, ...]) -> dict[str, str]:
    """What was typed, to show a refused form again: picked times in the picker's own format, and a
    person field that holds no person left empty (a person picker can show only a person; the
    error names the field)."""
    out = {}
    for k in keys:
        v = form.get(k)
        out[k] = v.strip() if isinstance(v, str) else ("" if v is None else str(v))
    for k in ("start", "due", "at"):
        if out.get(k):
            out[k] = out[k][:16]
    if out.get("owner") and not is_open_id(out["owner"]):
        out["owner"] = ""
    return out


def too_long(value: str, field: str, limit: int) -> str | None:
    """Input limits are refused, never cut: 「「背景」太长了（最多 500 字）…」 naming the field and
    its limit when `value` is longer, else None. Every form checks its texts through this."""
    name = field.split("（", 1)[0]  # 「关闭说明」, not 「关闭说明（可选）」
    return texts.S_FIELD_TOO_LONG.format(field=name, max=limit) if len(value) > limit else None


def first_too_long(values: dict[str, str], limits: dict[str, tuple[str, int]]) -> str | None:
    """The refusal for the first of `values` over its limit ({key: (field name, limit)}), else None."""
    for key, (field, limit) in limits.items():
        if problem := too_long(values.get(key) or "", field, limit):
            return problem
    return None


def not_member(ctx: Ctx, open_id: str, field: str) -> str | None:
    """Person fields take members of this group only: the refusal naming the field when the
    group's member list (learned when the bot joins and on `/问题`) is known and lacks `open_id`;
    None when they are in it, or no list is known yet (then anyone picked is accepted)."""
    if not open_id:
        return None
    member = repository.is_member(ctx.session, tenant_key=ctx.tenant_key, chat_id=ctx.chat_id, open_id=open_id)
    return texts.S_NOT_CHAT_MEMBER.format(field=field) if member is False else None


def form_person(form: dict, name: str) -> str:
    value = form.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------- Markdown for /导出
def cell(value: object) -> str:
    """One Markdown table cell: no pipes or line breaks can break the row."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", " / ").strip() or "—"


def md_table(head: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
