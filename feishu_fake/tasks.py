"""Feishu Tasks (Task v2) in the fake: tasklists, tasks, members — stateful, with the documented
shapes (docs/feishu-tasks-bitable.md): `data.tasklist` / `data.task`, times as millisecond strings,
`completed_at` "0" while open, `client_token` idempotency on create and add_members, 100/min on
add_members, and 99991672 with `error.permission_violations` when the app lacks a scope.

Test controls: `grant_scopes(...)` / `revoke_scope(...)`, `user_complete_task(guid, open_id)`,
`user_reopen_task(guid)`, `user_delete_task(guid)`,
`user_create_tasklist(name)`, `task(guid)`, `tasks()`, `tasklists()`.
"""
from __future__ import annotations

import re
import uuid as _uuid
from typing import Any

MISSING_SCOPE = 99991672
TASK_NOT_FOUND = 1470404     # approx.: a deleted or unknown task guid
TASK_INVALID = 1470400       # approx.: field validation
ALL_SCOPES = frozenset({"task:task:write", "task:task:read", "task:tasklist:write", "bitable:app"})
PER_MINUTE = {"task_add_members": 100}   # documented: add_members 100/min; others 1000/min & 50/s
SUMMARY_MAX = 3000           # approx.
MEMBER_ROLES = frozenset({"assignee", "follower"})
TASK_PATCHABLE = frozenset({"summary", "description", "due", "start", "completed_at", "extra",
                            "repeat_rule", "custom_complete", "mode", "is_milestone", "custom_fields"})

TASK_ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("POST", re.compile(r"^/open-apis/task/v2/tasklists$"), "tasklist_create"),
    ("GET", re.compile(r"^/open-apis/task/v2/tasklists$"), "tasklist_list"),
    ("POST", re.compile(r"^/open-apis/task/v2/tasks$"), "task_create"),
    ("GET", re.compile(r"^/open-apis/task/v2/tasks/([^/]+)$"), "task_get"),
    ("PATCH", re.compile(r"^/open-apis/task/v2/tasks/([^/]+)$"), "task_patch"),
    ("POST", re.compile(r"^/open-apis/task/v2/tasks/([^/]+)/add_members$"), "task_add_members"),
    ("POST", re.compile(r"^/open-apis/task/v2/tasks/([^/]+)/remove_members$"), "task_remove_members"),
]


