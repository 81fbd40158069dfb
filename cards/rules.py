"""Offline checks for the Card JSON 2.0 rules we rely on (Feishu rejects unknown properties in 2.0,
so a typo or a 1.0 leftover fails the whole send; catching it in tests is much cheaper).

Where each table comes from. Base = https://open.feishu.cn/document/uAjLw4CM/ukzMukzMukzM/feishu-cards
(same paths on open.larkoffice.com / open.larksuite.com). Pages marked * were read (excerpts) via
the docs search; the others were reached as links from those pages or, marked ?, their slug is
inferred. Property lists were cross-checked with the official CLI skill refs
(larksuite/cli skills/lark-im/references/card/components/*.md, "[C1]" in
/work/shared/feishu/platform.md) and the open-lark crate's component structs (docs.rs), which
copy Feishu's field docs.
- TOP_LEVEL, CONFIG_PROPS, BODY_PROPS, limits: Base/card-json-v2-structure ;
  *Base/card-json-v2-breaking-changes-release-notes (unknown properties are errors in 2.0; no
  i18n_elements / fallback; update_multi only true)
- component set, nesting: *Base/card-json-v2-components/component-json-v2-overview
- HEADER_PROPS, HEADER_TEMPLATES, TAG_COLORS: [C1] header.md ; Base/card-json-v2-structure
- markdown: Base/card-json-v2-components/content-components/rich-text
- table (page_size 1-10, ≤5 per card, root only, TABLE_DATA_TYPES, TABLE_COLUMN_PROPS):
  *Base/card-json-v2-components/content-components/table
- chart (CHART_RATIOS, CHART_THEMES, chart_spec, preview, height):
  *Base/card-json-v2-components/content-components/chart
- person / person_list (PERSON_SIZES): ?.../content-components/user-profile, ?.../user-list
- column_set / column (FLEX_MODES, width, weight 1-5): Base/card-json-v2-components/containers/column-set
- form (root only, no form/table inside, one submit via form_action_type, names):
  *Base/card-json-v2-components/containers/form-container
- collapsible_panel: ?Base/card-json-v2-components/containers/collapsible-panel
- interactive_container: Base/card-json-v2-components/containers/interactive-container
- button (BUTTON_TYPES, BUTTON_SIZES, width ≥100px, behaviors):
  Base/card-json-v2-components/interactive-components/button (*1.0 page for the enums)
- input (INPUT_TYPES, label_position, max_length 1-1000, `required` only in forms):
  *Base/card-json-v2-components/interactive-components/input
- select_static / multi_select_static: *.../card-components/interactive-components/
  single-select-dropdown-menu (1.0), .../card-json-v2-components/interactive-components/
  multi-select-dropdown-menu ; select_person / multi_select_person: ?...-user-picker
- date_picker: *Base/card-json-v2-components/interactive-components/date-picker ;
  picker_time / picker_datetime: ?.../time-selector, *.../card-components/.../date-time-picker (1.0)
- overflow, checker: ?.../interactive-components/overflow, ?.../checker ([C1] checker.md)
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from bot.ids import OPEN_ID

MAX_ELEMENTS = 200
MAX_BYTES = 30 * 1024
MAX_TABLES = 5
MAX_DEPTH = 5

# ---------------------------------------------------------------- enums

HEADER_TEMPLATES = {"blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine",
                    "violet", "purple", "indigo", "grey", "default"}
TAG_COLORS = {"neutral", "blue", "turquoise", "lime", "orange", "violet", "indigo", "wathet",
              "green", "yellow", "red", "purple", "carmine"}
BUTTON_TYPES = {"default", "primary", "danger", "text", "primary_text", "danger_text",
                "primary_filled", "danger_filled", "laser"}
BUTTON_SIZES = {"tiny", "small", "medium", "large"}
INPUT_TYPES = {"text", "multiline_text", "password"}
TABLE_DATA_TYPES = {"text", "lark_md", "markdown", "number", "options", "persons", "date"}
FLEX_MODES = {"none", "stretch", "flow", "bisect", "trisect"}
WIDTH_MODES = {"default", "compact", "fill"}
FORM_ACTION_TYPES = {"submit", "reset"}
BEHAVIOR_TYPES = {"callback", "open_url"}
TEXT_TAGS = {"plain_text", "lark_md"}
CHART_RATIOS = {"1:1", "2:1", "4:3", "16:9"}
CHART_THEMES = {"brand", "rainbow", "complementary", "converse", "primary"}
PERSON_SIZES = {"extra_small", "small", "medium", "large"}
ALIGN_H = {"left", "center", "right"}
ALIGN_V = {"top", "center", "bottom"}
DIRECTIONS = {"vertical", "horizontal"}

# ---------------------------------------------------------------- property allow-lists

_COMMON = {"tag", "element_id", "margin"}
_LAYOUT = {"direction", "horizontal_spacing", "vertical_spacing", "horizontal_align",
           "vertical_align", "padding"}
_INTERACTIVE = {"name", "required", "disabled", "disabled_tips", "behaviors", "confirm", "width"}
_SELECT = _INTERACTIVE | {"type", "placeholder", "options"}

PROPS: dict[str, set[str]] = {
    "markdown": _COMMON | {"content", "text_size", "text_align", "icon", "i18n_content"},
    "div": _COMMON | {"text", "icon", "fields", "width"},
    "hr": _COMMON,
    "img": _COMMON | {"img_key", "alt", "title", "scale_type", "size", "transparent", "preview",
                      "corner_radius", "mode", "custom_width", "compact_width"},
    "person": _COMMON | {"user_id", "size", "show_avatar", "show_name", "style"},
    "person_list": _COMMON | {"persons", "size", "show_name", "show_avatar", "lines", "icon",
                              "drop_invalid_user_id"},
    "chart": _COMMON | {"chart_spec", "aspect_ratio", "color_theme", "preview", "height"},
    "table": _COMMON | {"page_size", "row_height", "row_max_height", "freeze_first_column",
                        "header_style", "columns", "rows"},
    "column_set": _COMMON | {"columns", "flex_mode", "horizontal_spacing", "horizontal_align",
                             "background_style", "action"},
    "column": _COMMON | _LAYOUT | {"elements", "width", "weight", "background_style", "action"},
    "form": _COMMON | _LAYOUT | {"name", "elements"},
    "collapsible_panel": _COMMON | _LAYOUT | {"expanded", "header", "elements", "border",
                                              "background_color"},
    "interactive_container": _COMMON | _LAYOUT | {
        "elements", "behaviors", "width", "height", "background_style", "has_border",
        "border_color", "corner_radius", "disabled", "disabled_tips", "hover_tips", "confirm"},
    "button": _COMMON | _INTERACTIVE | {"text", "type", "size", "icon", "hover_tips",
                                        "form_action_type"},
    "input": _COMMON | _INTERACTIVE | {"placeholder", "default_value", "max_length", "input_type",
                                       "show_icon", "rows", "auto_resize", "max_rows", "label",
                                       "label_position"},
    "select_static": _COMMON | _SELECT | {"initial_option", "initial_index"},
    "multi_select_static": _COMMON | _SELECT | {"selected_values"},
    "select_person": _COMMON | _SELECT | {"initial_option"},
    "multi_select_person": _COMMON | _SELECT | {"selected_values"},
    "date_picker": _COMMON | _INTERACTIVE | {"placeholder", "initial_date"},
    "picker_time": _COMMON | _INTERACTIVE | {"placeholder", "initial_time"},
    "picker_datetime": _COMMON | _INTERACTIVE | {"placeholder", "initial_datetime"},
    "checker": _COMMON | _INTERACTIVE | {"checked", "text", "overall_checkable", "button_area",
                                         "checked_style", "hover_tips", "padding"},
    "overflow": _COMMON | {"options", "width", "value", "behaviors", "confirm"},
}

TOP_LEVEL = {"schema", "config", "card_link", "header", "body"}
CONFIG_PROPS = {"update_multi", "width_mode", "enable_forward", "summary", "streaming_mode",
                "streaming_config", "style", "locales", "enable_forward_interaction",
                "use_custom_translation"}
BODY_PROPS = {"elements"} | _LAYOUT
HEADER_PROPS = {"title", "subtitle", "template", "icon", "text_tag_list", "i18n_text_tag_list",
                "padding"}
TEXT_TAG_PROPS = {"tag", "text", "color", "element_id"}
TEXT_PROPS = {"tag", "content", "text_size", "text_color", "text_align", "lines", "i18n_content"}
TABLE_COLUMN_PROPS = {"name", "display_name", "data_type", "width", "horizontal_align",
                      "vertical_align", "format", "date_format"}
BEHAVIOR_PROPS = {"callback": {"type", "value"},
                  "open_url": {"type", "default_url", "pc_url", "ios_url", "android_url"}}

CONTAINERS = {"column_set", "column", "form", "collapsible_panel", "interactive_container"}
# Components whose value is submitted with a form (they need a card-unique `name` there).
FORM_FIELDS = {"input", "select_static", "multi_select_static", "select_person",
               "multi_select_person", "date_picker", "picker_time", "picker_datetime", "checker"}
INTERACTIVE = FORM_FIELDS | {"button", "overflow"}
# Text-object properties (plain_text / lark_md objects) per component.
TEXT_FIELDS = ("text", "placeholder", "label", "hover_tips", "disabled_tips")

_ELEMENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,19}$")
_PX = re.compile(r"^(\d+)px$")
_AT_TAG = re.compile(r"<at\b([^>]*)>", re.IGNORECASE)
_AT_ATTR = re.compile(r"^(id|ids|email)\s*=\s*(['\"]?)([^'\"]*)\2$", re.IGNORECASE)
_AT_ID = re.compile(r"^(ou_[A-Za-z0-9_-]{1,64}|all)$")
_OPEN_ID = OPEN_ID


# ---------------------------------------------------------------- walking


class _Ctx:
    """Mutable state of one validation pass."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.count = 0
        self.tables = 0
        self.names: dict[str, str] = {}
        self.element_ids: dict[str, str] = {}

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")


