"""Strings shared by the whole bot: step names, generic answers, commands, help, welcome."""

STEP_NAMES = {
    1: "精准定位问题，明确共同目标",
    2: "组建协作小组，明确权责分工",
    3: "信息同步与需求确认",
    4: "制定行动方案",
    5: "执行跟踪与动态调整",
    6: "复盘优化与成果固化",
    7: "已结案",
}
STEP_SHORT = {1: "问题共识", 2: "组建小组", 3: "需求确认", 4: "行动方案", 5: "执行跟踪", 6: "复盘", 7: "已结案"}
OUTPUTS = {
    1: "《问题共识表》",
    2: "《协作小组分工表》",
    3: "《需求确认清单》",
    4: "《跨部门协作行动方案》",
    5: "《进度跟踪表》",
    6: "《复盘总结报告》",
}

# Commands (what people type). Aliases map to the same handler.
CMD_NEW = "/问题"
CMD_HELP = ("/帮助", "/help")
CMD_PROGRESS = "/进度"
CMD_LOG = "/记录"
CMD_EXPORT = "/导出"
CMD_ADJUST = "/调整"
CMD_STANDUP = "/站会"
CMD_TEMPLATES = "/模板"
CMD_CASES = "/案例"
CMD_BACK = "/回退"
CMD_CANCEL = "/取消"
S1_TITLE_TOO_LONG = "标题最多 {limit} 个字，这次是 {n} 个字。请缩短后重新发送「/问题 标题」，详细情况可以在表单的「背景」里写。"
CMD_CLOSE = "/结案"

UNKNOWN_COMMAND = "没有这个命令：{command}。发送 /帮助 查看可用命令。"
NO_ACTIVE_CASE = "本群还没有进行中的协作问题。发送「/问题 标题」开始一个。"
CASE_NOT_FOUND = "找不到这个协作问题，可能已被删除或不属于本群。"
CASE_CLOSED = "这个协作问题已结案归档，内容只读。"
STALE_CARD = "卡片已过期，已为你刷新为最新内容。"
NOT_LEAD = "只有协作组长可以执行此操作。"
WRONG_CHAT = "这张卡片不属于本群，操作未执行。"
UNKNOWN_ACTION = "无法识别的操作，请在最新卡片上重试。"
UNREADABLE_TEXT = "这条消息里有无法识别的字符（如空字符），没有执行。请删掉后重新发送。"
COMMAND_TOO_LONG = "这条命令超过 {limit} 个字，没有执行。请缩短后重新发送；较长的内容可以在表单里填写。"
UNREADABLE_INPUT = "填写的内容里有无法识别的字符（如空字符），没有保存。请删掉后再提交。"
INTERNAL_ERROR = "处理出错了（编号 {ref}），请稍后重试；若持续出现请联系管理员。"
CLICK_SLOW = "正在处理，请稍后看一下卡片；如果没有变化，请再点一次。"
BUSY_RETRY = "操作太频繁，别人刚刚也改了这张卡片，请再点一次。"
SAVED = "已保存"
WRONG_STEP = "当前处于「{current}」，此操作属于「{expected}」，未执行。"
ALREADY_ACTIVE_CASE = "本群已有进行中的协作问题「{title}」（#{seq}）。一个群同一时间只推进一个问题；结案后再开新的，或在新群里发起。"
BACK_DONE = "协作组长将进度退回到「{step}」，原因：{reason}"
BACK_USAGE = "用法：/回退 步骤号 原因，例如「/回退 3 技术方案变化，需要重新确认需求」。"
FIELD_BACK_REASON = "退回原因"
BACK_BAD_STEP = "只能退回到比当前更早的步骤（1–{max}）。"
BACK_NOTHING_EARLIER = "现在是第 1 步，没有更早的步骤可以退回。不再需要这个问题时，协作组长可以发送「/取消 原因」。"
CANCEL_USAGE = "用法：/取消 原因，例如「/取消 发错了，问题已合并到 #2」。取消后问题归档只读，本群可以发起新的问题。"
CLOSE_USAGE = "用法：/结案 原因，例如「/结案 问题已由供应商解决，无需继续」。结案后问题归档只读，本群可以发起新的问题。"
CASE_CANCELLED = "协作组长取消了「{title}」（#{seq}），原因：{reason}\n所有提醒已停止，内容已归档只读。本群可以发送「/问题 标题」发起新的问题。"
CASE_CLOSED_EARLY = "协作组长提前结案「{title}」（#{seq}），原因：{reason}\n所有提醒已停止，内容已归档只读。本群可以发送「/问题 标题」发起新的问题。"
STEP_ENTERED = "✅ {done} 已完成，进入第 {step} 步：{name}。"
MISSING_PREFIX = "还缺："
NOTHING_MISSING = "条件已满足"

