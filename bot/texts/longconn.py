"""Texts of the long-connection mode (`collab-bot ws`)."""

CALLBACK_SLOW = "正在处理，稍后卡片会更新；如果没有变化，请再点一次。"
LONGCONN_FAILED = ("长连接失败：{error}。请检查 FEISHU_APP_ID / FEISHU_APP_SECRET，"
                   "并确认开发者后台的事件与回调订阅方式选择了“使用长连接接收”。")
