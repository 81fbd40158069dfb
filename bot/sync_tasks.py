"""A case's tasks as 飞书任务 (Task v2), kept in sync both ways.

Runs as an outbox op (outbox.SyncFeishu, target "tasks") in the case's chat chain, so there is
one writer per case at a time across processes, and a crash mid-run is simply run again:

  push  every task of the published plan becomes a Feishu task in one tasklist per case (summary,
        assignee = owner, the case's team as followers, start/due, description with 交付标准 /
        所需资源 / status); later bot changes (progress, dates, owner, dropped) patch it. Every create
        carries a client_token derived from our key, so a retry after a lost response, or two
        runs racing, return the same task.
  poll  (the scheduler asks every minute while the case is in step 5) get the linked, open tasks,
        oldest-checked first, at most POLL_MAX per run; a completion or re-opening done in Feishu
        goes to `apply_remote` (handlers.tracking), the same path and checks as a card update.
        Both sides changed since the last sync: the later change wins, and the audit says so.

A task deleted in Feishu is marked, reported to the lead once and never re-created. A missing
scope (99991672) pauses the case's sync and tells the lead once which scope to add; the case
carries on in the bot alone.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import outbox, texts
from bot.clock import Clock
from bot.domain import TaskStatus
from bot.feishu import FeishuError, Permanent, is_not_found
from bot.models import Case, FeishuTaskLink, FeishuTaskSync, Outbox, Task
from bot.repository import audit, tasks_of, team_open_ids
from bot.sync_common import CaseSnapshot, CaseSyncer, SyncFeature, at_mention, ms, notice_in, syncing_case
from bot.workflow import Step

log = logging.getLogger(__name__)

POLL_MAX = 20            # tasks read back per case per run (a minute): well inside 1000/min
TARGET = "tasks"
FEATURE = SyncFeature(setting="feishu_tasks", model=FeishuTaskSync, target=TARGET, notice_key="ftask",
                      default_scope="task:task:write", scope_missing=texts.FTASK_SCOPE_MISSING,
                      failed=texts.FTASK_FAILED, log=log, what="feishu task sync", poll_key="ftpoll", poll_word="poll")

# (session, case, task, done, remote_ms, conflict_note, now) -> the task's updated_at afterwards
ApplyRemote = Callable[[Session, Case, Task, bool, str, datetime], datetime]


def client_token(tenant_key: str, case_id: int, task_id: int, what: str = "create") -> str:
    """Ours, stable: the same task always asks Feishu with the same token."""
    return "ct-" + hashlib.sha256(f"{tenant_key}|{case_id}|{task_id}|{what}".encode()).hexdigest()[:40]


def _at(at_ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz).strftime("%m-%d %H:%M")


@dataclass(frozen=True)
class Want:
    """What the Feishu task should say now."""

    task_id: int
    fields: dict[str, Any]          # summary, description, start, due
    done: bool
    done_ms: int
    members: tuple[tuple[str, str], ...]   # (open_id, role)
    bot_updated_at: datetime
    digest: str


@dataclass(frozen=True)
class Link:
    id: int
    task_id: int
    guid: str | None
    token: str
    digest: str
    members: tuple[tuple[str, str], ...]
    synced_at: datetime | None
    remote_ms: int
    remote_done: bool
    deleted: bool


@dataclass(frozen=True)
class Snapshot(CaseSnapshot):
    tasklist: str | None
    team: tuple[str, ...]
    wants: tuple[Want, ...]
    links: dict[int, Link]
    tasklist_pending: str | None = None


def tasklist_name(title: str, case_id: int) -> str:
    """The case's tasklist name: its title plus a case marker, so two cases with the same title never
    share a name (a retry adopts the list by its exact name), within the API's 100 characters."""
    marker = texts.FTASK_TASKLIST_MARKER.format(case=case_id)
    return title[: 100 - len(marker)] + marker