class TasksMixin:
    """Mixed into FakeFeishu (which provides _now, _err helpers and the lock)."""

    _Reply: Any                  # the server's short-circuit exception class
    _scopes: set[str] | None
    _tasks: dict[str, dict]
    _tasklists: dict[str, dict]
    _task_tokens: dict[str, str]
    _member_tokens: set[str]

    def _init_tasks(self) -> None:
        self._scopes = None            # None: every scope granted
        self._tasks = {}
        self._tasklists = {}
        self._task_tokens = {}         # client_token -> task guid
        self._member_tokens = set()

    # ---------------------------------------------------------------- test controls
    def grant_scopes(self, *scopes: str) -> None:
        """From now on the app has exactly these scopes (Tasks ones are checked)."""
        self._scopes = set(scopes)

    def revoke_scope(self, scope: str) -> None:
        self._scopes = set(ALL_SCOPES if self._scopes is None else self._scopes) - {scope}

    def task(self, guid: str) -> dict:
        return self._tasks[guid]

    def tasks(self) -> list[dict]:
        return [t for t in self._tasks.values() if not t.get("_deleted")]

    def tasklists(self) -> list[dict]:
        return list(self._tasklists.values())

    def user_create_tasklist(self, name: str, open_id: str = "ou_someone") -> dict:
        """A person makes a list (shared with the app) — same name as ours, not created by the app."""
        with self._lock:  # type: ignore[attr-defined]
            guid = str(_uuid.uuid4())
            user = {"id": open_id, "type": "user", "role": "owner"}
            self._tasklists[guid] = {"guid": guid, "name": name, "members": [], "creator": {**user, "role": "creator"},
                                     "owner": user, "url": "", "created_at": str(self._ms()),
                                     "updated_at": str(self._ms())}
            return self._tasklists[guid]

    def user_complete_task(self, guid: str, open_id: str = "") -> None:
        with self._lock:  # type: ignore[attr-defined]
            t = self._tasks[guid]
            t["completed_at"] = str(self._ms())
            t["status"] = "done"
            self._touch(t)

    def user_reopen_task(self, guid: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            t = self._tasks[guid]
            t["completed_at"], t["status"] = "0", "todo"
            self._touch(t)

    def user_delete_task(self, guid: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self._tasks[guid]["_deleted"] = True

    # ---------------------------------------------------------------- internals
    def _ms(self) -> int:
        return int(self._now() * 1000)  # type: ignore[attr-defined]

    def _touch(self, t: dict) -> None:
        # strictly increasing, so two changes within one fake millisecond are still told apart
        t["updated_at"] = str(max(self._ms(), int(t.get("updated_at") or 0) + 1))

    def _need(self, *any_of: str) -> None:
        if self._scopes is None or any(s in self._scopes for s in any_of):
            return
        names = ", ".join(any_of)
        raise self._Reply(400, {"code": MISSING_SCOPE,
                           "msg": f"Access denied. One of the following scopes is required: [{names}]",
                           "error": {"permission_violations": [{"type": "action_scope_required", "subject": s}
                                                               for s in any_of],
                                     "helps": [{"url": "https://open.feishu.cn/app/cli_fake/auth?q="
                                                + ",".join(any_of), "description": "add scopes"}]}})

    def _bad(self, msg: str, code: int = TASK_INVALID, status: int = 400) -> Exception:
        return self._Reply(status, {"code": code, "msg": msg})

    def _live(self, guid: str) -> dict:
        t = self._tasks.get(guid)
        if t is None or t.get("_deleted"):
            raise self._bad("task not found", TASK_NOT_FOUND, 404)
        return t

    def _members(self, raw: Any) -> list[dict]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self._bad("members must be a list")
        out = []
        for m in raw:
            if not isinstance(m, dict) or not str(m.get("id") or "").startswith("ou_"):
                raise self._bad("member id must be an open_id")
            role = m.get("role")
            if role not in MEMBER_ROLES:
                raise self._bad(f"invalid member role {role!r}")
            out.append({"id": m["id"], "type": m.get("type") or "user", "role": role})
        return out

    def _time(self, raw: Any, name: str) -> dict | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or not str(raw.get("timestamp", "")).isdigit():
            raise self._bad(f"{name}.timestamp must be milliseconds")
        return {"timestamp": str(raw["timestamp"]), "is_all_day": bool(raw.get("is_all_day", False))}

    def _public(self, t: dict) -> dict:
        return {k: v for k, v in t.items() if not k.startswith("_")}

    def _api_tasklist_create(self, *, query: dict, body: dict) -> dict:
        self._need("task:tasklist:write")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise self._bad("name is required, at most 100 characters")
        members = body.get("members") or []
        if len(members) > 500:
            raise self._bad("at most 500 members")
        guid = str(_uuid.uuid4())
        app = {"id": self.app_id, "type": "app", "role": "owner"}  # type: ignore[attr-defined]
        self._tasklists[guid] = {"guid": guid, "name": name, "members": members,
                                 "creator": {**app, "role": "creator"}, "owner": app,
                                 "url": f"https://applink.feishu.cn/client/todo/task_list?guid={guid}",
                                 "created_at": str(self._ms()), "updated_at": str(self._ms())}
        return {"code": 0, "msg": "success", "data": {"tasklist": self._tasklists[guid]}}

    def _api_tasklist_list(self, *, query: dict, body: Any) -> dict:
        """Documented: page_size 1–100 (default 50), page_token; data{items, page_token, has_more}."""
        self._need("task:tasklist:read", "task:tasklist:write")
        try:
            size = int(query.get("page_size", 50))
            start = int(query.get("page_token") or 0)
        except ValueError:
            raise self._bad("invalid page_size or page_token") from None
        if not 1 <= size <= 100 or start < 0:
            raise self._bad("page_size must be 1-100")
        lists = list(self._tasklists.values())
        page = lists[start:start + size]
        more = start + size < len(lists)
        return {"code": 0, "msg": "success",
                "data": {"items": page, "page_token": str(start + size) if more else "", "has_more": more}}

    def _api_task_create(self, *, query: dict, body: dict) -> dict:
        self._need("task:task:write")
        token = body.get("client_token")
        if token and token in self._task_tokens:  # idempotent: the task made the first time
            return {"code": 0, "msg": "success", "data": {"task": self._public(self._tasks[self._task_tokens[token]])}}
        summary = body.get("summary")
        if not isinstance(summary, str) or not summary.strip() or len(summary) > SUMMARY_MAX:
            raise self._bad("summary is required")
        start, due = self._time(body.get("start"), "start"), self._time(body.get("due"), "due")
        if start and due and int(start["timestamp"]) > int(due["timestamp"]):
            raise self._bad("start must not be later than due")
        lists = body.get("tasklists") or []
        for item in lists:
            if item.get("tasklist_guid") not in self._tasklists:
                raise self._bad("tasklist not found")
        guid = str(_uuid.uuid4())
        now = str(self._ms())
        t = {"guid": guid, "task_id": f"t{len(self._tasks) + 100001}", "summary": summary,
             "description": str(body.get("description") or ""), "start": start, "due": due,
             "members": self._members(body.get("members")), "tasklists": lists,
             "completed_at": str(body.get("completed_at") or "0"), "status": "todo",
             "created_at": now, "updated_at": now, "extra": str(body.get("extra") or ""),
             "url": f"https://applink.feishu.cn/client/todo/detail?guid={guid}",
             "creator": {"id": "cli_fake", "type": "app"}}
        if t["completed_at"] != "0":
            t["status"] = "done"
        self._tasks[guid] = t
        if token:
            self._task_tokens[token] = guid
        return {"code": 0, "msg": "success", "data": {"task": self._public(t)}}

    def _api_task_get(self, guid: str, *, query: dict, body: dict) -> dict:
        self._need("task:task:read", "task:task:write")
        return {"code": 0, "msg": "success", "data": {"task": self._public(self._live(guid))}}

    def _api_task_patch(self, guid: str, *, query: dict, body: dict) -> dict:
        self._need("task:task:write")
        t = self._live(guid)
        fields = body.get("update_fields")
        task = body.get("task")
        if not isinstance(fields, list) or not fields or not isinstance(task, dict):
            raise self._bad("task and update_fields are required")
        for f in fields:
            if f not in TASK_PATCHABLE:
                raise self._bad(f"field {f!r} cannot be updated")
        for f in fields:
            if f in ("start", "due"):
                t[f] = self._time(task.get(f), f)
            elif f == "completed_at":
                value = str(task.get("completed_at") or "0")
                t["completed_at"], t["status"] = value, ("todo" if value == "0" else "done")
            else:
                t[f] = task.get(f)
        self._touch(t)
        return {"code": 0, "msg": "success", "data": {"task": self._public(t)}}

    def _api_task_add_members(self, guid: str, *, query: dict, body: dict) -> dict:
        self._need("task:task:write", "task:personnel:writeonly")
        t = self._live(guid)
        token = body.get("client_token")
        if not (token and token in self._member_tokens):
            have = {(m["id"], m["role"]) for m in t["members"]}
            for m in self._members(body.get("members")):
                if (m["id"], m["role"]) not in have:  # members already there are ignored
                    t["members"].append(m)
            self._touch(t)
            if token:
                self._member_tokens.add(token)
        return {"code": 0, "msg": "success", "data": {"task": self._public(t)}}

    def _api_task_remove_members(self, guid: str, *, query: dict, body: dict) -> dict:
        self._need("task:task:write", "task:personnel:writeonly")
        t = self._live(guid)
        gone = {(m["id"], m["role"]) for m in self._members(body.get("members"))}
        t["members"] = [m for m in t["members"] if (m["id"], m["role"]) not in gone]
        self._touch(t)
        return {"code": 0, "msg": "success", "data": {"task": self._public(t)}}
