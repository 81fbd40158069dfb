"""User-visible strings fixed by the card kit (cards/kit.py). Everything else lives in bot.texts."""
from __future__ import annotations

# The six steps of the method, short names as shown in the progress strip.
STEP_SHORT_NAMES: tuple[str, ...] = (
    "问题共识",
    "组建小组",
    "需求确认",
    "行动方案",
    "执行跟踪",
    "复盘",
)

# Circled step numbers ①..⑥, index 0 = step 1.
STEP_NUMBERS: tuple[str, ...] = ("①", "②", "③", "④", "⑤", "⑥")

# Step-strip marks: done, current, later.
STEP_MARK_DONE = "✅"
STEP_MARK_NOW = "▶"
STEP_MARK_LATER = "○"

# Gap between steps in the strip (two spaces read well on mobile and PC).
STEP_SEPARATOR = "  "
