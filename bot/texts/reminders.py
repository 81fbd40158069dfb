"""Strings of the bot's clock: daily standup, key-node checks, task and sign-off reminders."""

LATE_MARK = "（补发）"

# standup card
STANDUP_TITLE = "今日站会 · {month}月{day}日"
STANDUP_SUBTITLE = "「{title}」· 每日 15 分钟同步进度"
STANDUP_INTRO = "请以下负责人更新任务进度；没有变化也请点「今日无变化」。"
STANDUP_NO_OWNERS = "当前没有未完成的任务，今天无需汇报。"
STANDUP_OWNER_DONE = "✅ 已回复"
STANDUP_OWNER_WAITING = "⏳ 待回复"
STANDUP_TASK_LINE = "- {content} · 截止 {due} · {progress}%{flag}"
FLAG_LAGGING = " · **滞后**"
FLAG_OVERDUE = " · **已逾期 {days} 个工作日**"
FLAG_OVERDUE_TODAY = " · **已逾期**"
# a due-soon warning the standup carries instead of a card of its own
FLAG_DUE_SOON = " · ⏰ **即将到期，请确认能否按时完成**"
STANDUP_ESCALATE = "⚠️ 以下任务逾期已达 {days} 个工作日，请 {lead} 协调资源："
STANDUP_MISSING = "未回复：{people}"
STANDUP_ALL_ANSWERED = "全部负责人已回复 ✅"
STANDUP_CLOSED = "站会已结束，今日《进度跟踪表》已发布。"
BTN_UPDATE_PROGRESS = "更新我的进度"
BTN_NO_CHANGE = "今日无变化"

STANDUP_NUDGE = "{people} 今日站会还没收到你的进度，请在站会卡片上更新（没有变化就点「今日无变化」）。"
STANDUP_REPLIED = "已记录：今日无变化"
STANDUP_ALREADY = "今天已经回复过了"
STANDUP_NOT_OWNER = "今日站会只需有未完成任务的负责人回复：{owners}"
STANDUP_NOT_OWNER_NONE = "今天没有需要汇报的任务。"
STANDUP_OLD = "这是 {day} 的站会，已经结束；请在今天的站会卡片上回复。"

# /站会
STANDUP_STATUS = "每日站会：工作日 {time}（{tz}），{state}。用法：/站会 时间 10:00 · /站会 暂停 · /站会 恢复"
STANDUP_STATE_ON = "进行中"
STANDUP_STATE_PAUSED = "已暂停"
STANDUP_STATE_IDLE = "将在进入「执行跟踪」后开始"
STANDUP_USAGE = "用法：/站会 时间 10:00 · /站会 暂停 · /站会 恢复"
STANDUP_BAD_TIME = "时间格式不对：「{value}」。请写成 24 小时制，例如「/站会 时间 10:00」。"
STANDUP_TIME_SET = "每日站会改为工作日 {time}（{tz}）。"
STANDUP_PAUSED = "每日站会已暂停；发送「/站会 恢复」重新开始。"
STANDUP_RESUMED = "每日站会已恢复：工作日 {time}。"
STANDUP_ALREADY_PAUSED = "每日站会已经是暂停状态。"
STANDUP_ALREADY_RUNNING = "每日站会已经在进行中：工作日 {time}。"

# key node
KEYNODE_TITLE = "{node}前 {left} · 进度确认会"  # the exact time left: a check may move off a day off
KEYNODE_WHEN = "**节点：** {node} · {at}（还剩 {left}{work}）"
# the working time left before the node, when nights or days off make it less than the clock's
KEYNODE_WORK_LEFT = "，其中工作时间 {hours} 小时"
KEYNODE_WORK_LEFT_UNDER_ONE = "，其中工作时间不到 1 小时"
KEYNODE_NO_WORK_LEFT = "，之前已没有工作时间"
KEYNODE_OPEN = "以下任务需在节点前完成，目前还未完成："
KEYNODE_ALL_DONE = "节点前的任务均已完成 ✅ 请组长确认是否可以按期进行。"
KEYNODE_TASK_LINE = "- {owner} {content} · 截止 {due} · {progress}%{flag}"
KEYNODE_ASK = "请 {lead} 组织 15 分钟进度确认会。"
BTN_KEYNODE_OK = "确认可以按期进行"
KEYNODE_CONFIRMED = "✅ {lead} 已确认「{node}」可以按期进行（{at}）"
KEYNODE_CONFIRMED_TOAST = "已确认「{node}」可以按期进行"
KEYNODE_GONE = "这个关键节点已被修改或删除。"

# task reminders
TASK_DUE_TITLE = "任务即将到期"
TASK_DUE_INTRO = "以下任务将在 {hours} 小时内到期，请确认能否按时完成："
TASK_DUE_INTRO_AT = "以下任务最早于 {when} 到期（还剩 {left} 个工作小时），请确认能否按时完成："
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
WHEN_DAY = "{m}月{d}日（{weekday}）{hhmm}"
TASK_DUE_INTRO_NEXT = "以下任务最早于 {when} 到期（在那之前已没有工作时间），请确认能否按时完成："

# reminders the bot could not send in time (down) and skipped: the audit trail says so
REMINDER_SKIPPED = "{kind}（{when}）未发送：{reason}"
REMINDER_KINDS = {"standup": "每日站会", "standup_nudge": "站会催办", "standup_close": "站会小结",
                  "keynode": "进度确认会", "task_due": "到期提醒", "overdue": "逾期提醒", "signoff_nudge": "签字催办"}
REMINDER_SKIPPED_REASONS = {
    "standup": "机器人停机，恢复时已晚于站会时间 3 小时以上",
    "standup_nudge": "机器人停机，恢复时站会已结束",
    "standup_close": "机器人停机，恢复时当天已过",
    "keynode": "机器人停机，恢复时节点时间已过",
    "task_due": "机器人停机，恢复时任务已到截止时间",
    "overdue": "机器人停机，恢复时已过一天（逾期任务仍在站会卡片上）",
    "signoff_nudge": "机器人停机，已过期",
}
OVERDUE_TITLE = "任务已逾期"
OVERDUE_INTRO = "以下任务已超过截止时间，请负责人更新进度并说明原因："
OVERDUE_TASK_LINE = "- {owner} {content} · 截止 {due} · {progress}%{flag}"

# sign-offs and confirmations
SIGNOFF_TITLE = "待确认提醒 · {output}"
SIGNOFF_INTRO = "{output} 已等待超过 {hours} 小时，还差以下部门："
SIGNOFF_LINE = "- {dept}：{who}"
SIGNOFF_ACTION = {1: "请在《问题共识表》卡片上签字或提出异议。",
                  3: "请提交本部门的资源与诉求，并在《需求确认清单》上确认。"}
SIGNOFF_MISSING_SIGN = "待签字"
SIGNOFF_MISSING_INPUT = "待提交资源与诉求"
SIGNOFF_MISSING_CONFIRM = "待确认"

# ---- reminders due together, as one card
REMINDER_BUNDLE_MORE = "另有 {n} 项提醒见下方"
