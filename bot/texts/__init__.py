"""Every user-visible string of the bot lives in this package (zh-CN). One module per area:
`common` (this file's re-exports), `steps13`, `steps46`, `reminders`, `sandbox`…
Format placeholders use str.format names."""
from bot.texts.cli import *  # noqa: F403
from bot.texts.common import *  # noqa: F403
from bot.texts.feishu_sync import *  # noqa: F403
from bot.texts.forms import *  # noqa: F403
from bot.texts.longconn import *  # noqa: F403
from bot.texts.people import *  # noqa: F403
from bot.texts.reminders import *  # noqa: F403
from bot.texts.sandbox import *  # noqa: F403
from bot.texts.steps13 import *  # noqa: F403
from bot.texts.steps46 import *  # noqa: F403
