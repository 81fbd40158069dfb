"""飞书任务同步 (Task v2): buttons, notices to the lead, the audit trail, the task's own text."""

BTN_FTASKS_ON = "同步到飞书任务"
BTN_FTASKS_OFF = "停止同步飞书任务"
FTASKS_ON_TOAST = "已开启飞书任务同步：方案发布后，每项任务会出现在负责人的飞书任务里"
FTASKS_ON_NOW_TOAST = "已开启飞书任务同步，正在把任务同步到飞书任务"
FTASKS_OFF_TOAST = "已停止飞书任务同步；飞书中已有的任务保留，不再更新"
FTASKS_ALREADY_ON = "飞书任务同步已经开启"
FTASKS_ALREADY_OFF = "飞书任务同步没有开启"
FTASKS_STEP = "飞书任务同步可在行动方案和执行跟踪阶段开启"

# audit trail (codes are the actions; these are the details)
AUDIT_FTASKS_ON = "开启飞书任务同步"
AUDIT_FTASKS_OFF = "停止飞书任务同步"
AUDIT_FTASK_DONE = "#{seq} 在飞书任务中标记完成"
AUDIT_FTASK_REOPEN = "#{seq} 在飞书任务中重新打开"
AUDIT_FTASK_CONFLICT_REMOTE = "#{seq} 飞书任务与群里都有改动，以较晚的飞书任务为准（{remote} 晚于 {bot}）"
AUDIT_FTASK_CONFLICT_BOT = "#{seq} 飞书任务与群里都有改动，以较晚的群内更新为准（{bot} 晚于 {remote}），已改回飞书任务"
AUDIT_FTASK_DELETED = "#{seq} 的飞书任务已在飞书中删除，不再同步"

# messages in the group
FTASK_SCOPE_MISSING = ("{lead} 飞书任务同步已暂停：应用缺少权限 {scope}。请应用管理员在飞书开发者后台 → 应用 → "
                       "开发配置 → 权限管理 中开通 {scope}，并发布新版本；开通后点案例卡片上的「同步到飞书任务」即可继续。"
                       "案例照常在群里进行，进度不会丢失。")
FTASK_FAILED = "{lead} 飞书任务同步暂时没有成功（{code} {msg}），机器人会稍后重试；群里的进度不受影响。"
FTASK_DELETED = ("{lead} 任务 #{seq}「{content}」在飞书任务中被删除了。机器人不会重新创建它，"
                 "进度仍在群里更新；如需恢复，请在飞书任务中恢复或重新开启同步后另建。")
FTASK_NEED_REASON = ("{owner} 任务 #{seq}「{content}」已在飞书任务中完成，但它已滞后（截止 {due}），"
                     "请点「更新我的进度」补充滞后原因和调整措施。")
FTASK_REOPENED = "{owner} 任务 #{seq}「{content}」在飞书任务中被重新打开，已改回「进行中」（{progress}%）。"

# the Feishu task's own text
FTASK_CANCELLED_PREFIX = "【已取消】"
FTASK_DESC = ("来自群「{case}」的跨部门协作行动方案（任务 #{seq}）\n"
              "交付标准：{standard}\n"
              "所需资源：{resources}\n"
              "状态：{status} · 完成率 {progress}%{lag}\n"
              "进度请在群里更新（或在这里勾选完成）；机器人会同步两边。")
FTASK_DESC_LAG = "\n滞后原因：{reason}\n调整措施：{adjustment}"
FTASK_NONE = "无"

# ---------------------------------------------------------------- 多维表格 board (bot.sync_board)
BTN_BOARD_ON = "创建多维表格看板"
BTN_BOARD_OFF = "停止同步看板"
BOARD_ON_TOAST = "已开启多维表格看板：方案发布后，任务、风险和关键节点会出现在看板里"
BOARD_ON_NOW_TOAST = "正在创建多维表格看板，稍后群里会收到链接"
BOARD_OFF_TOAST = "已停止同步看板；看板里已有的记录保留，不再更新"
BOARD_ALREADY_ON = "多维表格看板已经开启"
BOARD_ALREADY_OFF = "多维表格看板没有开启"
BOARD_STEP = "多维表格看板可在行动方案和执行跟踪阶段开启"
BOARD_BASE_NAME = "进度跟踪表 · {title}"
BOARD_TABLE_TASKS = "任务"
BOARD_TABLE_RISKS = "风险"
BOARD_TABLE_NODES = "关键节点"
BOARD_OVERVIEW_NAME = "协作问题总览"
BOARD_OVERVIEW_TABLE = "协作问题总览"
BOARD_KIND_NAMES = {"task": "任务", "risk": "风险", "node": "关键节点", "overview": "《协作问题总览》中本案例的行"}
BOARD_SOMEONE = "有人"

AUDIT_BOARD_ON = "开启多维表格看板"
AUDIT_BOARD_OFF = "停止同步多维表格看板"
AUDIT_BOARD_DELETED = "{what} 在多维表格看板中被删除，不再同步"
AUDIT_BOARD_EDIT = "#{seq} 在多维表格看板中更新"
AUDIT_BOARD_CONFLICT = "#{seq} 看板与群里都有改动，以较晚的群内更新为准（{bot} 晚于 {remote}），已改回看板"

BOARD_READY = "{lead} 多维表格看板已创建：{url}\n状态、完成率、滞后原因、调整措施可直接在看板里改，一分钟内同步到群里。"
BOARD_SCOPE_MISSING = ("{lead} 多维表格看板已暂停：应用缺少权限 {scope}。请应用管理员在飞书开发者后台 → 应用 → "
                       "开发配置 → 权限管理 中开通 {scope}，并发布新版本；开通后点案例卡片上的「创建多维表格看板」即可继续。"
                       "案例照常在群里进行，进度不会丢失。")
BOARD_FAILED = "{lead} 多维表格看板同步暂时没有成功（{code} {msg}），机器人会稍后重试；群里的进度不受影响。"
BOARD_RECORD_DELETED = ("{lead} {what} 的记录在多维表格看板中被删除了。机器人不会重新创建它，进度仍在群里更新。")
BOARD_EDIT_REFUSED = "{who} 在看板里对任务 {task} 的修改没有生效：{why}。看板已改回群里的记录。"
BOARD_WHY_NOT_OWNER = "只有任务负责人或牵头人可以更新这项任务"

# ---- Feishu Tasks: the case's tasklist name = title + this marker (unique per case)
FTASK_TASKLIST_MARKER = "（#{case}）"
