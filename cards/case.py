"""The one live card per case: the six-step strip, where the case stands, what is missing,
who leads, and the buttons for the current step."""
from __future__ import annotations

from dataclasses import dataclass

from bot import texts
from bot.actions import ActionValue, to_name
from bot.domain import CaseStatus
from bot.workflow import Step
from cards import kit

COLOUR_BY_STATE = {"waiting": "orange", "done": "green", "lagging": "red", "info": "blue", "closed": "grey"}


@dataclass(frozen=True)
class CaseButton:
    label: str
    value: ActionValue
    primary: bool = False


@dataclass(frozen=True)
class CaseView:
    case_id: int
    seq: int
    title: str
    step: Step
    lead_open_id: str
    missing: tuple[str, ...]
    buttons: tuple[CaseButton, ...] = ()
    state: str = "waiting"       # colour key
    extra_markdown: str = ""     # a short step-specific summary (trusted markup)
    status: CaseStatus = CaseStatus.ACTIVE
    done: tuple[int, ...] | None = None  # an archived case's completed steps
    entered: str = ""            # 「✅ 《…》 已完成，进入第 N 步：…」: a step change is this card, not a line more


def case_card(view: CaseView) -> dict:
    closed = view.step >= Step.CLOSED
    done = set(view.done) if view.done is not None else set(range(Step.CONSENSUS, min(view.step, Step.CLOSED)))
    lines = ([f"**{view.entered}**"] if view.entered and not closed else []) + \
        [kit.step_strip(view.step if not closed else Step.CLOSED, done)]
    if closed:
        lines.append(texts.CASE_CARD_CANCELLED if view.status == CaseStatus.CANCELLED else texts.CASE_CARD_CLOSED)
    else:
        lines.append(texts.CASE_CARD_NOW.format(step=view.step, name=texts.STEP_NAMES[view.step],
                                                output=texts.OUTPUTS[view.step]))
        gaps = "、".join(kit.esc(m) for m in view.missing) if view.missing else texts.NOTHING_MISSING
        lines.append(f"**{texts.MISSING_PREFIX}**{gaps}")
    lines.append(texts.CASE_CARD_LEAD.format(lead=kit.at(view.lead_open_id)))
    elements = [kit.md("\n".join(lines))]
    if view.extra_markdown:
        elements.append(kit.md(view.extra_markdown))
    if view.buttons and not closed:
        elements.append(kit.columns([[kit.button(b.label, b.value, type="primary_filled" if b.primary else "default")]
                                     for b in view.buttons]))
    if not closed:
        elements.append(kit.md(texts.CASE_CARD_HOW_TO_END))
    subtitle = texts.CASE_CARD_SUBTITLE.format(seq=view.seq, step=min(view.step, Step.RETRO))
    return kit.card(texts.CASE_CARD_TITLE.format(title=view.title), subtitle=subtitle,
                    template=COLOUR_BY_STATE["closed" if closed else view.state], elements=elements,
                    summary=f"{view.title} · {texts.STEP_SHORT[view.step]}")


def pointer_card(name: str, when: str) -> dict:
    """A superseded card shrunk to one line that points to the current one (no buttons)."""
    return kit.card(texts.SUPERSEDED_TITLE.format(name=name), template=COLOUR_BY_STATE["closed"],
                    elements=[kit.md(texts.SUPERSEDED_LINE.format(name=name, when=when))])


def result_card(line: str) -> dict:
    """A finished private form: one line saying what became of it, no live buttons."""
    return kit.card(line, template=COLOUR_BY_STATE["done"], elements=[kit.md(texts.PRIVATE_ONLY_YOU)])


@dataclass(frozen=True)
class EndView:
    """The lead's private form to end a case: cancel or close early, a reason, one confirmed submit."""

    title: str
    submit: ActionValue
    typed_reason: str = ""
    typed_how: str | None = None
    reason_limit: int = 500


def end_card(view: EndView) -> dict:
    return kit.card(texts.END_TITLE.format(title=view.title), template="orange", elements=[
        kit.md(texts.END_INTRO),
        kit.form("case_end", [
            kit.select_static("how", kit.code_options(texts.END_HOW), placeholder=texts.PH_END_HOW, required=True,
                              initial=view.typed_how),
            kit.text_input("reason", texts.FIELD_END_REASON, placeholder=texts.PH_END_REASON, required=True,
                           default=view.typed_reason or None, multiline=True, max_length=view.reason_limit),
            kit.submit_button(texts.BTN_CONFIRM_END, to_name(view.submit), type="danger_filled",
                              confirm=(texts.END_CONFIRM_TITLE, texts.END_CONFIRM_TEXT.format(title=view.title)))])])
