"""The local sandbox: a group chat page served by `collab-bot serve` when no Feishu app is set."""

SANDBOX_CHAT_NAME = "新品推广协作群"
SANDBOX_BOT_NAME = "协作助手"
# (open_id, name, department)
SANDBOX_MEMBERS = (
    ("ou_sandbox_chenjing", "陈静", "市场部"),
    ("ou_sandbox_lina", "李娜", "技术部"),
    ("ou_sandbox_wangfang", "王芳", "设计部"),
    ("ou_sandbox_liuyang", "刘洋", "技术部"),
    ("ou_sandbox_zhaoqiang", "赵强", "测试部"),
)

SANDBOX_STARTED = (
    "本地沙盒已启动（未连接飞书）：在浏览器打开 {url}\n"
    "沙盒里的飞书开放平台是模拟的，数据库：{database}。按 Ctrl+C 退出。"
)
SANDBOX_TEMP_DATABASE = "临时 SQLite（退出后删除）"

# Answers of the sandbox's own API (shown as toasts on the page)
SANDBOX_UNKNOWN_MEMBER = "沙盒里没有这个成员。"
SANDBOX_EMPTY_MESSAGE = "消息不能为空。"
SANDBOX_MESSAGE_TOO_LONG = "消息太长了（最多 {limit} 字）。"
SANDBOX_UNKNOWN_MESSAGE = "找不到这条消息。"
SANDBOX_BOT_ERROR = "机器人没有正常应答（HTTP {status}），飞书会提示操作失败。"
SANDBOX_SLOW_CALLBACK = "机器人用了 {seconds:.1f} 秒才应答；飞书要求 3 秒内，否则会提示失败。"
SANDBOX_BAD_CLOCK = "无法识别的时间调整。"
SANDBOX_NO_KEY_NODE = "当前没有尚未到来的关键节点。"
SANDBOX_CLOCK_MOVED = "沙盒时间已调到 {time}"

# Page labels (sent to the page by /sandbox/api/state; the page has no strings of its own)
SANDBOX_PAGE = {
    "title": "协作助手 · 本地沙盒",
    "banner": "本地沙盒：未连接飞书，消息只在这台电脑上。卡片按飞书 Card JSON 2.0 渲染。",
    "acting_as": "当前身份",
    "members": "群成员",
    "bot_tag": "机器人",
    "send": "发送",
    "composer_placeholder": "输入消息，例如 /问题 新品推广页面延迟（Enter 发送，Shift+Enter 换行）",
    "clock": "沙盒时间",
    "ftasks": "飞书任务（只读：模拟的飞书中现在的样子）",
    "ftasks_empty": "还没有飞书任务：在案例卡片上点「同步到飞书任务」，方案发布后任务出现在这里。",
    "ftasks_done": "已完成",
    "ftasks_open": "未完成",
    "board": "多维表格看板 · 任务（只读：模拟的飞书中现在的样子）",
    "board_empty": "还没有看板：在案例卡片上点「创建多维表格看板」，方案发布后任务出现在这里。",
    "board_lagging": "滞后",
    "clock_quarter": "+15 分钟",
    "clock_hour": "+1 小时",
    "clock_day": "+1 天",
    "clock_standup": "到下一个工作日 {time}",
    "clock_key_node": "到关键节点前 24 小时",
    "pinned": "已置顶",
    "private_for": "仅{name}可见",
    "required_missing": "有必填项未填写",
    "unsupported": "[不支持的组件: {tag}]",
    "unsupported_markdown": "[不支持的 Markdown: {what}]",
    "confirm_ok": "确定",
    "confirm_cancel": "取消",
    "select_placeholder": "请选择",
    "date_placeholder": "选择日期",
    "time_placeholder": "选择时间",
    "datetime_placeholder": "选择日期时间",
    "person_placeholder": "选择成员",
    "at_all": "所有人",
    "unknown_user": "未知用户",
    "page_prev": "上一页",
    "page_next": "下一页",
    "page_of": "第 {page}/{pages} 页",
    "disabled": "不可用",
    "offline": "与沙盒的连接断开，正在重试…",
    "empty_chat": "群里还没有消息。",
}
