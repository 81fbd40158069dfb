"""Every action a card can emit has a handler (architecture house rule 6): the registry is
enumerated against every action name the code defines, and every card snapshot is checked too."""
from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import handlers
from bot import actions
from bot.actions import ActionValue, from_name
from cards.rules import iter_actions
from handlers import build_router

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _emitted(card: dict) -> list[str]:
    names = []
    for item in iter_actions(card):
        if "submit" in item:
            names.append(from_name(item["submit"]).action)
        elif isinstance(item, dict) and "a" in item:
            names.append(ActionValue.parse(item).action)
    return names


ACTION_NAME = re.compile(r"[a-z]+\.[a-z_]+")
ROOT = Path(__file__).parent.parent


def _named_actions() -> dict[str, str]:
    """Every action name the code defines: the constants of bot.actions and of each handler module
    (cards get their ActionValues from the presenters, which build them from these)."""
    modules = [actions] + [importlib.import_module(f"handlers.{m.name}")
                           for m in pkgutil.iter_modules(handlers.__path__)]
    return {value: f"{module.__name__}.{key}" for module in modules for key, value in vars(module).items()
            if key.isupper() and isinstance(value, str) and ACTION_NAME.fullmatch(value)}


def test_the_registry_has_every_named_action_and_nothing_else():
    router = build_router()
    named = _named_actions()
    assert {name: where for name, where in named.items() if name not in router.actions} == {}
    assert sorted(set(router.actions) - set(named)) == []
    assert set(router.versioned) <= set(router.actions)


def test_no_card_is_given_an_action_by_a_literal_name():
    """Action names are written once, as constants, so the test above sees each of them."""
    literal = re.compile(r"ActionValue\(\s*[\"'](?P<name>[^\"']+)")
    found = [f"{path.relative_to(ROOT)}: {m['name']}" for folder in ("bot", "cards", "handlers")
             for path in sorted((ROOT / folder).rglob("*.py")) for m in literal.finditer(path.read_text("utf-8"))]
    assert found == []


def test_every_emitted_action_has_a_handler():
    router = build_router()
    missing = {}
    for path in sorted(SNAPSHOTS.glob("*.json")):
        card = json.loads(path.read_text(encoding="utf-8"))
        if card.get("schema") != "2.0" or path.name.startswith("kit_"):  # kit demos use made-up actions
            continue
        for action in _emitted(card):
            if action not in router.actions:
                missing.setdefault(action, []).append(path.name)
    assert not missing, f"actions without a handler: {missing}"


def test_every_case_card_button_has_a_handler():
    """The live case card's buttons come from the registry, not from any snapshot."""
    router = build_router()
    buttons = [name for specs in router.case_buttons.values() for _label, name, _primary in specs]
    assert len(buttons) >= 6
    assert [b for b in buttons if b not in router.actions] == []


def test_every_step_has_its_case_card_parts_and_exporter():
    from bot.workflow import Step

    router = build_router()
    open_steps = [s for s in Step if s != Step.CLOSED]
    assert sorted(router.case_buttons) == open_steps
    assert sorted(router.exporters) == open_steps
    assert sorted(router.output_cards) == open_steps   # what an archived case shows of each step
    assert router.action_steps["consensus.sign"] == Step.CONSENSUS
    assert router.action_steps["standup.same"] == Step.EXECUTION
    assert "archive.view" not in router.action_steps   # a command module's actions belong to no step
    # every effect the state machine can ask for has a runner (the case-card ones live in common)
    from bot.workflow import ON_ENTER, Effect

    wanted = {e for effects in ON_ENTER.values() for e in effects} - {
        Effect.ANNOUNCE_STEP, Effect.POST_CASE_CARD, Effect.REFRESH_CASE_CARD, Effect.STOP_REMINDERS}
    assert wanted <= set(router.effects)


def test_snapshots_exist():
    assert len(list(SNAPSHOTS.glob("*.json"))) >= 5
