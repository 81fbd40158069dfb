"""A case's 《进度跟踪表》 as a 多维表格 board (bitable), kept in sync both ways, and the tenant's
《协作问题总览》 (one row per case).

Runs as an outbox op (outbox.SyncFeishu, target "board") in the case's chat chain, so one writer
per case (and so per base) at a time across processes; a crash mid-run is simply run again. The
overview base is shared by every case of the tenant: a case's sync only queues its row's write in
the tenant's overview chain (OVERVIEW_CHAIN), which the outbox runs one write at a time:

  push  the base (named after the case) with tables 任务 / 风险 / 关键节点 is created once; every
        item becomes a record (batch_create, ≤1,000 a call, a uuid client_token derived from our
        key and stored before the call, so a lost answer asked again returns the same records);
        later changes are written with batch_update, only the records whose values changed.
  poll  (the scheduler asks every minute while the case is in step 5) one records search of 任务
        (≤500 a page): a change of 状态 / 完成率 / 滞后原因 / 调整措施 made in the board goes to
        `apply_edit` (handlers.tracking) with the record's last_modified_by, which runs the
        card update's checks; a refused edit is written back over and told once in the group.

A record deleted in the board is marked, told to the lead once and never re-created. A missing
scope (99991672) pauses the case's board and tells the lead once which scope to add.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import outbox, texts
from bot.clock import Clock
from bot.feishu import RECORD_NOT_FOUND_CODE, MissingScope, Permanent
from bot.lagging import is_lagging
from bot.models import Case, FeishuBoard, FeishuBoardRow, FeishuOverview, Outbox, Task
from bot.repository import audit, nodes_of, risks_of, tasks_of
from bot.sync_common import CaseSnapshot, CaseSyncer, SyncFeature, at_mention, ms, notice_in, syncing_case
from bot.workflow import Step

log = logging.getLogger(__name__)

TARGET = "board"
FEATURE = SyncFeature(setting="feishu_board", model=FeishuBoard, target=TARGET, notice_key="board",
                      default_scope="bitable:app", scope_missing=texts.BOARD_SCOPE_MISSING, failed=texts.BOARD_FAILED,
                      log=log, what="board sync", poll_key="bdpoll", poll_word="board",
                      new_row=lambda: {"tables": {}, "url": ""})
BATCH_MAX = 1000          # batch_create / batch_update, documented
PAGE_MAX = 500            # records/search, documented
OVERVIEW = "overview"
# The outbox chain (a chat id no Feishu chat has) that carries every overview write of a tenant:
# the outbox runs one row of a chain at a time across processes, so the shared base has one writer.
OVERVIEW_CHAIN = "~board-overview"
EDITABLE = ("状态", "完成率", "滞后原因", "调整措施")

# field types (platform.md §7): 1 text, 2 number, 3 single select, 5 date (ms), 7 checkbox, 11 person
def _select(*names: str) -> dict:
    return {"options": [{"name": n} for n in names]}


STATUS_NAMES = tuple(texts.TASK_STATUS_LABELS.values())
TABLES: dict[str, tuple[str, list[dict]]] = {
    "task": (texts.BOARD_TABLE_TASKS, [
        {"field_name": "任务", "type": 1}, {"field_name": "编号", "type": 2},
        {"field_name": "负责人", "type": 11}, {"field_name": "状态", "type": 3, "property": _select(*STATUS_NAMES)},
        {"field_name": "完成率", "type": 2}, {"field_name": "开始", "type": 5}, {"field_name": "截止", "type": 5},
        {"field_name": "滞后", "type": 7}, {"field_name": "滞后原因", "type": 1}, {"field_name": "调整措施", "type": 1},
        {"field_name": "交付标准", "type": 1}]),
    "risk": (texts.BOARD_TABLE_RISKS, [
        {"field_name": "风险", "type": 1}, {"field_name": "可能性", "type": 3, "property": _select("高", "中", "低")},
        {"field_name": "影响", "type": 3, "property": _select("高", "中", "低")},
        {"field_name": "应对措施", "type": 1}, {"field_name": "负责人", "type": 11},
        {"field_name": "状态", "type": 3, "property": _select(*(v[0] for v in texts.RISK_STATUS.values()))}]),
    "node": (texts.BOARD_TABLE_NODES, [{"field_name": "节点", "type": 1}, {"field_name": "时间", "type": 5}]),
}
OVERVIEW_FIELDS = [
    {"field_name": "协作问题", "type": 1}, {"field_name": "群", "type": 1}, {"field_name": "阶段", "type": 1},
    {"field_name": "负责人", "type": 11}, {"field_name": "滞后任务", "type": 2},
    {"field_name": "下一个关键节点", "type": 1}, {"field_name": "看板", "type": 1}]

# (session, case, task_id, editor, remote values, now) -> None when applied, else why it was refused
ApplyEdit = Callable[[Session, Case, int, str, dict[str, Any], datetime], "str | None"]


def records_token(tenant_key: str, case_id: int, kind: str, item_ids: list[int]) -> str:
    """Ours, stable, a uuid (batch_create wants one): the same items always ask with the same token."""
    digest = hashlib.sha256(f"{tenant_key}|{case_id}|{kind}|{sorted(item_ids)}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _hm(at_ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz).strftime("%m-%d %H:%M")


def _person(open_id: str) -> list[dict]:
    return [{"id": open_id}] if open_id.startswith("ou_") else []


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def plain(value: Any) -> Any:
    """A value as records/search returns it, made comparable with what we wrote: text fields come
    back as a list of segments, numbers as floats."""
    if isinstance(value, list) and all(isinstance(v, dict) and "text" in v for v in value):
        return "".join(str(v.get("text") or "") for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    item_id: int
    token: str
    record_id: str | None
    digest: str
    pushed: dict
    deleted: bool


@dataclass(frozen=True)
class Snapshot(CaseSnapshot):
    app_token: str | None
    url: str
    tables: dict[str, str]
    wants: dict[str, dict[int, dict]]        # kind -> item id -> fields
    rows: dict[tuple[str, int], Row]
    labels: dict[int, str]                   # task id -> "#seq content", for the notices


def wants_of(session: Session, case: Case, now: datetime, on_board: set[int]
             ) -> tuple[dict[str, dict[int, dict]], dict[int, str]]:
    """What each record should say now. A task dropped by an approved change keeps its record,
    marked 【已取消】 (one dropped before it reached the board never goes there)."""
    tz = ZoneInfo(case.timezone)
    shown = [t for t in tasks_of(session, case, include_dropped=True) if not t.dropped or t.id in on_board]
    tasks = {t.id: {"任务": (texts.FTASK_CANCELLED_PREFIX if t.dropped else "") + t.content, "编号": t.seq,
                    "负责人": _person(t.owner_open_id),
                    "状态": texts.TASK_STATUS_LABELS[t.status], "完成率": t.progress,
                    "开始": ms(t.start_at), "截止": ms(t.due_at), "滞后": is_lagging(t, now, tz=tz),
                    "滞后原因": t.lag_reason, "调整措施": t.adjustment, "交付标准": t.delivery_standard}
             for t in shown}
    risks = {r.id: {"风险": r.risk, "可能性": texts.LEVEL_LABELS[r.likelihood], "影响": texts.LEVEL_LABELS[r.impact],
                    "应对措施": r.response, "负责人": _person(r.owner_open_id),
                    "状态": texts.RISK_STATUS[r.status][0]}
             for r in risks_of(session, case)}
    nodes = {n.id: {"节点": n.name, "时间": ms(n.at)} for n in nodes_of(session, case)}
    labels = {t.id: f"#{t.seq}「{t.content[:40]}」" for t in shown}
    return {"task": tasks, "risk": risks, "node": nodes}, labels


def overview_of(session: Session, case: Case, board_url: str, now: datetime) -> dict:
    tz = ZoneInfo(case.timezone)
    lagging = sum(1 for t in tasks_of(session, case) if is_lagging(t, now, tz=tz))
    upcoming = [n for n in nodes_of(session, case) if n.at >= now]
    nxt = f"{upcoming[0].name} {upcoming[0].at.astimezone(tz):%m-%d}" if upcoming else ""
    return {"协作问题": case.title, "群": case.chat_id, "阶段": texts.STEP_SHORT.get(int(case.step), ""),
            "负责人": _person(case.lead_open_id), "滞后任务": lagging, "下一个关键节点": nxt, "看板": board_url}


class BoardSync(CaseSyncer):
    feature = FEATURE

    def __init__(self, factory: sessionmaker[Session], client: Any, clock: Clock, *,
                 apply_edit: ApplyEdit) -> None:
        super().__init__(factory, client, clock)
        self.apply_edit = apply_edit

    # ------------------------------------------------------------------ entry point (a syncer)
    async def __call__(self, row: Outbox, op: outbox.SyncFeishu) -> None:
        if row.chat_id == OVERVIEW_CHAIN:
            await self._write_overview(row, op)
            return
        snap = await asyncio.to_thread(self._load, op.case_id, row.tenant_key, row.chat_id)
        if snap is None:
            return
        async with self._failures_told_to_lead(snap):
            if op.poll and snap.step == Step.EXECUTION and snap.app_token and "task" in snap.tables:
                await self._poll(snap)
                snap = await asyncio.to_thread(self._load, op.case_id, row.tenant_key, row.chat_id) or snap
            snap = await self._ensure_base(snap)
            for kind in TABLES:
                await self._push(snap, kind)
            await asyncio.to_thread(self._plan_overview, snap, row.id)

    # ------------------------------------------------------------------------------- overview chain
    async def _write_overview(self, row: Outbox, op: outbox.SyncFeishu) -> None:
        """One case's row of the overview, run in the tenant's overview chain: one writer of that
        base at a time, however many cases change at once, and none of them waits for it."""
        snap = await asyncio.to_thread(self._load_for_overview, op.case_id, row.tenant_key)
        if snap is None:
            return
        try:
            await self._overview(snap)
        except MissingScope as exc:
            await self._paused(snap.case_id, exc)
        except Permanent as exc:   # not the lead's concern: planned again on the case's next sync
            log.warning("overview row of case %s not written: %s", snap.case_id, exc)

    def _load_for_overview(self, case_id: int, tenant_key: str) -> Snapshot | None:
        with self.factory() as session:
            case = session.get(Case, case_id)
            chat_id = None if case is None or case.tenant_key != tenant_key else case.chat_id
        return None if chat_id is None else self._load(case_id, tenant_key, chat_id)

    def _plan_overview(self, snap: Snapshot, source_row: int) -> None:
        """Queue the case's overview row in the tenant's overview chain when it says something new;
        one queued (not yet started) write of the case is enough: it reads the case when it runs."""
        row = snap.rows.get((OVERVIEW, snap.case_id))
        if row is not None and row.deleted:
            return
        with self.factory() as session, session.begin():
            case = session.get(Case, snap.case_id)
            if case is None:
                return
            fields = overview_of(session, case, snap.url, self.clock.now())
            if row is not None and row.record_id is not None and row.digest == _digest(fields):
                return
            queued = session.scalar(select(Outbox.id).where(
                Outbox.tenant_key == snap.tenant_key, Outbox.chat_id == OVERVIEW_CHAIN,
                Outbox.case_id == snap.case_id, Outbox.status == "pending").limit(1))
            if queued is not None:
                return
            outbox.enqueue_ops(session, tenant_key=snap.tenant_key, chat_id=OVERVIEW_CHAIN,
                               key=f"overview-{snap.case_id}-{source_row}", now=self.clock.now(),
                               ops=[outbox.SyncFeishu(TARGET, snap.case_id)], case_id=snap.case_id,
                               priority=outbox.Priority.BULK)

    # ------------------------------------------------------------------------------- reading
    def _load(self, case_id: int, tenant_key: str, chat_id: str) -> Snapshot | None:
        with self.factory() as session:
            found = syncing_case(session, FeishuBoard, case_id, tenant_key, chat_id)
            if found is None:
                return None
            case, board = found
            rows = {(r.kind, r.item_id): Row(r.id, r.kind, r.item_id, r.token, r.record_id, r.pushed_hash,
                                              dict(r.pushed or {}), r.deleted_at is not None)
                    for r in session.scalars(select(FeishuBoardRow).where(FeishuBoardRow.case_id == case.id))}
            wants, labels = wants_of(session, case, self.clock.now(),
                                     {i for (k, i), r in rows.items() if k == "task" and r.token})
            return Snapshot(case.id, case.tenant_key, case.chat_id, case.title, case.lead_open_id, case.step,
                            board.app_token, board.url, dict(board.tables or {}), wants, rows, labels)

    # ------------------------------------------------------------------------------- the base
    async def _ensure_base(self, snap: Snapshot) -> Snapshot:
        """The base and its three tables, each created once and its id stored at once (base create
        has no client_token: a lost answer can leave one empty base in Feishu, never two boards)."""
        app_token, tables = snap.app_token, dict(snap.tables)
        if app_token is None:
            app = await self.client.create_base(texts.BOARD_BASE_NAME.format(title=snap.title)[:255])
            app_token = str(app["app_token"])
            await asyncio.to_thread(self._save_base, snap, app_token, str(app.get("url") or ""), tables)
        for kind, (name, fields) in TABLES.items():
            if kind not in tables:
                tables[kind] = await self.client.create_table(app_token, name, fields)
                await asyncio.to_thread(self._save_base, snap, app_token, None, tables)
        return Snapshot(**{**snap.__dict__, "app_token": app_token, "tables": tables})

    # ------------------------------------------------------------------------------- pushing
    async def _push(self, snap: Snapshot, kind: str) -> None:
        assert snap.app_token is not None
        table = snap.tables[kind]
        wants = snap.wants[kind]
        # creates: first the batches asked before whose answer we never stored (same token, same items)
        pending: dict[str, list[int]] = {}
        for item_id in wants:
            row = snap.rows.get((kind, item_id))
            if row is None or (row.record_id is None and not row.token):
                pending.setdefault("", []).append(item_id)
            elif row.record_id is None and not row.deleted:
                pending.setdefault(row.token, []).append(item_id)
        fresh = pending.pop("", [])
        for i in range(0, len(fresh), BATCH_MAX):
            chunk = fresh[i:i + BATCH_MAX]
            token = records_token(snap.tenant_key, snap.case_id, kind, chunk)
            await asyncio.to_thread(self._reserve, snap, kind, chunk, token)
            pending[token] = chunk
        for token, items in pending.items():
            made = await self.client.create_records(snap.app_token, table, [wants[i] for i in items],
                                                    client_token=token)
            await asyncio.to_thread(self._save_created, snap, kind, items, made, [wants[i] for i in items])
        # updates: only what changed since we last wrote it
        changed = [(row, wants[row.item_id]) for (k, _i), row in snap.rows.items()
                   if k == kind and row.record_id and not row.deleted and row.item_id in wants
                   and row.digest != _digest(wants[row.item_id])]
        for i in range(0, len(changed), BATCH_MAX):
            batch = changed[i:i + BATCH_MAX]
            try:
                await self.client.update_records(snap.app_token, table, [
                    {"record_id": row.record_id, "fields": fields} for row, fields in batch])
            except Permanent as exc:
                if exc.code != RECORD_NOT_FOUND_CODE:
                    raise
                # one of them was deleted in the board: find which, mark them, write the rest next time
                await self._find_deleted(snap, kind)
                continue
            await asyncio.to_thread(self._save_updated, [(row.id, fields) for row, fields in batch])

    async def _find_deleted(self, snap: Snapshot, kind: str) -> dict[str, dict]:
        """Every live record of the table (paged); rows of ours that are not there were deleted."""
        assert snap.app_token is not None
        live: dict[str, dict] = {}
        token: str | None = None
        while True:
            page = await self.client.search_records(snap.app_token, snap.tables[kind], page_size=PAGE_MAX,
                                                    page_token=token)
            for item in page.get("items") or []:
                live[str(item.get("record_id"))] = item
            token = page.get("page_token")
            if not page.get("has_more") or not token:
                break
        gone = [row for (k, _i), row in snap.rows.items()
                if k == kind and row.record_id and not row.deleted and row.record_id not in live]
        if gone:
            await asyncio.to_thread(self._gone, snap, gone)
        return live

    # ------------------------------------------------------------------------------- polling
    async def _poll(self, snap: Snapshot) -> None:
        live = await self._find_deleted(snap, "task")
        by_record = {row.record_id: row for (k, _i), row in snap.rows.items()
                     if k == "task" and row.record_id and not row.deleted}
        for record_id, item in live.items():
            row = by_record.get(record_id)
            if row is None or row.item_id not in snap.wants["task"]:
                continue
            fields = item.get("fields") or {}
            remote = {name: plain(fields.get(name)) for name in EDITABLE}
            remote = {k: ("" if v is None else v) for k, v in remote.items()}
            if all(remote[k] == row.pushed.get(k, "") for k in EDITABLE):
                continue
            editor = str(((item.get("last_modified_by") or {}).get("id")) or "")
            modified = int(item.get("last_modified_time") or 0)
            await asyncio.to_thread(self._take_edit, snap, row, editor, remote, modified)

    def _take_edit(self, snap: Snapshot, row: Row, editor: str, remote: dict, modified: int) -> None:
        now = self.clock.now()
        with self.factory() as session, session.begin():
            case, stored = session.get(Case, snap.case_id), session.get(FeishuBoardRow, row.id)
            task = session.get(Task, row.item_id)
            if case is None or stored is None or stored.deleted_at is not None or task is None:
                return
            if modified and modified < ms(task.updated_at):
                # changed in the group after the board edit: the later change wins, the push writes
                # it over the board's, and the audit trail says so
                stored.pushed_hash = ""
                stored.remote_modified_ms = max(stored.remote_modified_ms or 0, modified)
                stored.pushed = {**(stored.pushed or {}), **remote}
                tz = ZoneInfo(case.timezone)
                audit(session, case, tenant_key=case.tenant_key, chat_id=case.chat_id, actor="feishu",
                      action="board.conflict", now=now, detail=texts.AUDIT_BOARD_CONFLICT.format(
                          seq=task.seq, bot=_hm(ms(task.updated_at), tz), remote=_hm(modified, tz)))
                return
            refused = self.apply_edit(session, case, row.item_id, editor, remote, now)
            stored.remote_modified_ms = max(stored.remote_modified_ms or 0, modified)
            if refused is None:
                # the board already says it: remember it as written, the push writes what follows from it
                stored.pushed = {**(stored.pushed or {}), **remote}
                stored.pushed_hash = ""
                return
            # refused: the push writes the bot's values back over it; said once per edit
            stored.pushed_hash = ""
            label = snap.labels.get(row.item_id, "")
            notice_in(session, case, now, f"board-refused:{row.id}:{modified}", texts.BOARD_EDIT_REFUSED.format(
                who=at_mention(editor) or texts.BOARD_SOMEONE, task=label, why=refused))

    # ------------------------------------------------------------------------------- overview
    async def _overview(self, snap: Snapshot) -> None:
        """The tenant's 《协作问题总览》: created by the first case that claims it (a unique row per
        tenant, so two cases never make two bases), then one record per case."""
        claim = await asyncio.to_thread(self._claim_overview, snap)
        if claim is None:
            return
        app_token, table_id = claim
        if app_token is None:
            app = await self.client.create_base(texts.BOARD_OVERVIEW_NAME)
            app_token = str(app["app_token"])
            await asyncio.to_thread(self._save_overview, snap, app_token, None, str(app.get("url") or ""))
        if table_id is None:
            table_id = await self.client.create_table(app_token, texts.BOARD_OVERVIEW_TABLE, OVERVIEW_FIELDS)
            await asyncio.to_thread(self._save_overview, snap, app_token, table_id, None)
        fields = await asyncio.to_thread(self._overview_fields, snap)
        if fields is None:
            return
        row = snap.rows.get((OVERVIEW, snap.case_id))
        if row is not None and row.deleted:
            return
        if row is None or row.record_id is None:
            token = row.token if row is not None and row.token else records_token(
                snap.tenant_key, snap.case_id, OVERVIEW, [snap.case_id])
            await asyncio.to_thread(self._reserve, snap, OVERVIEW, [snap.case_id], token)
            made = await self.client.create_records(app_token, table_id, [fields], client_token=token)
            await asyncio.to_thread(self._save_created, snap, OVERVIEW, [snap.case_id], made, [fields])
        elif row.digest != _digest(fields):
            try:
                await self.client.update_records(app_token, table_id, [{"record_id": row.record_id, "fields": fields}])
            except Permanent as exc:
                if exc.code != RECORD_NOT_FOUND_CODE:
                    raise
                await asyncio.to_thread(self._gone, snap, [row])
                return
            await asyncio.to_thread(self._save_updated, [(row.id, fields)])

    def _claim_overview(self, snap: Snapshot) -> tuple[str | None, str | None] | None:
        """(app_token, table_id) to use (None: not made yet), or None if the tenant's row appeared
        a moment ago (it cannot in the one-writer chain; kept for safety)."""
        now = self.clock.now()
        try:
            with self.factory() as session, session.begin():
                ov = session.scalar(select(FeishuOverview).where(FeishuOverview.tenant_key == snap.tenant_key))
                if ov is None:
                    session.add(FeishuOverview(tenant_key=snap.tenant_key, claimed_by_case=snap.case_id,
                                               claimed_at=now, url=""))
                    return None, None
                if ov.table_id is not None:
                    return ov.app_token, ov.table_id
                # the overview chain has one writer at a time: a create cut off by a crash is
                # carried on by whichever case writes next
                ov.claimed_by_case, ov.claimed_at = snap.case_id, now
                return ov.app_token, ov.table_id
        except IntegrityError:
            return None   # another case claimed it a moment ago; its row appears on the next sync

    def _save_overview(self, snap: Snapshot, app_token: str, table_id: str | None, url: str | None) -> None:
        with self.factory() as session, session.begin():
            ov = session.scalar(select(FeishuOverview).where(FeishuOverview.tenant_key == snap.tenant_key))
            if ov is None:
                return
            ov.app_token = ov.app_token or app_token
            if table_id is not None:
                ov.table_id = ov.table_id or table_id
            if url is not None:
                ov.url = url

    def _overview_fields(self, snap: Snapshot) -> dict | None:
        with self.factory() as session:
            case = session.get(Case, snap.case_id)
            return None if case is None else overview_of(session, case, snap.url, self.clock.now())

    # ------------------------------------------------------------------------------- writing
    def _save_base(self, snap: Snapshot, app_token: str, url: str | None, tables: dict[str, str]) -> None:
        with self.factory() as session, session.begin():
            board = session.scalar(select(FeishuBoard).where(FeishuBoard.case_id == snap.case_id))
            case = session.get(Case, snap.case_id)
            if board is None or case is None:
                return
            if board.app_token is None:   # the lead gets the link once
                notice_in(session, case, self.clock.now(), f"board-ready:{board.id}",
                          texts.BOARD_READY.format(lead=at_mention(case.lead_open_id), url=url or ""))
            board.app_token = board.app_token or app_token
            if url is not None:
                board.url = url
            board.tables = {**tables, **(board.tables or {})}

    def _reserve(self, snap: Snapshot, kind: str, items: list[int], token: str) -> None:
        """The token goes to the rows before the call: a lost answer is asked again with it."""
        with self.factory() as session, session.begin():
            for item_id in items:
                row = session.scalar(select(FeishuBoardRow).where(
                    FeishuBoardRow.case_id == snap.case_id, FeishuBoardRow.kind == kind,
                    FeishuBoardRow.item_id == item_id))
                if row is None:
                    session.add(FeishuBoardRow(tenant_key=snap.tenant_key, chat_id=snap.chat_id,
                                               case_id=snap.case_id, kind=kind, item_id=item_id, token=token))
                elif row.record_id is None:
                    row.token = token

    def _save_created(self, snap: Snapshot, kind: str, items: list[int], made: list[dict],
                      sent: list[dict]) -> None:
        """batch_create answers the records in the order asked; an answer to a repeated token is
        the first call's records, whose values may be older: those are written again next time."""
        with self.factory() as session, session.begin():
            for item_id, record, fields in zip(items, made, sent, strict=False):
                row = session.scalar(select(FeishuBoardRow).where(
                    FeishuBoardRow.case_id == snap.case_id, FeishuBoardRow.kind == kind,
                    FeishuBoardRow.item_id == item_id))
                if row is None or row.record_id is not None:
                    continue
                row.record_id = str(record.get("record_id"))
                got = {k: plain(v) for k, v in (record.get("fields") or {}).items()}
                same = all(got.get(k) == plain(fields.get(k)) for k in EDITABLE if k in fields)
                row.pushed = {k: fields[k] for k in EDITABLE if k in fields}
                row.pushed_hash = _digest(fields) if same else ""

    def _save_updated(self, written: list[tuple[int, dict]]) -> None:
        with self.factory() as session, session.begin():
            for row_id, fields in written:
                row = session.get(FeishuBoardRow, row_id)
                if row is not None:
                    row.pushed_hash = _digest(fields)
                    row.pushed = {k: fields[k] for k in EDITABLE if k in fields}

    def _gone(self, snap: Snapshot, rows: list[Row]) -> None:
        now = self.clock.now()
        with self.factory() as session, session.begin():
            case = session.get(Case, snap.case_id)
            if case is None:
                return
            for r in rows:
                stored = session.get(FeishuBoardRow, r.id)
                if stored is None or stored.deleted_at is not None:
                    continue
                stored.deleted_at = now
                what = snap.labels.get(r.item_id, "") if r.kind == "task" else texts.BOARD_KIND_NAMES[r.kind]
                audit(session, case, tenant_key=case.tenant_key, chat_id=case.chat_id, actor="feishu",
                      action="board.deleted", detail=texts.AUDIT_BOARD_DELETED.format(what=what), now=now)
                notice_in(session, case, now, f"board-gone:{stored.id}", texts.BOARD_RECORD_DELETED.format(
                    lead=at_mention(case.lead_open_id), what=what))
