"""Every action a card can emit has a handler (architecture house rule 6), checked over every
card snapshot the test suite keeps."""
from __future__ import annotations

import json
from pathlib import Path

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
    # every effect the state machine can ask for has a runner (the case-card ones live in common)
    from bot.workflow import ON_ENTER, Effect

    wanted = {e for effects in ON_ENTER.values() for e in effects} - {
        Effect.ANNOUNCE_STEP, Effect.POST_CASE_CARD, Effect.REFRESH_CASE_CARD, Effect.STOP_REMINDERS}
    assert wanted <= set(router.effects)


def test_snapshots_exist():
    assert len(list(SNAPSHOTS.glob("*.json"))) >= 5