def _children(node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(relative path, child component) for every nested component of `node`."""
    tag = node.get("tag")
    key = "columns" if tag == "column_set" else "elements"
    kids = node.get(key)
    if isinstance(kids, list):
        for i, kid in enumerate(kids):
            yield f"{key}[{i}]", kid
    area = node.get("button_area")
    if tag == "checker" and isinstance(area, dict) and isinstance(area.get("buttons"), list):
        for i, kid in enumerate(area["buttons"]):
            yield f"button_area.buttons[{i}]", kid


# ---------------------------------------------------------------- small checks


def _check_enum(ctx: _Ctx, path: str, node: dict, key: str, allowed: set[str]) -> None:
    if key in node and node[key] not in allowed:
        ctx.err(path, f"{key}={node[key]!r} not one of {sorted(allowed)}")


def _check_px_or(ctx: _Ctx, path: str, node: dict, key: str, words: set[str],
                 lo: int, hi: int | None) -> None:
    # Widths are either a keyword or "Npx" within a documented range.
    if key not in node:
        return
    val = node[key]
    m = _PX.match(val) if isinstance(val, str) else None
    ok = val in words or (m is not None and int(m.group(1)) >= lo
                          and (hi is None or int(m.group(1)) <= hi))
    if not ok:
        rng = f"[{lo},{hi if hi is not None else '∞'}]px"
        ctx.err(path, f"{key}={val!r} not one of {sorted(words)} or {rng}")


def _check_text_obj(ctx: _Ctx, path: str, obj: Any, allowed_tags: set[str] = TEXT_TAGS) -> None:
    if not isinstance(obj, dict):
        ctx.err(path, "must be a text object {tag, content}")
        return
    if obj.get("tag") not in allowed_tags:
        ctx.err(path, f"text tag {obj.get('tag')!r} not one of {sorted(allowed_tags)}")
    for key in sorted(set(obj) - TEXT_PROPS):
        ctx.err(path, f"unknown property {key!r}")
    content = obj.get("content")
    if not isinstance(content, str):
        ctx.err(path, "content must be a string")
    else:
        _check_mentions(ctx, path, content)


def _check_mentions(ctx: _Ctx, path: str, text: str) -> None:
    for m in _AT_TAG.finditer(text):
        attr = _AT_ATTR.match(m.group(1).strip())
        if attr is None:  # e.g. text-message syntax <at user_id="…"> or junk
            ctx.err(path, f"malformed <at> tag {m.group(0)!r} (cards use <at id=ou_x></at>)")
            continue
        kind, value = attr.group(1).lower(), attr.group(3)
        if kind == "email":
            continue
        for oid in (value.split(",") if kind == "ids" else [value]):
            if not _AT_ID.match(oid):
                ctx.err(path, f"malformed <at> id {oid!r}")


def _check_confirm(ctx: _Ctx, path: str, conf: Any) -> None:
    if not isinstance(conf, dict) or "title" not in conf:
        ctx.err(path, "confirm needs a title")
        return
    for key in sorted(set(conf) - {"title", "text"}):
        ctx.err(path, f"unknown property {key!r}")
    for key in ("title", "text"):
        if key in conf:
            _check_text_obj(ctx, f"{path}.{key}", conf[key])


def _check_behaviors(ctx: _Ctx, path: str, behaviors: Any) -> None:
    if not isinstance(behaviors, list) or not behaviors:
        ctx.err(path, "behaviors must be a non-empty list")
        return
    for i, b in enumerate(behaviors):
        p = f"{path}[{i}]"
        btype = b.get("type") if isinstance(b, dict) else None
        if btype not in BEHAVIOR_TYPES:
            ctx.err(p, f"behavior type {btype!r} not one of {sorted(BEHAVIOR_TYPES)}")
            continue
        for key in sorted(set(b) - BEHAVIOR_PROPS[btype]):
            ctx.err(p, f"unknown property {key!r}")
        if btype == "callback" and "value" not in b:
            ctx.err(p, "callback behavior needs a value")


def _has_action(node: dict) -> bool:
    bs = node.get("behaviors")
    return isinstance(bs, list) and any(
        isinstance(b, dict) and b.get("type") in BEHAVIOR_TYPES for b in bs)


# ---------------------------------------------------------------- per component


def _check_props(ctx: _Ctx, path: str, node: dict, tag: str) -> None:
    for key in sorted(set(node) - PROPS[tag]):
        ctx.err(path, f"unknown property {key!r} on {tag}")
    eid = node.get("element_id")
    if eid is not None:
        if not isinstance(eid, str) or not _ELEMENT_ID.match(eid):
            ctx.err(path, f"element_id {eid!r} must start with a letter, [A-Za-z0-9_], ≤20 chars")
        elif eid in ctx.element_ids:
            ctx.err(path, f"element_id {eid!r} already used at {ctx.element_ids[eid]}")
        else:
            ctx.element_ids[eid] = path
    for key in TEXT_FIELDS:
        if key in node:
            _check_text_obj(ctx, f"{path}.{key}", node[key])
    if "confirm" in node:
        _check_confirm(ctx, f"{path}.confirm", node["confirm"])
    if "behaviors" in node:
        _check_behaviors(ctx, f"{path}.behaviors", node["behaviors"])


def _check_markdown(ctx: _Ctx, path: str, node: dict) -> None:
    content = node.get("content")
    if not isinstance(content, str):
        ctx.err(path, "markdown content must be a string")
    else:
        _check_mentions(ctx, path, content)
    _check_enum(ctx, path, node, "text_align", ALIGN_H)


def _check_button(ctx: _Ctx, path: str, node: dict, in_form: bool) -> None:
    _check_enum(ctx, path, node, "type", BUTTON_TYPES)
    _check_enum(ctx, path, node, "size", BUTTON_SIZES)
    _check_px_or(ctx, path, node, "width", {"default", "fill"}, 100, None)
    _check_enum(ctx, path, node, "form_action_type", FORM_ACTION_TYPES)
    text = node.get("text")
    if isinstance(text, dict) and isinstance(text.get("content"), str) and len(text["content"]) > 100:
        ctx.err(path, "button text longer than 100 characters")
    if in_form:
        return
    if "form_action_type" in node:
        ctx.err(path, "form_action_type on a button outside a form does nothing")
    if not _has_action(node):
        # 2.0 has no legacy `value`/`url`: without behaviors the click does nothing.
        ctx.err(path, "button outside a form needs callback behaviors (the click would do nothing)")


def _check_input(ctx: _Ctx, path: str, node: dict) -> None:
    _check_enum(ctx, path, node, "input_type", INPUT_TYPES)
    _check_enum(ctx, path, node, "label_position", {"top", "left"})
    _check_px_or(ctx, path, node, "width", {"default", "fill"}, 100, None)
    ml = node.get("max_length")
    if ml is not None and (not isinstance(ml, int) or isinstance(ml, bool) or not 1 <= ml <= 1000):
        ctx.err(path, f"max_length={ml!r} must be an integer in [1,1000]")


def _check_select(ctx: _Ctx, path: str, node: dict, tag: str) -> None:
    _check_enum(ctx, path, node, "type", {"default", "text"})
    _check_px_or(ctx, path, node, "width", {"default", "fill"}, 100, None)
    options = node.get("options", [])
    if not isinstance(options, list):
        ctx.err(path, "options must be a list")
        return
    person = tag.endswith("_person")
    for i, opt in enumerate(options):
        p = f"{path}.options[{i}]"
        if not isinstance(opt, dict) or "value" not in opt:
            ctx.err(p, "option needs a value")
            continue
        allowed = {"value"} if person else {"text", "value", "icon"}
        for key in sorted(set(opt) - allowed):
            ctx.err(p, f"unknown property {key!r}")
        if person and not _OPEN_ID.match(str(opt["value"])):
            ctx.err(p, f"person option {opt['value']!r} is not an open_id")
        if "text" in opt:
            _check_text_obj(ctx, f"{p}.text", opt["text"])
    values = [o.get("value") for o in options if isinstance(o, dict)]
    if len(values) != len(set(map(str, values))):
        ctx.err(path, "option values must be unique")


def _check_table(ctx: _Ctx, path: str, node: dict) -> None:
    ctx.tables += 1
    ps = node.get("page_size")
    if ps is not None and (not isinstance(ps, int) or isinstance(ps, bool) or not 1 <= ps <= 10):
        ctx.err(path, f"page_size={ps!r} must be an integer in [1,10]")
    cols = node.get("columns")
    if not isinstance(cols, list) or not cols:
        ctx.err(path, "table needs columns")
        cols = []
    if len(cols) > 50:
        ctx.err(path, "table has more than 50 columns")
    kinds: dict[str, str] = {}
    for i, col in enumerate(cols):
        p = f"{path}.columns[{i}]"
        if not isinstance(col, dict) or not isinstance(col.get("name"), str):
            ctx.err(p, "column needs a name")
            continue
        for key in sorted(set(col) - TABLE_COLUMN_PROPS):
            ctx.err(p, f"unknown property {key!r}")
        _check_enum(ctx, p, col, "data_type", TABLE_DATA_TYPES)
        kinds[col["name"]] = col.get("data_type", "text")
    rows = node.get("rows")
    if not isinstance(rows, list):
        ctx.err(path, "table needs rows (a list)")
        return
    for r, row in enumerate(rows):
        _check_row(ctx, f"{path}.rows[{r}]", row, kinds)


def _check_row(ctx: _Ctx, path: str, row: Any, kinds: dict[str, str]) -> None:
    if not isinstance(row, dict):
        ctx.err(path, "row must be an object")
        return
    for key, val in row.items():
        kind = kinds.get(key)
        if kind is None:
            ctx.err(path, f"cell {key!r} has no column")
        elif kind == "options":
            ok = isinstance(val, list) and all(
                isinstance(o, dict) and isinstance(o.get("text"), str)
                and o.get("color", "neutral") in TAG_COLORS and set(o) <= {"text", "color"}
                for o in val)
            if not ok:
                ctx.err(path, f"cell {key!r}: options cell must be [{{text, color}}] with tag colours")
        elif kind in ("lark_md", "markdown") and isinstance(val, str):
            _check_mentions(ctx, f"{path}.{key}", val)


def _check_column_set(ctx: _Ctx, path: str, node: dict) -> None:
    _check_enum(ctx, path, node, "flex_mode", FLEX_MODES)
    _check_enum(ctx, path, node, "horizontal_align", ALIGN_H)
    for i, col in enumerate(node.get("columns") or []):
        if not isinstance(col, dict) or col.get("tag") != "column":
            ctx.err(f"{path}.columns[{i}]", "column_set children must be `column`")


def _check_column(ctx: _Ctx, path: str, node: dict) -> None:
    _check_px_or(ctx, path, node, "width", {"auto", "weighted"}, 16, 600)
    _check_enum(ctx, path, node, "vertical_align", ALIGN_V)
    _check_enum(ctx, path, node, "direction", DIRECTIONS)
    w = node.get("weight")
    if w is not None and (not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 5):
        ctx.err(path, f"weight={w!r} must be an integer in [1,5]")


def _check_misc(ctx: _Ctx, path: str, node: dict, tag: str) -> None:
    if tag == "chart":
        _check_enum(ctx, path, node, "aspect_ratio", CHART_RATIOS)
        _check_enum(ctx, path, node, "color_theme", CHART_THEMES)
        if not isinstance(node.get("chart_spec"), dict):
            ctx.err(path, "chart needs a chart_spec object")
    elif tag in ("person_list", "person"):
        _check_enum(ctx, path, node, "size", PERSON_SIZES)
        persons = node.get("persons", [])
        if tag == "person_list" and not (isinstance(persons, list) and all(
                isinstance(p, dict) and set(p) == {"id"} for p in persons)):
            ctx.err(path, "persons must be [{id}]")
    elif tag == "collapsible_panel":
        hdr = node.get("header")
        if not isinstance(hdr, dict):
            ctx.err(path, "collapsible_panel needs a header")
        elif "title" in hdr:
            _check_text_obj(ctx, f"{path}.header.title", hdr["title"], {"plain_text", "markdown"})
    elif tag == "interactive_container" and not _has_action(node):
        ctx.err(path, "interactive_container needs behaviors")


# ---------------------------------------------------------------- recursion


def _walk(ctx: _Ctx, node: Any, path: str, *, depth: int, root: bool,
          in_form: bool = False) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("tag"), str):
        ctx.err(path, "component must be an object with a string tag")
        return
    tag = node["tag"]
    ctx.count += 1
    if tag not in PROPS:
        hint = " (1.0 `action` module: put buttons directly in elements)" if tag == "action" else ""
        ctx.err(path, f"unknown component tag {tag!r}{hint}")
        return
    _check_props(ctx, path, node, tag)
    _check_placement(ctx, path, tag, root=root, in_form=in_form)
    _check_component(ctx, path, node, tag, in_form)
    _check_name(ctx, path, node, tag, in_form)

    if tag in CONTAINERS and tag != "column":  # column_set+column are one layout level
        depth += 1
        if depth > MAX_DEPTH:
            ctx.err(path, f"containers nested deeper than {MAX_DEPTH} levels")
    child_in_form = in_form or tag == "form"
    for rel, kid in _children(node):
        _walk(ctx, kid, f"{path}.{rel}", depth=depth, root=False, in_form=child_in_form)


def _check_placement(ctx: _Ctx, path: str, tag: str, *, root: bool, in_form: bool) -> None:
    if tag == "form" and in_form:
        ctx.err(path, "form inside a form")
    elif tag in ("form", "table") and not root:
        ctx.err(path, f"{tag} must be directly in body.elements (not in a container)")


def _check_component(ctx: _Ctx, path: str, node: dict, tag: str, in_form: bool) -> None:
    if tag == "markdown":
        _check_markdown(ctx, path, node)
    elif tag == "button":
        _check_button(ctx, path, node, in_form)
    elif tag == "input":
        _check_input(ctx, path, node)
    elif tag in ("select_static", "multi_select_static", "select_person", "multi_select_person"):
        _check_select(ctx, path, node, tag)
    elif tag == "table":
        _check_table(ctx, path, node)
    elif tag == "column_set":
        _check_column_set(ctx, path, node)
    elif tag == "column":
        _check_column(ctx, path, node)
    elif tag == "form":
        _check_form(ctx, path, node)
    else:
        _check_misc(ctx, path, node, tag)
    if tag in FORM_FIELDS and "required" in node and not in_form:
        ctx.err(path, "`required` is only allowed inside a form")


def _check_name(ctx: _Ctx, path: str, node: dict, tag: str, in_form: bool) -> None:
    name = node.get("name")
    needs = tag == "form" or (in_form and tag in FORM_FIELDS) or (
        in_form and tag == "button" and "form_action_type" in node)
    if name is None:
        if needs:
            ctx.err(path, f"{tag} needs a name (card-unique)")
        return
    if not isinstance(name, str) or not name:
        ctx.err(path, "name must be a non-empty string")
    elif name in ctx.names:
        ctx.err(path, f"name {name!r} already used at {ctx.names[name]}")
    else:
        ctx.names[name] = path


def _check_form(ctx: _Ctx, path: str, node: dict) -> None:
    submits = [b for b in _iter_nodes(node.get("elements") or [])
               if b.get("tag") == "button" and b.get("form_action_type") == "submit"]
    if len(submits) != 1:
        ctx.err(path, f"form needs exactly one submit button, found {len(submits)}")


def _iter_nodes(elements: list) -> Iterator[dict]:
    """Every component dict below `elements`, depth-first."""
    for el in elements:
        if not isinstance(el, dict):
            continue
        yield el
        yield from _iter_nodes([kid for _, kid in _children(el)])


# ---------------------------------------------------------------- top level


def _check_top(ctx: _Ctx, card: dict) -> list | None:
    if card.get("schema") != "2.0":
        ctx.err("schema", 'must be "2.0" (otherwise Feishu renders the card as 1.0)')
    for key in ("elements", "i18n_elements", "fallback"):
        if key in card:
            ctx.err(key, "1.0 top-level field; 2.0 uses body.elements and has no i18n_elements/fallback")
    for key in sorted(set(card) - TOP_LEVEL - {"elements", "i18n_elements", "fallback"}):
        ctx.err(key, "unknown top-level property")
    _check_config(ctx, card.get("config"))
    if "header" in card:
        _check_header(ctx, card["header"])
    body = card.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("elements"), list):
        ctx.err("body", "body.elements (a list) is required")
        return None
    for key in sorted(set(body) - BODY_PROPS):
        ctx.err("body", f"unknown property {key!r}")
    return body["elements"]


def _check_config(ctx: _Ctx, config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        ctx.err("config", "must be an object")
        return
    for key in sorted(set(config) - CONFIG_PROPS):
        ctx.err("config", f"unknown property {key!r}")
    if config.get("update_multi", True) is not True:
        ctx.err("config", "update_multi must be true in 2.0 (shared cards only)")
    _check_enum(ctx, "config", config, "width_mode", WIDTH_MODES)
    summary = config.get("summary")
    if summary is not None and not (isinstance(summary, dict) and set(summary) <= {"content", "i18n_content"}):
        ctx.err("config.summary", "must be {content}")


def _check_header(ctx: _Ctx, header: Any) -> None:
    if not isinstance(header, dict):
        ctx.err("header", "must be an object")
        return
    for key in sorted(set(header) - HEADER_PROPS):
        ctx.err("header", f"unknown property {key!r}")
    _check_enum(ctx, "header", header, "template", HEADER_TEMPLATES)
    for key in ("title", "subtitle"):
        if key in header:
            _check_text_obj(ctx, f"header.{key}", header[key])
    tags = header.get("text_tag_list", [])
    if not isinstance(tags, list) or len(tags) > 3:
        ctx.err("header.text_tag_list", "at most 3 text_tags")
        return
    for i, t in enumerate(tags):
        _check_text_tag(ctx, f"header.text_tag_list[{i}]", t)


def _check_text_tag(ctx: _Ctx, path: str, tag: Any) -> None:
    if not isinstance(tag, dict) or tag.get("tag") != "text_tag":
        ctx.err(path, "must be a text_tag")
        return
    for key in sorted(set(tag) - TEXT_TAG_PROPS):
        ctx.err(path, f"unknown property {key!r}")
    _check_enum(ctx, path, tag, "color", TAG_COLORS)
    if "text" in tag:
        _check_text_obj(ctx, f"{path}.text", tag["text"], {"plain_text"})


def validate_card(card: dict) -> list[str]:
    """Human-readable violations of the Card JSON 2.0 rules we rely on; [] means OK."""
    ctx = _Ctx()
    if not isinstance(card, dict):
        return ["card must be a JSON object"]
    elements = _check_top(ctx, card)
    for i, el in enumerate(elements or []):
        _walk(ctx, el, f"body.elements[{i}]", depth=0, root=True)
    if ctx.count > MAX_ELEMENTS:
        ctx.err("body", f"{ctx.count} components, more than {MAX_ELEMENTS}")
    if ctx.tables > MAX_TABLES:
        ctx.err("body", f"{ctx.tables} tables, more than {MAX_TABLES}")
    size = len(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    if size > MAX_BYTES:
        ctx.err("card", f"{size} bytes of JSON, more than {MAX_BYTES} (30 KB)")
    return ctx.errors


# ---------------------------------------------------------------- actions


def iter_actions(card: dict) -> list[Any]:
    """Every callback a card can emit, so tests can check each has a handler:
    the `value` of every callback behavior (buttons, checkers, pickers, containers…), plus
    `{"submit": <button name>, "form": <form name>}` for each form submit button. A value is
    whatever the card carries (normally a dict; validate_card checks it)."""
    out: list[Any] = []
    elements = (card.get("body") or {}).get("elements") or []
    for el in elements:
        _collect(el, None, out)
    return out


def _collect(node: Any, form: str | None, out: list[Any]) -> None:
    if not isinstance(node, dict):
        return
    for b in node.get("behaviors") or []:
        if isinstance(b, dict) and b.get("type") == "callback":
            out.append(b.get("value"))
    if node.get("tag") == "button" and node.get("form_action_type") == "submit":
        out.append({"submit": node.get("name"), "form": form})
    if node.get("tag") == "form":
        form = node.get("name")
    for _, kid in _children(node):
        _collect(kid, form, out)