def want_for(task: Task, case: Case, team: set[str], tz: ZoneInfo) -> Want:
    lag = ""
    if task.lag_reason or task.adjustment:
        lag = texts.FTASK_DESC_LAG.format(reason=task.lag_reason or texts.FTASK_NONE,
                                          adjustment=task.adjustment or texts.FTASK_NONE)
    description = texts.FTASK_DESC.format(
        case=case.title, seq=task.seq, standard=task.delivery_standard or texts.FTASK_NONE,
        resources=task.resources or texts.FTASK_NONE, status=texts.TASK_STATUS_LABELS[task.status],
        progress=task.progress, lag=lag)
    summary = f"#{task.seq} {task.content}"
    if task.dropped:
        summary = texts.FTASK_CANCELLED_PREFIX + summary
    fields = {"summary": summary[:3000], "description": description,
              "start": {"timestamp": str(ms(task.start_at)), "is_all_day": False},
              "due": {"timestamp": str(ms(task.due_at)), "is_all_day": False}}
    done = task.status == TaskStatus.DONE or task.dropped
    members = [(task.owner_open_id, "assignee")]
    members += [(oid, "follower") for oid in sorted(team - {task.owner_open_id}) if oid.startswith("ou_")]
    blob = json.dumps([fields, done, members], ensure_ascii=False, sort_keys=True)
    return Want(task.id, fields, done, ms(task.done_at or task.updated_at) if done else 0, tuple(members),
                task.updated_at, hashlib.sha256(blob.encode()).hexdigest())


