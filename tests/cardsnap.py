"""Snapshot helper for cards: a card must be valid Card JSON 2.0 *and* match its reviewed JSON.

Usage: `assert_snapshot("case_card_step2", build_case_card(...))`.
A missing snapshot fails the test; with env UPDATE_SNAPSHOTS=1 the snapshot is (re)written
to tests/snapshots/<name>.json and the test passes: review the file in the diff like any other
code change.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

from cards.rules import validate_card

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # no path separators: a name can't escape the folder


def _dump(card: Any) -> str:
    # Stable, human-readable form so diffs show exactly what changed on screen.
    return json.dumps(card, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def assert_snapshot(name: str, card: dict) -> None:
    if not _NAME.match(name) or name.startswith("."):
        raise ValueError(f"bad snapshot name {name!r}")
    problems = validate_card(card)
    if problems:
        raise AssertionError(f"card {name!r} breaks Card JSON 2.0 rules:\n  "
                             + "\n  ".join(problems))
    path = SNAPSHOT_DIR / f"{name}.json"
    text = _dump(card)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(
            f"card {name!r} has no snapshot tests/snapshots/{name}.json: run the test with "
            f"UPDATE_SNAPSHOTS=1 to write it, then review it in the diff")
    old = path.read_text(encoding="utf-8")
    if old != text:
        diff = "".join(difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"snapshots/{name}.json", tofile="actual"))
        raise AssertionError(
            f"card {name!r} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept):\n{diff}")
