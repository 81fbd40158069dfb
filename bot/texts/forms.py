"""Strings of the quicker forms (several rows per submit, suggestions kept from templates) and of
the planner's warnings (dates past the goal, outside working hours, broken dependencies)."""

# ---------------------------------------------------------------- step 6: several entries at once
RETRO_MULTI_HINT = "每行一条，可以一次填写多条、多个类别；不需要的类别留空。"
RETRO_MULTI_PH = {"outcome": "例如：推广页面12月11日按期上线",
                  "success": "例如：每日站会让滞后提前暴露",
                  "weakness": "例如：需求变更未提前评估风险",
                  "improve": "例如：建立需求变更评审流程"}
RETRO_MULTI_ADDED = "已记录 {n} 条：{kinds}"
RETRO_MULTI_KIND_COUNT = "{kind} {n}"
RETRO_MULTI_TOO_MANY = "一次最多提交 {n} 条，请分几次提交。"
RETRO_LINE_TOO_LONG = "{kind}第 {n} 行太长（{length} 字，最多 {limit} 字），请缩短后再提交。"

# ---------------------------------------------------------------- step 4: several tasks per form
PLAN_FORM_TASKS = "**新增任务**（一次最多 {n} 项，不用的行留空；交付标准必填，所需资源可不填）"
PLAN_ROW_HEAD = "**任务 {n}**"
LABEL_OWNER = "负责人"
LABEL_START = "开始时间"
LABEL_DUE = "截止时间"
PLAN_ROW_PROBLEM = "任务 {n}：{problem}"
PLAN_NO_ROWS = "请至少填写一项任务。"
TASKS_ADDED = "已添加 {seqs}"
PLAN_DELETE_TASK_CONFIRM = ("删除任务", "确认删除任务 #{seq}「{content}」？")
PLAN_DELETE_RISK_CONFIRM = ("删除风险", "确认删除这条风险？")
PLAN_DELETE_NODE_CONFIRM = ("删除关键节点", "确认删除这个关键节点？")

# ---------------------------------------------------------------- warnings a planner confirms
WARN_HEAD = "**请确认：**"
WARN_CONFIRM_HINT = "没问题就再点一次「{button}」保存；要修改就改好再提交。"
BTN_SAVE_ANYWAY = "仍然保存"
BTN_SUBMIT_ANYWAY = "仍然提交"
WARN_TOAST = "请确认表单上的提醒后再保存。"
WARN_NODE_AFTER_GOAL = "关键节点「{name}」（{at}）晚于共同目标的目标日期 {goal}。"
WARN_DUE_OFF_HOURS = "{what} 的截止时间 {at} 不在工作时间（工作日 09:00–18:00）。"
WARN_TASK_WHAT = "#{seq}"
WARN_ROW_WHAT = "任务 {n}"
WARN_BREAKS_DEPENDENCY = "#{seq} 改到 {due} 截止，晚于依赖它的 #{other}「{content}」的开始时间 {start}。"
WARN_NEW_TASK = "新任务"
DEPENDENT_NOTICE = ("⚠️ {owner} 你的 #{dep}「{dep_content}」依赖 #{seq}：#{seq} 改到 {due} 截止，晚于 #{dep} 的开始时间 "
                    "{start}，请确认是否需要调整（可用 /调整 申请）。")
DEPENDENT_MOVED = "{owner} 你的 #{dep}「{dep_content}」依赖的 #{seq} 改到 {due} 截止，#{dep} 仍可按时开始。"

# ---------------------------------------------------------------- step 2: asked once, removable rows
S2_KIND_UNSET = ("待定", "orange")
S2_NEED_KIND = "请为「{dept}」选择核心或支持。"
S2_CONTACT_HINT = "接口人默认是部门负责人，不是时再改。"
S2_F_MEMBER_DEPT_OPT = "所属部门（负责人、接口人可不选）"
S2_MEMBER_DEPT_UNKNOWN = "{who}不是任何部门的负责人或接口人，请选择所属部门。"
S2_EDIT_PANEL = "移除成员或行动项"
S2_BTN_REMOVE = "移除"
S2_REMOVE_MEMBER_CONFIRM = ("移除成员", "确认把这位成员移出协作小组？")
S2_REMOVE_ITEM_CONFIRM = ("删除行动项", "确认删除这个行动项？")
S2_MEMBER_REMOVED = "已移除成员"
S2_ITEM_REMOVED = "已删除行动项"
S2_ROW_GONE = "这一行已经不在了。"
S2_CONTACT_NOT_REMOVABLE = "{who}是{dept}的接口人，请先在「设置部门与接口人」里换人。"

# ---------------------------------------------------------------- step 1: two department rows, more on request
S1_MORE_DEPTS = "还有更多部门：提交时先再加两行（已填的内容都保留，不会保存）"
S1_ROWS_ADDED = "已加两行部门，填好后再提交。"
