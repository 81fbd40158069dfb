"""Tiny pure builders for Feishu Card JSON 2.0 dicts.

No I/O, no settings, no clock: every function maps its arguments to a dict (or a string) so cards
are deterministic and snapshot-testable. Structural rules are checked by cards.rules.validate_card,
not here; the kit only refuses inputs that would be unsafe (malformed mention ids).
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.actions import ActionValue
from bot.ids import OPEN_ID
from bot.texts import cards as T

Element = dict[str, Any]

# open_id form; anything else inside <at id=...> could smuggle markup (e.g. "all" or "x></at><font").
_OPEN_ID = OPEN_ID


# --------------------------------------------------------------------------- text


def _plain(text: str) -> dict[str, str]:
    # plain_text never interprets markup, so it is the default for anything a user typed.
    return {"tag": "plain_text", "content": text}


def md(text: str) -> Element:
    """A markdown element. `text` is trusted markup: pass user text through esc() first."""
    return {"tag": "markdown", "content": text}


# Characters with a meaning in Feishu card markdown (emphasis, links, tags, headings, code,
# tables, emoji `:DONE:`, quotes). Feishu docs advise HTML entities to show them literally.
_ESCAPE_CHARS = "&<>*_~`[]()#|\\!:$"
_ESCAPES = {ord(c): f"&#{ord(c)};" for c in _ESCAPE_CHARS}
# Block syntax only bites at the start of a line: lists ("- ", "+ ", "1. "), setext/hr ("===", "---").
_LINE_START = re.compile(r"^(\s*)([-+=])", re.MULTILINE)
_ORDERED = re.compile(r"^(\s*\d+)\.", re.MULTILINE)


def esc(user_text: str) -> str:
    """Make user text inert in card markdown: no mentions, fonts, links, emphasis or headings."""
    out = str(user_text).translate(_ESCAPES)  # '&' first in the table, so entities can't be forged
    out = _LINE_START.sub(lambda m: f"{m.group(1)}&#{ord(m.group(2))};", out)
    return _ORDERED.sub(lambda m: f"{m.group(1)}&#46;", out)


def at(open_id: str) -> str:
    """`<at id=ou_x></at>`; refuses anything that is not an open_id (no @all, no injection)."""
    if not isinstance(open_id, str) or not _OPEN_ID.match(open_id):
        raise ValueError(f"not an open_id: {open_id!r}")
    return f"<at id={open_id}></at>"


def hr() -> Element:
    return {"tag": "hr"}


# --------------------------------------------------------------------------- card


def card(
    title: str,
    *,
    template: str = "blue",
    subtitle: str | None = None,
    tags: Sequence[tuple[str, str]] | None = None,
    elements: Iterable[Element],
    summary: str | None = None,
    width_mode: str = "fill",
) -> dict[str, Any]:
    """A whole Card JSON 2.0 message. `tags` = [(text, text_tag colour)], at most 3 shown."""
    # update_multi must be true in 2.0 (shared card), and we PATCH cards in place.
    config: dict[str, Any] = {"update_multi": True}
    if width_mode != "default":
        config["width_mode"] = width_mode
    if summary is not None:
        config["summary"] = {"content": summary}  # chat-list preview instead of "[卡片]"
    header: dict[str, Any] = {"title": _plain(title), "template": template}
    if subtitle is not None:
        header["subtitle"] = _plain(subtitle)
    if tags:
        header["text_tag_list"] = [
            {"tag": "text_tag", "text": _plain(text), "color": color} for text, color in tags
        ]
    return {"schema": "2.0", "config": config, "header": header,
            "body": {"elements": list(elements)}}


# --------------------------------------------------------------------------- buttons & forms


def _value(value: ActionValue | dict[str, Any]) -> dict[str, Any]:
    return value.dump() if isinstance(value, ActionValue) else dict(value)


def button(
    text: str,
    value: ActionValue | dict[str, Any],
    *,
    type: str = "default",  # noqa: A002 - mirrors the Feishu property name
    confirm: tuple[str, str] | None = None,
    disabled: bool = False,
    disabled_tips: str | None = None,
    name: str | None = None,
    width: str | None = None,
) -> Element:
    """A callback button; `value` is echoed back verbatim as event.action.value.
    `confirm` = (title, text) of a confirmation dialog."""
    out: Element = {"tag": "button", "text": _plain(text), "type": type,
                    "behaviors": [{"type": "callback", "value": _value(value)}]}
    if confirm is not None:
        out["confirm"] = {"title": _plain(confirm[0]), "text": _plain(confirm[1])}
    if disabled:
        out["disabled"] = True
    if disabled_tips is not None:
        out["disabled_tips"] = _plain(disabled_tips)
    if name is not None:
        out["name"] = name
    if width is not None:
        out["width"] = width
    return out


def submit_button(text: str, name: str, *, type: str = "primary_filled",  # noqa: A002
                  confirm: tuple[str, str] | None = None) -> Element:
    """The form's submit button; the callback carries action.name == name and form_value.
    `confirm` = (title, text) of a confirmation dialog shown before the form is submitted."""
    out: Element = {"tag": "button", "text": _plain(text), "type": type, "name": name,
                    "form_action_type": "submit"}
    if confirm is not None:
        out["confirm"] = {"title": _plain(confirm[0]), "text": _plain(confirm[1])}
    return out


def form(name: str, elements: Iterable[Element]) -> Element:
    return {"tag": "form", "name": name, "elements": list(elements)}


def _field(tag: str, name: str, placeholder: str | None, required: bool) -> Element:
    out: Element = {"tag": tag, "name": name}
    if placeholder is not None:
        out["placeholder"] = _plain(placeholder)
    if required:
        out["required"] = True  # only emitted when true: `required` outside a form is an error
    return out


def text_input(
    name: str,
    label: str,
    *,
    placeholder: str | None = None,
    required: bool = False,
    multiline: bool = False,
    default: str | None = None,
    max_length: int | None = None,
) -> Element:
    out = _field("input", name, placeholder, required)
    out.update({"label": _plain(label), "label_position": "top", "width": "fill"})
    if multiline:
        out.update({"input_type": "multiline_text", "rows": 3, "auto_resize": True, "max_rows": 8})
    if default is not None:
        out["default_value"] = default
    if max_length is not None:
        out["max_length"] = max_length
    return out


def select_static(
    name: str,
    options: Iterable[tuple[str, str]],
    *,
    placeholder: str,
    required: bool = False,
    initial: str | None = None,
) -> Element:
    out = _field("select_static", name, placeholder, required)
    out["options"] = [{"text": _plain(text), "value": value} for text, value in options]
    if initial is not None:
        out["initial_option"] = initial
    return out


def code_options(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """select_static options of a domain code: the label shown, the code sent ({code: label})."""
    return [(label, str(code)) for code, label in labels.items()]


def _check_open_ids(ids: Iterable[str]) -> list[str]:
    ids = list(ids)
    for oid in ids:
        at(oid)  # raises on malformed ids
    return ids


def select_person(
    name: str, *, placeholder: str, required: bool = False, initial: str | None = None
) -> Element:
    # No `options`: Feishu then offers every member of the current chat.
    out = _field("select_person", name, placeholder, required)
    if initial is not None:
        out["initial_option"] = _check_open_ids([initial])[0]
    return out


def multi_select_person(
    name: str,
    *,
    placeholder: str,
    required: bool = False,
    initial: Iterable[str] | None = None,
) -> Element:
    out = _field("multi_select_person", name, placeholder, required)
    if initial:
        out["selected_values"] = _check_open_ids(initial)
    return out


def _date_str(value: _dt.date | str) -> str:
    if isinstance(value, _dt.datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, _dt.date) else value


def _datetime_str(value: _dt.datetime | str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, _dt.datetime) else value


def date_picker(
    name: str,
    *,
    placeholder: str,
    required: bool = False,
    initial: _dt.date | str | None = None,
) -> Element:
    out = _field("date_picker", name, placeholder, required)
    if initial is not None:
        out["initial_date"] = _date_str(initial)  # "yyyy-MM-dd"
    return out


def datetime_picker(
    name: str,
    *,
    placeholder: str,
    required: bool = False,
    initial: _dt.datetime | str | None = None,
) -> Element:
    out = _field("picker_datetime", name, placeholder, required)
    if initial is not None:
        out["initial_datetime"] = _datetime_str(initial)  # "yyyy-MM-dd HH:mm"
    return out


def checker(name: str, text: str, *, checked: bool = False) -> Element:
    """A tick box; inside a form its state arrives in form_value[name] (no behaviors: no own callback)."""
    return {"tag": "checker", "name": name, "checked": checked, "text": _plain(text)}


# --------------------------------------------------------------------------- layout & data


def columns(cols: Sequence[Sequence[Element]], weights: Sequence[int] | None = None) -> Element:
    """Side-by-side columns; weights are 1..5 (Feishu's range), default equal."""
    weights = list(weights) if weights is not None else [1] * len(cols)
    if len(weights) != len(cols):
        raise ValueError("one weight per column")
    return {"tag": "column_set", "flex_mode": "none", "columns": [
        {"tag": "column", "width": "weighted", "weight": w, "vertical_align": "top",
         "elements": list(els)}
        for els, w in zip(cols, weights)
    ]}


def table(
    columns: Sequence[tuple[str, str, str]],
    rows: Iterable[dict[str, Any]],
    *,
    page_size: int = 10,
) -> Element:
    """A table (body root only). Cells: text str, number, options = tag_option(...),
    persons = open_id or [open_ids], date = epoch milliseconds."""
    return {
        "tag": "table",
        "page_size": page_size,
        "row_height": "low",
        "header_style": {"background_style": "grey", "bold": True, "text_align": "left"},
        "columns": [{"name": n, "display_name": d, "data_type": t} for n, d, t in columns],
        "rows": [dict(r) for r in rows],
    }


def tag_option(text: str, color: str) -> list[dict[str, str]]:
    """Cell value for an `options` column: one coloured status tag."""
    return [{"text": text, "color": color}]


def collapsible(title: str, elements: Iterable[Element], expanded: bool = False) -> Element:
    return {
        "tag": "collapsible_panel",
        "expanded": expanded,
        "header": {
            "title": _plain(title),
            # a chevron on the right so people see the block folds
            "icon": {"tag": "standard_icon", "token": "down-small-ccm_outlined", "size": "16px 16px"},
            "icon_position": "right",
            "icon_expanded_angle": -180,
        },
        "elements": list(elements),
    }


def chart_bar(
    title: str,
    data: Sequence[dict[str, Any]],
    x_field: str,
    y_field: str,
    series_field: str | None = None,
) -> Element:
    """Card `chart` with a VChart bar spec; with series_field the bars are grouped per series."""
    spec: dict[str, Any] = {
        "type": "bar",
        "title": {"text": title},
        "data": {"values": [dict(d) for d in data]},
        "xField": [x_field, series_field] if series_field else x_field,
        "yField": y_field,
        "label": {"visible": True},
    }
    if series_field:
        spec["seriesField"] = series_field
        spec["legends"] = {"visible": True, "orient": "bottom"}
    return {"tag": "chart", "aspect_ratio": "16:9", "chart_spec": spec}


# Charts with one row per task grow with the rows instead of squeezing them (Feishu: 1–999 px).
ROW_PX, CHART_BASE_PX, CHART_MAX_PX = 32, 96, 999


def _rows_height(rows: int) -> str:
    return f"{min(CHART_MAX_PX, CHART_BASE_PX + ROW_PX * max(rows, 1))}px"


def chart_hbar(title: str, data: Sequence[dict[str, Any]], label_field: str, value_field: str, *,
               value_max: float | None = None) -> Element:
    """Horizontal bars, one row per label: long labels (task names) stay readable on a phone."""
    value_axis: dict[str, Any] = {"orient": "bottom", "type": "linear", "min": 0}
    if value_max is not None:
        value_axis["max"] = value_max
    spec: dict[str, Any] = {
        "type": "bar",
        "direction": "horizontal",
        "title": {"text": title},
        "data": {"values": [dict(d) for d in data]},
        "xField": value_field,
        "yField": label_field,
        "axes": [value_axis, {"orient": "left", "type": "band"}],
        "label": {"visible": True},
    }
    return {"tag": "chart", "height": _rows_height(len({d[label_field] for d in data})), "chart_spec": spec}


@dataclass(frozen=True)
class Span:
    """One bar of a timeline: `label`'s row from `start` to `end` (days from the timeline's origin)."""
    label: str
    start: float
    end: float
    series: str = ""    # e.g. 计划 / 实际: bars of one row side by side, with a legend


@dataclass(frozen=True)
class Timeline:
    title: str
    axis: str                                   # what the numbers mean: 「天（0 = 12-08 09:00）」
    spans: tuple[Span, ...]
    marks: tuple[tuple[str, float], ...] = ()   # (name, day) vertical lines, e.g. key nodes


def chart_timeline(t: Timeline) -> Element:
    """A Gantt-style timeline: VChart `rangeColumn` laid horizontally, a row per label, and a dashed
    vertical line per mark. No JavaScript (the card's chart cannot run any): the axis counts days."""
    series = any(s.series for s in t.spans)
    values = [{"label": s.label, "start": round(s.start, 2), "end": round(s.end, 2),
               **({"series": s.series} if series else {})} for s in t.spans]
    spec: dict[str, Any] = {
        "type": "rangeColumn",
        "direction": "horizontal",
        "title": {"text": t.title},
        "data": {"values": values},
        "xField": ["start", "end"],
        "yField": "label",
        "axes": [{"orient": "bottom", "type": "linear", "title": {"visible": True, "text": t.axis}},
                 {"orient": "left", "type": "band"}],
    }
    if series:
        spec["seriesField"] = "series"
        spec["legends"] = {"visible": True, "orient": "bottom"}
    if t.marks:
        spec["markLine"] = [{"x": round(day, 2), "label": {"visible": True, "text": name, "position": "end"},
                             "line": {"style": {"stroke": "#f54a45", "lineDash": [4, 4]}}} for name, day in t.marks]
    return {"tag": "chart", "height": _rows_height(len({s.label for s in t.spans})), "chart_spec": spec}


def short(text: str, limit: int = 10) -> str:
    """A label for a chart axis: the first `limit` characters, 「…」 when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def unique_labels(labels: Sequence[str], tags: Sequence[str]) -> list[str]:
    """Chart rows must differ: a label shared by several rows gets its tag (「页面适配 #3」)."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"{label} {tag}" if seen[label] > 1 else label for label, tag in zip(labels, tags)]


def person_list(open_ids: Iterable[str]) -> Element:
    return {
        "tag": "person_list",
        "persons": [{"id": oid} for oid in _check_open_ids(open_ids)],
        "size": "small",
        "show_name": True,
        "show_avatar": True,
        "drop_invalid_user_id": True,  # a departed user must not make the whole send fail
    }


def step_strip(current_step: int, done_steps: set[int]) -> str:
    """Markdown for the six-step strip: ✅ done, ▶ current, ○ later (steps are 1-based)."""
    parts = []
    for i, short in enumerate(T.STEP_SHORT_NAMES, start=1):
        if i in done_steps:
            mark = T.STEP_MARK_DONE
        elif i == current_step:
            mark = T.STEP_MARK_NOW
        else:
            mark = T.STEP_MARK_LATER
        parts.append(f"{mark} {T.STEP_NUMBERS[i - 1]} {short}")
    return T.STEP_SEPARATOR.join(parts)


# --------------------------------------------------------------------------- read-only copies
# What a person can act with: an archived output drops all of them (cards.md principle 10).
_INTERACTIVE = {"button", "form", "input", "select_static", "multi_select_static", "select_person",
                "multi_select_person", "date_picker", "picker_time", "picker_datetime", "overflow", "checker",
                "select_img"}


def _without_interactive(nodes: Iterable[Element]) -> list[Element]:
    out = []
    for node in nodes:
        if node.get("tag") in _INTERACTIVE:
            continue
        node = dict(node)
        for key in ("elements", "columns"):
            if isinstance(node.get(key), list):
                node[key] = _without_interactive(node[key])
        if node.get("tag") == "interactive_container":
            node.pop("behaviors", None)
        if node.get("tag") in ("column_set", "column", "collapsible_panel", "interactive_container") and not any(
                node.get(k) for k in ("elements", "columns")):
            continue   # nothing left to show in it
        out.append(node)
    return out


def read_only(card_json: dict[str, Any], note: str) -> dict[str, Any]:
    """A copy of the card without anything to click or fill in, grey, with `note` at the end."""
    body = dict(card_json.get("body") or {})
    body["elements"] = _without_interactive(body.get("elements") or []) + [md(note)]
    header = dict(card_json.get("header") or {})
    header["template"] = "grey"
    return {**card_json, "header": header, "body": body}
