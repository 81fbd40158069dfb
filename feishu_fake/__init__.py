"""Stateful fake of the Feishu Open API for tests and the local sandbox."""
from feishu_fake.server import Call, FakeFeishu, Message

__all__ = ["FakeFeishu", "Message", "Call"]
