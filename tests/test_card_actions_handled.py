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


def test_snapshots_exist():
    assert len(list(SNAPSHOTS.glob("*.json"))) >= 5