HELP_TITLE = "协作助手 · 使用说明"
HELP_BODY = (
    "我按「跨部门协作六步法」带大家把问题闭环：\n"
    "① 问题共识 → ② 组建小组 → ③ 需求确认 → ④ 行动方案 → ⑤ 执行跟踪 → ⑥ 复盘\n\n"
    "**常用命令**（在群里直接发送，不必 @我）\n"
    "- `/问题 标题`：发起协作问题，填写《问题共识表》\n"
    "- `/问题 模板:模板名 标题`：用已有 SOP 模板发起\n"
    "- `/进度`：重新发送当前问题的进度卡片 · `/进度 #编号`：查看本群任一协作问题（含已结案的）\n"
    "- `/调整`：执行阶段申请调整计划\n"
    "- `/站会 时间 10:00` · `/站会 暂停` · `/站会 恢复`：管理每日站会\n"
    "- `/记录`：最近的操作记录 · `/导出 [#编号] [步骤号]`：导出各阶段输出物（Markdown）\n"
    "- `/回退 步骤号 原因`：协作组长把进度退回到更早的步骤\n"
    "- `/取消 原因` · `/结案 原因`：协作组长放弃或提前结束当前问题（停止所有提醒，归档只读）；"
    "进度卡片上的「结束问题」按钮也可以\n"
    "- `/模板`：本企业的 SOP 模板 · `/案例`：本群的全部协作问题\n"
    "- `/帮助`：显示本说明"
)
WELCOME_TITLE = "你好，我是跨部门协作助手"
WELCOME_BODY = (
    "遇到需要几个部门一起解决的问题，发送 **/问题 标题** 即可开始，例如：\n"
    "`/问题 新品推广页面延迟`\n\n"
    "我会带大家依次完成：明确问题与共同目标 → 组建小组与分工 → 需求确认 → 行动方案 → "
    "每日站会与进度跟踪 → 复盘与 SOP 沉淀。发送 /帮助 查看全部命令。"
)

# Case card
CASE_CARD_TITLE = "「{title}」"
CASE_CARD_SUBTITLE = "#{seq} · 步骤 {step}/6"
CASE_CARD_NOW = "**当前：** 第 {step} 步 {name} —— 输出物 {output}"
CASE_CARD_LEAD = "**协作组长：** {lead}"
CASE_CARD_CLOSED = "**已结案**，内容已归档只读。"
CASE_CARD_CANCELLED = "**已取消**，内容已归档只读。"
CASE_CARD_HOW_TO_END = "不再需要或要提前结束：协作组长点「结束问题」，或发送 `/取消 原因`、`/结案 原因`"

# Ending a case (the lead's private form from the case card's 「结束问题」)
BTN_END_CASE = "结束问题"
END_TITLE = "结束问题 · {title}"
END_INTRO = (
    "**取消**：问题不再需要（发错了、重复、已合并到别的问题）。\n"
    "**提前结案**：问题已用别的方式解决，不再走完六步。\n"
    "两者都会停止本问题的所有提醒，内容归档只读，本群可以发起新的问题。原因会写入操作记录。"
)
FIELD_END_REASON = "原因"
PH_END_REASON = "例如：发错了，问题已合并到 #2"
END_HOW = {"cancel": "取消：问题不再需要", "close": "提前结案：已用别的方式解决"}
PH_END_HOW = "取消还是提前结案"
BTN_CONFIRM_END = "确认结束"
END_CONFIRM_TITLE = "确认结束这个问题？"
END_CONFIRM_TEXT = "「{title}」的所有提醒将停止，内容归档只读，不能恢复。"
END_NEED_HOW = "请选择取消还是提前结案。"
END_NEED_REASON = "请填写原因后再确认。"
END_ALREADY = "这个问题已经结束归档，无需再操作。"
END_DONE_CANCELLED = "已取消「{title}」，所有提醒已停止"
END_DONE_CLOSED = "已提前结案「{title}」，所有提醒已停止"

# Audit log and case list
AUDIT_TITLE = "操作记录 · {title}"
AUDIT_EMPTY = "暂时没有记录。"
COL_TIME = "时间"
COL_WHO = "操作人"
COL_ACTION = "操作"
COL_DETAIL = "内容"
COL_TITLE = "问题"
COL_STEP = "步骤"
COL_STATUS = "状态"
COL_LEAD = "协作组长"
CASES_TITLE = "本群的协作问题"
NO_CASES = "本群还没有协作问题。发送「/问题 标题」开始。"
CASE_STATUS = {"active": ("进行中", "blue"), "closed": ("已结案", "neutral"), "cancelled": ("已取消", "neutral")}
AUDIT_ACTIONS = {
    "case.open": "发起问题",
    "case.cancel": "取消问题",
    "case.close_early": "提前结案",
    "reminder.skipped": "提醒未发送",
    "step.enter": "进入步骤",
    "step.back": "退回步骤",
    "consensus.submit": "提交共识表",
    "consensus.edit": "修改共识表",
    "consensus.sign": "签字",
    "consensus.object": "提出异议",
    "team.lead": "移交组长",
    "team.save": "保存分工",
    "team.confirm": "确认分工表",
    "req.input": "提交部门信息",
    "req.add": "新增需求",
    "req.resolve": "冲突决定",
    "req.confirm": "确认需求清单",
    "plan.save": "保存方案",
    "plan.publish": "发布方案",
    "task.update": "更新进度",
    "change.request": "申请调整",
    "change.approve": "批准调整",
    "change.reject": "驳回调整",
    "execution.close": "结束执行",
    "retro.entry": "填写复盘",
    "retro.finalise": "复盘定稿",
    "template.save": "保存模板",
    "case.close": "结案",
    "risk.close": "关闭风险",
    "retro.edit": "修改复盘",
    "retro.delete": "删除复盘",
}
ADDRESSED_HINT = "需要我做什么？发送 /帮助 查看命令，或发送「/问题 标题」发起一个跨部门协作问题。"
P2P_HINT = "我在群里工作：把我拉进涉及各部门的群，在群里发送「/问题 标题」即可开始。"