class TaskSync(CaseSyncer):
    feature = FEATURE

    def __init__(self, factory: sessionmaker[Session], client: Any, clock: Clock, *,
                 apply_remote: ApplyRemote, poll_max: int = POLL_MAX) -> None:
        super().__init__(factory, client, clock)
        self.apply_remote = apply_remote
        self.poll_max = poll_max

    # ------------------------------------------------------------------ entry point (a syncer)
    async def __call__(self, row: Outbox, op: outbox.SyncFeishu) -> None:
        snap = await asyncio.to_thread(self._load, op.case_id, row.tenant_key, row.chat_id)
        if snap is None:
            return
        async with self._failures_told_to_lead(snap):
            # read back first: a bot change not yet written to Feishu is still visible as one
            if op.poll and snap.step == Step.EXECUTION:
                await self._poll(snap)
                snap = await asyncio.to_thread(self._load, op.case_id, row.tenant_key, row.chat_id) or snap
            await self._push(snap)

    # ------------------------------------------------------------------------------- reading
    def _load(self, case_id: int, tenant_key: str, chat_id: str) -> Snapshot | None:
        with self.factory() as session:
            found = syncing_case(session, FeishuTaskSync, case_id, tenant_key, chat_id)
            if found is None:
                return None
            case, sync = found
            tz = ZoneInfo(case.timezone)
            team = team_open_ids(session, case)
            tasks = tasks_of(session, case, include_dropped=True)
            links = {ln.task_id: Link(ln.id, ln.task_id, ln.task_guid, ln.client_token, ln.pushed_hash,
                                      tuple((str(a), str(b)) for a, b in ln.pushed_members or []),
                                      ln.synced_at, ln.remote_updated_ms, ln.remote_completed,
                                      ln.deleted_at is not None)
                     for ln in session.scalars(select(FeishuTaskLink).where(FeishuTaskLink.case_id == case.id))}
            # a task dropped before it ever reached Feishu never goes there
            wants = tuple(want_for(t, case, team, tz) for t in tasks if not (t.dropped and t.id not in links))
            return Snapshot(case.id, case.tenant_key, case.chat_id, case.title, case.lead_open_id, case.step,
                            sync.tasklist_guid, tuple(sorted(team)), wants, links, sync.tasklist_pending)

    # ------------------------------------------------------------------------------- pushing
    async def _push(self, snap: Snapshot) -> None:
        tasklist = snap.tasklist
        if tasklist is None and any(snap.links.get(w.task_id) is None for w in snap.wants):
            members = [{"id": oid, "type": "user", "role": "editor" if oid == snap.lead else "viewer"}
                       for oid in snap.team if oid.startswith("ou_")]
            # no client_token on this create: a lost answer may hide a list Feishu made, so an earlier
            # attempt's mark sends us to look for it (ours: that exact name, created by the app) first
            if snap.tasklist_pending:
                tasklist = await self._find_tasklist(snap.tasklist_pending)
            if tasklist is None:
                name = tasklist_name(snap.title, snap.case_id)
                await asyncio.to_thread(self._mark_tasklist, snap, name)
                created = await self.client.create_tasklist(name, members)
                tasklist = created["guid"]
            await asyncio.to_thread(self._save_tasklist, snap, tasklist)
        for want in snap.wants:
            link = snap.links.get(want.task_id)
            if link is not None and link.deleted:
                continue
            try:
                if link is None or link.guid is None:
                    await self._create(snap, want, tasklist)
                elif link.digest != want.digest:
                    await self._update(snap, want, link)
            except Permanent as exc:
                if not is_not_found(exc) or link is None:
                    raise
                await asyncio.to_thread(self._gone, snap, link)

    async def _find_tasklist(self, name: str) -> str | None:
        for item in await self.client.list_tasklists():
            if item.get("name") == name and (item.get("creator") or {}).get("type") == "app":
                return str(item["guid"])
        return None

    async def _create(self, snap: Snapshot, want: Want, tasklist: str | None) -> None:
        token = client_token(snap.tenant_key, snap.case_id, want.task_id)
        members = [{"id": i, "type": "user", "role": r} for i, r in want.members]
        body: dict[str, Any] = {**want.fields, "members": members,
                                "extra": json.dumps({"case": snap.case_id, "task": want.task_id})}
        if tasklist:
            body["tasklists"] = [{"tasklist_guid": tasklist}]
        if want.done:
            body["completed_at"] = str(want.done_ms)
        task = await self.client.create_task(body, client_token=token)
        await asyncio.to_thread(self._save_push, snap, want, token, task,
                                str(task.get("completed_at") or "0") != "0")

    async def _update(self, snap: Snapshot, want: Want, link: Link) -> None:
        assert link.guid is not None
        task_body = dict(want.fields)
        update = ["summary", "description", "start", "due"]
        wrote: bool | None = None   # the completion we wrote, if any (else Feishu's stays as we knew it)
        if want.done != link.remote_done:
            wrote = want.done
            task_body["completed_at"] = str(want.done_ms) if want.done else "0"
            update.append("completed_at")
        task = await self.client.patch_task(link.guid, task_body, update)
        have, need = set(link.members), set(want.members)
        if need - have:
            added = sorted(need - have)
            task = await self.client.add_task_members(
                link.guid, [{"id": i, "type": "user", "role": r} for i, r in added],
                client_token=client_token(snap.tenant_key, snap.case_id, want.task_id, f"m:{added}"))
        if have - need:
            task = await self.client.remove_task_members(
                link.guid, [{"id": i, "type": "user", "role": r} for i, r in sorted(have - need)])
        await asyncio.to_thread(self._save_push, snap, want, link.token, task, wrote)

    # ------------------------------------------------------------------------------- polling
    async def _poll(self, snap: Snapshot) -> None:
        order = await asyncio.to_thread(self._poll_order, snap)
        wants = {w.task_id: w for w in snap.wants}
        for link in order[: self.poll_max]:
            want = wants.get(link.task_id)
            if want is None or link.guid is None:
                continue
            try:
                task = await self.client.get_task(link.guid)
            except FeishuError as exc:
                if is_not_found(exc):
                    await asyncio.to_thread(self._gone, snap, link)
                    continue
                raise
            await asyncio.to_thread(self._take_remote, snap, link, want, task)

    def _poll_order(self, snap: Snapshot) -> list[Link]:
        with self.factory() as session:
            rows = session.scalars(select(FeishuTaskLink).where(
                FeishuTaskLink.case_id == snap.case_id, FeishuTaskLink.task_guid.is_not(None),
                FeishuTaskLink.deleted_at.is_(None)))
            ordered = sorted(rows, key=lambda ln: (ln.polled_at is not None, ln.polled_at or datetime.min, ln.id))
            return [snap.links[ln.task_id] for ln in ordered if ln.task_id in snap.links]

    def _take_remote(self, snap: Snapshot, link: Link, want: Want, remote: dict) -> None:
        with self.factory() as session, session.begin():
            row = session.get(FeishuTaskLink, link.id)
            if row is not None:
                row.polled_at = self.clock.now()
                self._reconcile(session, row, remote)

    def _reconcile(self, session: Session, row: FeishuTaskLink, remote: dict) -> None:
        """Feishu's completion as just read, against what we knew and what the bot has. Both sides
        changed (the bot has a change Feishu has not seen, or made one after Feishu's): the later
        wins — Feishu's by its completed_at (or updated_at for a re-opening), the bot's by the task's
        updated_at — and the audit trail says which and when."""
        now = self.clock.now()
        case, task = session.get(Case, row.case_id), session.get(Task, row.task_id)
        remote_ms = int(remote.get("updated_at") or 0)
        completed = int(str(remote.get("completed_at") or "0") or 0)
        remote_done = completed != 0
        if case is None or task is None or row.deleted_at is not None:
            return
        if remote_done == row.remote_completed:   # nothing we track changed there
            row.remote_updated_ms = max(row.remote_updated_ms, remote_ms)
            return
        tz = ZoneInfo(case.timezone)
        remote_at = completed if remote_done else remote_ms
        bot_done = task.status == TaskStatus.DONE or task.dropped
        row.remote_updated_ms, row.remote_completed = max(row.remote_updated_ms, remote_ms), remote_done
        if bot_done == remote_done:   # the same change on both sides
            row.synced_at = task.updated_at
            return
        unseen = row.synced_at is None or task.updated_at > row.synced_at
        if ms(task.updated_at) > remote_at:
            # ours is later: keep it; the push writes the completion back to Feishu
            audit(session, case, tenant_key=case.tenant_key, chat_id=case.chat_id, actor="feishu",
                  action="ftask.conflict", now=now, detail=texts.AUDIT_FTASK_CONFLICT_BOT.format(
                      seq=task.seq, bot=_at(ms(task.updated_at), tz), remote=_at(remote_at, tz)))
            row.pushed_hash = ""
            _enqueue_sync(session, case, now, f"conflict:{row.id}:{remote_ms}")
            return
        note = texts.AUDIT_FTASK_CONFLICT_REMOTE.format(seq=task.seq, remote=_at(remote_at, tz),
                                                       bot=_at(ms(task.updated_at), tz)) if unseen else ""
        if case.step == Step.EXECUTION and not task.dropped:
            row.synced_at = self.apply_remote(session, case, task, remote_done, note, now)
        else:
            row.synced_at = task.updated_at

    # ------------------------------------------------------------------------------- writing
    def _save_tasklist(self, snap: Snapshot, guid: str) -> None:
        with self.factory() as session, session.begin():
            sync = session.scalar(select(FeishuTaskSync).where(FeishuTaskSync.case_id == snap.case_id))
            if sync is not None and sync.tasklist_guid is None:
                sync.tasklist_guid, sync.tasklist_pending = guid, None

    def _mark_tasklist(self, snap: Snapshot, name: str) -> None:
        with self.factory() as session, session.begin():
            sync = session.scalar(select(FeishuTaskSync).where(FeishuTaskSync.case_id == snap.case_id))
            if sync is not None:
                sync.tasklist_pending = name

    def _save_push(self, snap: Snapshot, want: Want, token: str, task: dict, completed: bool | None) -> None:
        """What we wrote. The completion Feishu has is only ours to record when we wrote it: a
        completion made there since our last read must still be seen by the next read-back."""
        with self.factory() as session, session.begin():
            row = session.scalar(select(FeishuTaskLink).where(FeishuTaskLink.task_id == want.task_id))
            if row is None:
                row = FeishuTaskLink(tenant_key=snap.tenant_key, chat_id=snap.chat_id, case_id=snap.case_id,
                                     task_id=want.task_id, client_token=token)
                session.add(row)
            row.task_guid, row.url = task.get("guid") or row.task_guid, str(task.get("url") or row.url or "")
            row.pushed_hash = want.digest
            row.pushed_members = [list(m) for m in want.members]
            row.synced_at = want.bot_updated_at
            if completed is not None:   # we set it: Feishu now has ours
                row.remote_completed = completed
                row.remote_updated_ms = max(row.remote_updated_ms or 0, int(task.get("updated_at") or 0))
            else:   # the answer shows Feishu's completion as it is; changed there since our last read?
                session.flush()
                self._reconcile(session, row, task)

    def _gone(self, snap: Snapshot, link: Link) -> None:
        now = self.clock.now()
        with self.factory() as session, session.begin():
            row = session.get(FeishuTaskLink, link.id)
            case, task = session.get(Case, snap.case_id), session.get(Task, link.task_id)
            if row is None or row.deleted_at is not None or case is None or task is None:
                return
            row.deleted_at = now
            audit(session, case, tenant_key=case.tenant_key, chat_id=case.chat_id, actor="feishu",
                  action="ftask.deleted", detail=texts.AUDIT_FTASK_DELETED.format(seq=task.seq), now=now)
            notice_in(session, case, now, f"ftask-gone:{row.id}", texts.FTASK_DELETED.format(
                lead=at_mention(case.lead_open_id), seq=task.seq, content=task.content[:60]))


# ---------------------------------------------------------------------------------- helpers
def _enqueue_sync(session: Session, case: Case, now: datetime, key: str) -> None:
    outbox.enqueue_ops(session, tenant_key=case.tenant_key, chat_id=case.chat_id, key=f"ftask:{case.id}:{key}",
                       now=now, ops=[outbox.SyncFeishu(TARGET, case.id)], case_id=case.id,
                       priority=outbox.Priority.BULK)
