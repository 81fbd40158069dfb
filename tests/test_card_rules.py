"""validate_card catches each Card JSON 2.0 rule we rely on (one bad card per rule)."""
from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from cards import kit
from cards.rules import iter_actions, validate_card
from tests import cardsnap

CB = {"a": "x"}


def base(*elements: dict) -> dict:
    return kit.card("标题", elements=list(elements) or [kit.md("hi")])


def a_form(*fields: dict, name: str = "f1") -> dict:
    return kit.form(name, [*fields, kit.submit_button("提交", f"{name}_submit")])


def _errors(card: dict, needle: str) -> list[str]:
    errs = validate_card(card)
    assert any(needle in e for e in errs), f"expected {needle!r} in {errs}"
    return errs


# ------------------------------------------------------------------ good cards


def test_good_cards_pass():
    assert validate_card(base()) == []
    assert validate_card(base(a_form(kit.text_input("t", "标题", required=True)))) == []
    btn = kit.button("打开", CB)
    btn["behaviors"] = [{"type": "open_url", "default_url": "https://x"}]
    assert validate_card(base(btn)) == []


# ------------------------------------------------------------------ top level


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def apply(card: dict) -> None:
        *parents, last = path.split(".")
        node = card
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return apply


def _del(key: str) -> Callable[[dict], None]:
    return lambda card: card.pop(key)


TOP_CASES = [
    ("schema 1.0", _set("schema", "1.0"), "schema"),
    ("schema missing", _del("schema"), "schema"),
    ("body missing", _del("body"), "body.elements"),
    ("top-level elements", _set("elements", []), "1.0 top-level"),
    ("i18n_elements", _set("i18n_elements", {}), "1.0 top-level"),
    ("fallback", _set("fallback", {}), "1.0 top-level"),
    ("unknown top-level", _set("wide_screen_mode", True), "unknown top-level"),
    ("unknown config", _set("config.wide_screen_mode", True), "unknown property 'wide_screen_mode'"),
    ("update_multi false", _set("config.update_multi", False), "update_multi"),
    ("width_mode", _set("config.width_mode", "wide"), "width_mode"),
    ("header template", _set("header.template", "pink"), "template"),
    ("header unknown", _set("header.colour", "x"), "unknown property 'colour'"),
    ("header title tag", _set("header.title", {"tag": "markdown", "content": "x"}), "text tag"),
    ("text_tag colour", _set("header.text_tag_list",
                             [{"tag": "text_tag", "text": {"tag": "plain_text", "content": "x"},
                               "color": "pink"}]), "color='pink'"),
    ("too many tags", _set("header.text_tag_list", [
        {"tag": "text_tag", "text": {"tag": "plain_text", "content": "x"}, "color": "red"}] * 4),
     "at most 3"),
    ("body unknown", _set("body.foo", 1), "unknown property 'foo'"),
]


@pytest.mark.parametrize("label, mutate, needle", TOP_CASES, ids=[c[0] for c in TOP_CASES])
def test_top_level_rules(label, mutate, needle):
    card = base()
    mutate(card)
    _errors(card, needle)


# ------------------------------------------------------------------ components


def _button_no_behaviors() -> dict:
    b = kit.button("x", CB)
    del b["behaviors"]
    return b


def _with(el: dict, **props) -> dict:
    el = copy.deepcopy(el)
    el.update(props)
    return el


