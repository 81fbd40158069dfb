"""多维表格 (bitable v1) in the fake: bases, tables with typed fields, records — stateful, with the
documented shapes and limits (docs/feishu-tasks-bitable.md): `data.app{app_token, default_table_id,
url}`, `data{table_id, field_id_list}`, batch_create / batch_update of at most 1,000 records,
`client_token` (a uuid) making batch_create idempotent, search pages of at most 500 with
`page_token` / `has_more`, `automatic_fields` giving `last_modified_by` / `last_modified_time`,
20/min on base creation and 20/s on search, and 99991672 (`bitable:app`) when the scope is missing.

Test controls: `bases()`, `base(app_token)`, `records(app_token, table_name)`,
`user_edit_record(app_token, table_id, record_id, fields, open_id)`, `user_delete_record(...)`.
"""
from __future__ import annotations

import asyncio
import re
import uuid as _uuid
from typing import Any

RECORDS_MAX = 1000           # batch_create / batch_update, documented
SEARCH_PAGE_MAX = 500        # records/search page_size, documented
TABLES_MAX = 100             # tables + dashboards per base, documented
NAME_MAX = 255               # base name, documented
BITABLE_SCOPES = ("bitable:app",)
RECORD_NOT_FOUND = 1254043   # approx. (RecordIdNotFound)
BITABLE_INVALID = 1254000    # approx. (WrongRequestBody)
BASE_NOT_FOUND = 1254040     # approx. (AppTokenNotFound)
TABLE_NOT_FOUND = 1254041    # approx. (TableIdNotFound)
FIELD_TYPES = frozenset({1, 2, 3, 4, 5, 7, 11, 13, 15, 17, 18, 20, 21, 22, 23, 1001, 1002, 1003, 1004, 1005})
BITABLE_PER_MINUTE = {"bitable_app_create": 20}
BITABLE_PER_SECOND = {"bitable_app_create": 20, "bitable_table_create": 10, "bitable_field_create": 10,
                      "bitable_records_search": 20}

_APP = r"^/open-apis/bitable/v1/apps"
_WRITE = re.compile(_APP + r"/([^/]+)/tables(?:/[^/]+/(?:fields|records/batch_create|records/batch_update))?$")
BITABLE_ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("POST", re.compile(_APP + r"$"), "bitable_app_create"),
    ("POST", re.compile(_APP + r"/([^/]+)/tables$"), "bitable_table_create"),
    ("POST", re.compile(_APP + r"/([^/]+)/tables/([^/]+)/fields$"), "bitable_field_create"),
    ("POST", re.compile(_APP + r"/([^/]+)/tables/([^/]+)/records/batch_create$"), "bitable_records_create"),
    ("POST", re.compile(_APP + r"/([^/]+)/tables/([^/]+)/records/batch_update$"), "bitable_records_update"),
    ("POST", re.compile(_APP + r"/([^/]+)/tables/([^/]+)/records/search$"), "bitable_records_search"),
]


