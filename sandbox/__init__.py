"""Local sandbox: the real bot, an embedded fake of the Feishu Open API and a group-chat page.

Nothing in bot/ knows about it: the sandbox only chooses the Open API base URL (the fake on a
loopback port), per-run credentials and the clock (an OffsetClock it can move forward)."""