COMPONENT_CASES = [
    ("unknown tag", base({"tag": "note", "elements": []}), "unknown component tag 'note'"),
    ("1.0 action module", base({"tag": "action", "actions": [kit.button("x", CB)]}), "`action` module"),
    ("unknown property", base(_with(kit.md("x"), href={})), "unknown property 'href' on markdown"),
    ("markdown content not str", base({"tag": "markdown", "content": 5}), "content must be a string"),
    ("bad at id", base(kit.md("hi <at id=bob></at>")), "malformed <at> id 'bob'"),
    ("bad at ids", base(kit.md("<at ids=ou_a,x y></at>")), "malformed <at> id"),
    ("text-message at syntax", base(kit.md('<at user_id="ou_a"></at>')), "malformed <at> tag"),
    ("button type", base(kit.button("x", CB, type="huge")), "type='huge'"),
    ("button size", base(_with(kit.button("x", CB), size="xl")), "size='xl'"),
    ("button width", base(kit.button("x", CB, width="50px")), "width='50px'"),
    ("button no behaviors", base(_button_no_behaviors()), "needs callback behaviors"),
    ("button legacy value", base(_with(_button_no_behaviors(), value={"a": 1})), "unknown property 'value'"),
    ("behavior type", base(_with(kit.button("x", CB), behaviors=[{"type": "jump"}])), "behavior type"),
    ("callback without value", base(_with(kit.button("x", CB), behaviors=[{"type": "callback"}])),
     "needs a value"),
    ("submit outside form", base(_with(kit.button("x", CB), form_action_type="submit")),
     "outside a form"),
    ("button text too long", base(kit.button("长" * 101, CB)), "longer than 100"),
    ("confirm without title", base(_with(kit.button("x", CB), confirm={"text": {"tag": "plain_text", "content": "x"}})),
     "confirm needs a title"),
    ("input_type", base(a_form(_with(kit.text_input("t", "T"), input_type="rich"))), "input_type"),
    ("input max_length", base(a_form(kit.text_input("t", "T", max_length=5000))), "max_length"),
    ("required outside form", base(kit.text_input("t", "T", required=True)), "only allowed inside a form"),
    ("select type", base(a_form(_with(kit.select_static("s", [("a", "1")], placeholder="p"), type="big"))),
     "type='big'"),
    ("select duplicate values", base(a_form(kit.select_static("s", [("a", "1"), ("b", "1")], placeholder="p"))),
     "unique"),
    ("person option not open_id", base(a_form(_with(kit.select_person("p", placeholder="p"),
                                                    options=[{"value": "bob"}]))), "not an open_id"),
    ("table data_type", base(kit.table([("a", "A", "money")], [])), "data_type='money'"),
    ("table page_size 0", base(kit.table([("a", "A", "text")], [], page_size=0)), "page_size"),
    ("table page_size 11", base(kit.table([("a", "A", "text")], [], page_size=11)), "page_size"),
    ("table cell without column", base(kit.table([("a", "A", "text")], [{"b": "x"}])), "has no column"),
    ("table options colour", base(kit.table([("s", "S", "options")], [{"s": kit.tag_option("x", "pink")}])),
     "options cell"),
    ("table column unknown prop", base(_with(kit.table([("a", "A", "text")], []),
                                             columns=[{"name": "a", "sortable": True}])),
     "unknown property 'sortable'"),
    ("too many tables", base(*[kit.table([("a", "A", "text")], [])] * 6), "6 tables"),
    ("table in column", base(kit.columns([[kit.table([("a", "A", "text")], [])]])),
     "table must be directly in body.elements"),
    ("table in form", base(a_form(kit.table([("a", "A", "text")], []))),
     "table must be directly in body.elements"),
    ("table in collapsible", base(kit.collapsible("x", [kit.table([("a", "A", "text")], [])])),
     "table must be directly"),
    ("form in column", base(kit.columns([[a_form(kit.text_input("t", "T"))]])),
     "form must be directly in body.elements"),
    ("form in collapsible", base(kit.collapsible("x", [a_form(kit.text_input("t", "T"))])),
     "form must be directly"),
    ("form in interactive_container", base({"tag": "interactive_container",
                                            "behaviors": [{"type": "callback", "value": CB}],
                                            "elements": [a_form(kit.text_input("t", "T"))]}),
     "form must be directly"),
    ("form in form", base(kit.form("outer", [a_form(kit.text_input("t", "T"), name="inner"),
                                            kit.submit_button("go", "outer_submit")])),
     "form inside a form"),
    ("form without name", base(_with(a_form(kit.text_input("t", "T")), name=None)), "needs a name"),
    ("field without name", base(a_form({"tag": "input", "label": {"tag": "plain_text", "content": "x"}})),
     "input needs a name"),
    ("duplicate names", base(a_form(kit.text_input("t", "T"), kit.text_input("t", "T2"))),
     "name 't' already used"),
    ("duplicate names across forms", base(a_form(kit.text_input("t", "T"), name="f1"),
                                          a_form(kit.text_input("t", "T"), name="f2")),
     "already used"),
    ("no submit", base(kit.form("f", [kit.text_input("t", "T")])), "exactly one submit button, found 0"),
    ("two submits", base(kit.form("f", [kit.submit_button("a", "s1"), kit.submit_button("b", "s2")])),
     "found 2"),
    ("column_set child", base({"tag": "column_set", "columns": [kit.md("x")]}), "children must be `column`"),
    ("column width", base(_with(kit.columns([[kit.md("x")]]), columns=[
        {"tag": "column", "width": "10px", "elements": []}])), "width='10px'"),
    ("column weight", base(kit.columns([[kit.md("x")]], weights=[9])), "weight=9"),
    ("flex_mode", base(_with(kit.columns([[kit.md("x")]]), flex_mode="grid")), "flex_mode"),
    ("element_id format", base(_with(kit.md("x"), element_id="1abc")), "element_id"),
    ("element_id too long", base(_with(kit.md("x"), element_id="a" * 21)), "element_id"),
    ("element_id duplicate", base(_with(kit.md("x"), element_id="e1"), _with(kit.md("y"), element_id="e1")),
     "already used"),
    ("chart ratio", base(_with(kit.chart_bar("t", [], "x", "y"), aspect_ratio="3:2")), "aspect_ratio"),
    ("chart spec", base({"tag": "chart", "chart_spec": "bar"}), "chart_spec"),
    ("interactive_container without behaviors", base({"tag": "interactive_container", "elements": []}),
     "needs behaviors"),
    ("person_list shape", base(_with(kit.person_list(["ou_a"]), persons=["ou_a"])), "persons must be"),
    ("plain_text unknown prop", base(_with(kit.button("x", CB), text={"tag": "plain_text", "content": "x",
                                                                      "bold": True})),
     "unknown property 'bold'"),
]