# What is still missing before a step can move on: labels of bot.workflow.GapKind
GAP_LABELS = {
    "submit_consensus": "提交问题共识表",
    "objection": "{subject} 提出异议待处理",
    "head_sign": "{subject} 负责人签字",
    "contact": "{subject} 接口人",
    "team_confirm": "协作组长确认分工表",
    "input": "{subject} 提交资源/限制/诉求",
    "requirement": "至少一条需求",
    "conflict": "{subject} 冲突点待组长决定",
    "confirm_requirements": "{subject} 确认需求清单",
    "add_task": "至少一项任务",
    "publish_plan": "发布行动方案",
    "task_open": "{subject} 未完成",
    "retro_entry": "至少一条复盘内容",
    "finalise": "协作组长定稿复盘报告",
}

# Audit-trail details and small formats shared by the step modules
AUDIT_VERSION = "版本 {version}"
AUDIT_REQ_INPUT = "{dept}：资源 {resources}；限制 {constraints}；诉求 {demands}"
AUDIT_REQ_CONFLICT = "（与{with_}冲突）"
MONTH_DAY = "{m}月{d}日"
S_NOT_CHAT_MEMBER = "「{field}」选的人不在本群，请先把 TA 拉进群，或选择群成员。"
TEMPLATE_PREFIXES = ("模板:", "模板：")   # `/问题 模板:名称 标题`
STANDUP_VERB_TIME = "时间"                # `/站会 时间 10:00`
STANDUP_VERB_PAUSE = "暂停"
STANDUP_VERB_RESUME = "恢复"


# Lengths of time (bot.durations.span): under a day in hours and minutes, from a day on in days and hours.
DUR_NONE = "0 分钟"
DUR_UNDER_MINUTE = "不到 1 分钟"
DUR_DAYS = "{n} 天"
DUR_HOURS = "{n} 小时"
DUR_MINUTES = "{n} 分钟"
DUR_MINUTES_AFTER = "{n} 分"     # after hours: 「23 小时 40 分」

# Archived cases stay readable (handlers.archive): `/进度 #N`, `/导出 #N`, old buttons show the content
ARCHIVED_SHOWN = "这个协作问题已归档，下面是只读内容。"
ARCHIVE_NOTE = "🔒 #{seq} 已归档，以上内容只读。"
ARCHIVE_NAV_HEAD = "**查看本案的其他内容：**"
BTN_ARCHIVE_CASE = "案例概况"
CASE_SEQ_NOT_FOUND = "本群没有 #{seq} 协作问题。发送 /案例 查看本群的全部协作问题。"
PROGRESS_USAGE = "用法：/进度 或 /进度 #编号，例如「/进度 #1」查看本群第 1 个协作问题（已结案的也可以）。"
# ---- private forms and cards that stay true (a card in a group is shared; nothing in the chat lies)
FORM_OPENED_PRIVATELY = "表单已单独发给你（仅你可见），填好后提交即可。"
PRIVATE_ONLY_YOU = "仅你可见 · 群里的卡片已同步更新"
PRIVATE_FORM_DONE = "已处理"
# neither a private card in the group nor the 1:1 chat could take the form
PRIVATE_FORM_UNDELIVERED = ("{who} 表单没能单独发给你（你可能不在本群，或机器人无法和你单聊）。"
                            "请确认你在群里、能和机器人单聊后，再点一次按钮。")
SUPERSEDED_TITLE = "{name}（已更新）"
SUPERSEDED_LINE = "这张卡片已过时，请看 {when} 发出的最新{name}。"
CARD_VIEW_NAMES = {
    "case": "协作问题卡片", "consensus": "《问题共识表》", "team": "《协作小组分工表》",
    "req": "《需求确认清单》", "plan": "《跨部门协作行动方案》", "tracking": "《进度跟踪表》",
    "retro": "《复盘总结报告》", "standup": "站会卡片",
}