class BitableMixin:
    """Mixed into FakeFeishu (which provides _now, _need, _bad, _ms and the lock)."""

    _bases: dict[str, dict]
    _record_tokens: dict[str, list[str]]
    _ids_bitable: int

    def _init_bitable(self) -> None:
        self._bases = {}
        self._record_tokens = {}     # client_token -> record ids made the first time
        self._ids_bitable = 0
        self._write_hold = 0.0
        self._writing: dict[str, int] = {}
        self.write_peak = 0                              # writes in flight at once, any bases
        self.write_overlaps: list[tuple[str, str]] = []  # (app_token, path): began while one to that base ran

    # ---------------------------------------------------------------- write instrumentation
    def hold_writes(self, seconds: float) -> None:
        """Keep every write to a base (tables, fields, batch_create / batch_update) in flight for
        `seconds` before it takes effect (async handler only), recording writes that overlap."""
        self._write_hold = seconds

    def written_base(self, request: Any) -> str | None:
        """The base a request writes to, when writes are being held; else None."""
        if not self._write_hold or request.method != "POST":
            return None
        match = _WRITE.match(request.url.path)
        return match.group(1) if match else None

    async def held_write(self, app_token: str, path: str) -> None:
        """A write's time in flight, before the fake applies it."""
        if self._writing.get(app_token):
            self.write_overlaps.append((app_token, path))
        self._writing[app_token] = self._writing.get(app_token, 0) + 1
        self.write_peak = max(self.write_peak, sum(self._writing.values()))
        try:
            await asyncio.sleep(self._write_hold)
        finally:
            self._writing[app_token] -= 1

    # ---------------------------------------------------------------- test controls
    def bases(self) -> list[dict]:
        return list(self._bases.values())

    def base(self, app_token: str) -> dict:
        return self._bases[app_token]

    def table_named(self, app_token: str, name: str) -> dict:
        [table] = [t for t in self._bases[app_token]["tables"].values() if t["name"] == name]
        return table

    def records(self, app_token: str, table_name: str) -> list[dict]:
        """The live records of a table, oldest first: {"record_id", "fields", ...}."""
        table = self.table_named(app_token, table_name)
        return [r for r in table["records"].values() if not r.get("_deleted")]

    def user_edit_record(self, app_token: str, table_id: str, record_id: str, fields: dict, open_id: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            rec = self._bases[app_token]["tables"][table_id]["records"][record_id]
            rec["fields"].update(fields)
            self._stamp(rec, open_id)

    def user_delete_record(self, app_token: str, table_id: str, record_id: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self._bases[app_token]["tables"][table_id]["records"][record_id]["_deleted"] = True

    # ---------------------------------------------------------------- internals
    def _next(self, prefix: str) -> str:
        self._ids_bitable += 1
        return f"{prefix}{self._ids_bitable:08d}{_uuid.uuid4().hex[:6]}"

    def _stamp(self, rec: dict, open_id: str) -> None:
        ms = max(self._ms(), rec.get("last_modified_time", 0) + 1)  # type: ignore[attr-defined]
        rec["last_modified_time"] = ms
        rec["last_modified_by"] = {"id": open_id}

    def _table(self, app_token: str, table_id: str) -> dict:
        base = self._bases.get(app_token)
        if base is None:
            raise self._bad("app_token not found", BASE_NOT_FOUND, 404)  # type: ignore[attr-defined]
        table = base["tables"].get(table_id)
        if table is None:
            raise self._bad("table_id not found", TABLE_NOT_FOUND, 404)  # type: ignore[attr-defined]
        return table

    def _field_list(self, raw: Any) -> list[dict]:
        if not isinstance(raw, list):
            raise self._bad("fields must be a list", BITABLE_INVALID)  # type: ignore[attr-defined]
        out = []
        for f in raw:
            if not isinstance(f, dict) or not isinstance(f.get("field_name"), str) or f.get("type") not in FIELD_TYPES:
                raise self._bad("each field needs field_name and a known type", BITABLE_INVALID)  # type: ignore[attr-defined]
            out.append({"field_id": self._next("fld"), "field_name": f["field_name"], "type": f["type"],
                        "property": f.get("property")})
        return out

    def _check_values(self, table: dict, fields: Any) -> dict:
        if not isinstance(fields, dict):
            raise self._bad("fields must be an object", BITABLE_INVALID)  # type: ignore[attr-defined]
        types = {f["field_name"]: f for f in table["fields"]}
        for name, value in fields.items():
            field = types.get(name)
            if field is None:
                raise self._bad(f"FieldNameNotFound: {name}", BITABLE_INVALID)  # type: ignore[attr-defined]
            kind = field["type"]
            if value is None:
                continue
            ok = {1: isinstance(value, str), 2: isinstance(value, (int, float)), 5: isinstance(value, int),
                  3: isinstance(value, str),
                  11: isinstance(value, list) and all(isinstance(p, dict) and str(p.get("id", "")).startswith("ou_")
                                                      for p in value)}.get(kind, True)
            if kind == 3 and ok:
                options = [o["name"] for o in (field.get("property") or {}).get("options") or []]
                if options and value not in options:   # the fake keeps select options fixed
                    ok = False
            if not ok:
                raise self._bad(f"field {name!r} has a value of the wrong type", BITABLE_INVALID)  # type: ignore[attr-defined]
        return dict(fields)

    def _batch(self, body: dict) -> list:
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise self._bad("records is required", BITABLE_INVALID)  # type: ignore[attr-defined]
        if len(records) > RECORDS_MAX:
            raise self._bad(f"at most {RECORDS_MAX} records per request", BITABLE_INVALID)  # type: ignore[attr-defined]
        return records

    @staticmethod
    def _record_out(rec: dict, automatic: bool = False) -> dict:
        out = {"record_id": rec["record_id"], "fields": dict(rec["fields"])}
        if automatic:
            out["last_modified_by"] = rec.get("last_modified_by")
            out["last_modified_time"] = rec.get("last_modified_time")
        return out

    # ---------------------------------------------------------------- endpoints
    def _api_bitable_app_create(self, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES, "base:app:create")  # type: ignore[attr-defined]
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            raise self._bad(f"name is required, at most {NAME_MAX} characters", BITABLE_INVALID)  # type: ignore[attr-defined]
        token = self._next("bas")
        default = self._next("tbl")
        self._bases[token] = {
            "app_token": token, "name": name, "folder_token": str(body.get("folder_token") or ""),
            "url": f"https://example.feishu.cn/base/{token}", "default_table_id": default,
            "time_zone": str(body.get("time_zone") or "Asia/Shanghai"),
            "tables": {default: {"table_id": default, "name": "数据表", "fields": [
                {"field_id": self._next("fld"), "field_name": "多行文本", "type": 1, "property": None}],
                "records": {}}}}
        return {"code": 0, "msg": "success", "data": {"app": {k: v for k, v in self._bases[token].items()
                                                                if k != "tables"}}}

    def _api_bitable_table_create(self, app_token: str, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES)  # type: ignore[attr-defined]
        base = self._bases.get(app_token)
        if base is None:
            raise self._bad("app_token not found", BASE_NOT_FOUND, 404)  # type: ignore[attr-defined]
        spec = body.get("table")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise self._bad("table.name is required", BITABLE_INVALID)  # type: ignore[attr-defined]
        if len(base["tables"]) >= TABLES_MAX:
            raise self._bad("too many tables", BITABLE_INVALID)  # type: ignore[attr-defined]
        if any(t["name"] == spec["name"] for t in base["tables"].values()):
            raise self._bad("TableNameDuplicated", BITABLE_INVALID)  # type: ignore[attr-defined]
        fields = self._field_list(spec.get("fields") or [])
        table_id = self._next("tbl")
        base["tables"][table_id] = {"table_id": table_id, "name": spec["name"], "fields": fields, "records": {}}
        return {"code": 0, "msg": "success", "data": {"table_id": table_id, "default_view_id": self._next("vew"),
                                                      "field_id_list": [f["field_id"] for f in fields]}}

    def _api_bitable_field_create(self, app_token: str, table_id: str, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES)  # type: ignore[attr-defined]
        table = self._table(app_token, table_id)
        [field] = self._field_list([body])
        table["fields"].append(field)
        return {"code": 0, "msg": "success", "data": {"field": field}}

    def _api_bitable_records_create(self, app_token: str, table_id: str, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES, "base:record:create")  # type: ignore[attr-defined]
        table = self._table(app_token, table_id)
        token = query.get("client_token")
        if token:
            try:
                _uuid.UUID(token)
            except ValueError:
                raise self._bad("client_token must be a uuid", BITABLE_INVALID) from None  # type: ignore[attr-defined]
            if token in self._record_tokens:   # idempotent: the records made the first time
                made = [table["records"][r] for r in self._record_tokens[token] if r in table["records"]]
                return {"code": 0, "msg": "success", "data": {"records": [self._record_out(r) for r in made]}}
        records = self._batch(body)
        values = [self._check_values(table, (r or {}).get("fields")) for r in records]
        made = []
        for fields in values:
            rec = {"record_id": self._next("rec"), "fields": fields}
            self._stamp(rec, "cli_fake")
            table["records"][rec["record_id"]] = rec
            made.append(rec)
        if token:
            self._record_tokens[token] = [r["record_id"] for r in made]
        return {"code": 0, "msg": "success", "data": {"records": [self._record_out(r) for r in made]}}

    def _api_bitable_records_update(self, app_token: str, table_id: str, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES, "base:record:update")  # type: ignore[attr-defined]
        table = self._table(app_token, table_id)
        records = self._batch(body)
        checked = []
        for r in records:   # all or nothing, as the batch call is
            rid = (r or {}).get("record_id")
            rec = table["records"].get(rid)
            if rec is None or rec.get("_deleted"):
                raise self._bad(f"RecordIdNotFound: {rid}", RECORD_NOT_FOUND)  # type: ignore[attr-defined]
            checked.append((rec, self._check_values(table, r.get("fields"))))
        for rec, fields in checked:
            rec["fields"].update(fields)
            self._stamp(rec, "cli_fake")
        return {"code": 0, "msg": "success", "data": {"records": [self._record_out(r) for r, _ in checked]}}

    def _api_bitable_records_search(self, app_token: str, table_id: str, *, query: dict, body: dict) -> dict:
        self._need(*BITABLE_SCOPES, "bitable:app:readonly", "base:record:retrieve")  # type: ignore[attr-defined]
        table = self._table(app_token, table_id)
        try:
            size = int(query.get("page_size") or 20)
        except ValueError:
            size = -1
        if not 1 <= size <= SEARCH_PAGE_MAX:
            raise self._bad(f"page_size must be 1..{SEARCH_PAGE_MAX}", BITABLE_INVALID)  # type: ignore[attr-defined]
        live = [r for r in table["records"].values() if not r.get("_deleted")]
        start = int(query.get("page_token") or 0)
        page = live[start:start + size]
        more = start + size < len(live)
        auto = bool(body.get("automatic_fields"))
        data: dict[str, Any] = {"items": [self._record_out(r, auto) for r in page], "has_more": more,
                                "total": len(live)}
        if more:
            data["page_token"] = str(start + size)
        return {"code": 0, "msg": "success", "data": data}