@pytest.mark.parametrize("label, card, needle", COMPONENT_CASES, ids=[c[0] for c in COMPONENT_CASES])
def test_component_rules(label, card, needle):
    _errors(card, needle)


def _nest(depth: int) -> dict:
    el: dict = kit.md("deep")
    for _ in range(depth):
        el = kit.collapsible("x", [el])
    return el


def test_nesting_depth():
    assert validate_card(base(_nest(5))) == []
    _errors(base(_nest(6)), "deeper than 5")


def test_element_count_counts_nested_nodes():
    # 4 columns x 50 markdown = 200 leaves + 1 column_set + 4 columns
    cols = kit.columns([[kit.md("x")] * 50] * 4)
    _errors(base(cols), "205 components")
    assert not any("components" in e for e in validate_card(base(*[kit.md("x")] * 200)))


def test_size_limit():
    _errors(base(kit.md("字" * 11000)), "more than 30720")
    assert validate_card(base(kit.md("字" * 9000))) == []


def test_non_dict_inputs():
    assert validate_card([]) == ["card must be a JSON object"]  # type: ignore[arg-type]
    _errors(base("text"), "must be an object with a string tag")  # type: ignore[arg-type]


# ------------------------------------------------------------------ iter_actions


def test_iter_actions_covers_all_callbacks():
    checker = {"tag": "checker", "name": "c1", "text": {"tag": "plain_text", "content": "t"},
               "behaviors": [{"type": "callback", "value": {"a": "tick"}}]}
    url = kit.button("u", CB)
    url["behaviors"] = [{"type": "open_url", "default_url": "https://x"}]
    card = base(kit.button("b", {"a": "btn"}),
                kit.columns([[kit.collapsible("x", [kit.button("n", {"a": "nested"}), checker])]]),
                url,
                a_form(kit.text_input("t", "T"), name="f9"))
    assert validate_card(card) == []
    assert iter_actions(card) == [{"a": "btn"}, {"a": "nested"}, {"a": "tick"},
                                  {"submit": "f9_submit", "form": "f9"}]


# ------------------------------------------------------------------ snapshots


def test_snapshot_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setattr(cardsnap, "SNAPSHOT_DIR", tmp_path)
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    card = base(kit.md("一"))
    with pytest.raises(AssertionError, match=r"no snapshot.*UPDATE_SNAPSHOTS=1"):
        cardsnap.assert_snapshot("demo", card)  # missing → fails, writes nothing
    assert not (tmp_path / "demo.json").exists()
    monkeypatch.setenv("UPDATE_SNAPSHOTS", "1")
    cardsnap.assert_snapshot("demo", card)  # missing, asked to write → written
    monkeypatch.delenv("UPDATE_SNAPSHOTS")
    text = (tmp_path / "demo.json").read_text(encoding="utf-8")
    assert '"一"' in text and text.endswith("\n")
    cardsnap.assert_snapshot("demo", card)  # same → passes
    with pytest.raises(AssertionError, match=r"(?s)differs.*-.*一.*\+.*二"):
        cardsnap.assert_snapshot("demo", base(kit.md("二")))
    monkeypatch.setenv("UPDATE_SNAPSHOTS", "1")
    cardsnap.assert_snapshot("demo", base(kit.md("二")))
    assert '"二"' in (tmp_path / "demo.json").read_text(encoding="utf-8")


def test_snapshot_rejects_invalid_cards_and_names(tmp_path, monkeypatch):
    monkeypatch.setattr(cardsnap, "SNAPSHOT_DIR", tmp_path)
    with pytest.raises(AssertionError, match="breaks Card JSON 2.0 rules"):
        cardsnap.assert_snapshot("bad", {"schema": "1.0", "elements": []})
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(ValueError):
        cardsnap.assert_snapshot("../escape", base())
