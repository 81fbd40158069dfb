"""The domain-codes data migration: rows written by the previous revision (Chinese labels in
tasks, task_updates, requirements, risks, retro_entries and the risks inside plan snapshots and
templates) become codes on upgrade and labels again on downgrade. On SQLite always; on
PostgreSQL too when TEST_DATABASE_URL is set, in a scratch database of its own (the shared test
database is truncated by other tests)."""
from __future__ import annotations

import importlib.util
from datetime import datetime, timezone

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.orm import Session

from bot import db, texts
from bot.domain import Level, RetroKind, TaskStatus
from bot.models import Requirement, RetroEntry, Risk, Task, TaskUpdate
from tests.migration_scratch import scratch_url_fixture

REVISION = "0004_domain_codes"
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)
SCOPE = {"tenant_key": "tk_codes", "chat_id": "oc_codes"}

TASK_LABELS = ("未开始", "进行中", "已完成", "受阻")
LEVEL_LABELS = ("高", "中", "低")
RETRO_LABELS = ("成果", "成功经验", "不足之处", "改进方向")


def _previous() -> str:
    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    return script.get_revision(REVISION).down_revision


def _migration():
    spec = importlib.util.spec_from_file_location("m0004", db.MIGRATIONS_DIR / "versions" / f"{REVISION}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scratch_url = scratch_url_fixture("codes")


def _risks(labels: list[tuple[str, str]]) -> list[dict]:
    return [{"risk": f"风险{i}", "likelihood": lk, "impact": im, "response": "应对", "owner": "ou_lead"}
            for i, (lk, im) in enumerate(labels)]


RISK_PAIRS = [("高", "中"), ("中", "低"), ("低", "高")]
SNAPSHOT = {"tasks": [{"id": 1, "seq": 1, "content": "接口开发"}], "risks": _risks(RISK_PAIRS),
            "nodes": [{"name": "联调", "at": "2026-12-05T10:00:00+00:00"}]}
TEMPLATE = {"departments": [{"name": "技术部", "kind": "core"}], "tasks": [],
            "risks": [dict(r, department="技术部") for r in _risks(RISK_PAIRS)], "key_nodes": []}


def _write_previous_rows(engine) -> None:
    """Rows as the previous revision stored them: display text in every domain column."""
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(t["cases"].insert(), [dict(SCOPE, id=1, seq=1, title="上线", step=5, status="active",
                                                opener_open_id="ou_lead", lead_open_id="ou_lead", version=1,
                                                created_at=T0, updated_at=T0, step_entered_at=T0, draft={},
                                                timezone="Asia/Shanghai", standup_time="09:30", standup_paused=False,
                                                key_node_offsets_h=[24])])
        conn.execute(t["departments"].insert(), [dict(SCOPE, id=1, case_id=1, name="技术部", head_open_id="ou_head",
                                                      position=0, kind="core", active=True)])
        conn.execute(t["tasks"].insert(), [
            dict(SCOPE, id=i, case_id=1, seq=i, content=f"任务{i}", owner_open_id="ou_dev", start_at=T0, due_at=T0,
                 delivery_standard="可上线", resources="", status=label, progress=10 * i, lag_reason="", adjustment="",
                 dropped=False, updated_at=T0) for i, label in enumerate(TASK_LABELS, start=1)])
        conn.execute(t["task_updates"].insert(), [
            dict(SCOPE, id=i, case_id=1, task_id=i, actor_open_id="ou_dev", status=label, progress=10 * i,
                 lag_reason="", adjustment="", at=T0) for i, label in enumerate(TASK_LABELS, start=1)])
        conn.execute(t["requirements"].insert(), [
            dict(SCOPE, id=i, case_id=1, department_id=1, demand=f"需求{i}", solution="", priority=label,
                 adjustment="", is_conflict=False, conflict_department_ids=[], created_by="ou_head", created_at=T0)
            for i, label in enumerate(LEVEL_LABELS, start=1)])
        conn.execute(t["risks"].insert(), [
            dict(SCOPE, id=i, case_id=1, risk=f"风险{i}", likelihood=lk, impact=im, response="应对",
                 owner_open_id="ou_head", status="open") for i, (lk, im) in enumerate(RISK_PAIRS, start=1)])
        conn.execute(t["retro_entries"].insert(), [
            dict(SCOPE, id=i, case_id=1, author_open_id="ou_dev", kind=label, content=f"内容{i}", created_at=T0)
            for i, label in enumerate(RETRO_LABELS, start=1)])
        conn.execute(t["plan_versions"].insert(), [dict(SCOPE, id=1, case_id=1, version=1, snapshot=SNAPSHOT,
                                                        reason="", published_by="ou_lead", published_at=T0)])
        conn.execute(t["templates"].insert(), [dict(id=1, tenant_key=SCOPE["tenant_key"], name="上线SOP",
                                                    body=TEMPLATE, created_by="ou_lead", created_at=T0)])


def _stored(engine) -> dict[str, list]:
    """What the rows hold, as plain values, read without the models' types."""
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.connect() as conn:
        def col(table: str, *names: str) -> list:
            rows = conn.execute(select(*(t[table].c[n] for n in names)).order_by(t[table].c.id)).all()
            return [r[0] if len(names) == 1 else tuple(r) for r in rows]
        return {"tasks": col("tasks", "status"), "task_updates": col("task_updates", "status"),
                "requirements": col("requirements", "priority"), "risks": col("risks", "likelihood", "impact"),
                "retro_entries": col("retro_entries", "kind"), "snapshot": col("plan_versions", "snapshot")[0],
                "template": col("templates", "body")[0]}


def _doc_levels(doc: dict) -> list[tuple[str, str]]:
    return [(r["likelihood"], r["impact"]) for r in doc["risks"]]


def test_labels_become_codes_and_back(scratch_url):
    cfg = db.alembic_config(scratch_url)
    previous = _previous()
    command.upgrade(cfg, previous)
    engine = create_engine(db.normalise_url(scratch_url))
    try:
        _write_previous_rows(engine)

        command.upgrade(cfg, REVISION)
        now = _stored(engine)
        assert now["tasks"] == now["task_updates"] == ["todo", "doing", "done", "blocked"]
        assert now["requirements"] == ["high", "mid", "low"]
        assert now["risks"] == [("high", "mid"), ("mid", "low"), ("low", "high")]
        assert now["retro_entries"] == ["outcome", "success", "weakness", "improve"]
        assert _doc_levels(now["snapshot"]) == _doc_levels(now["template"]) == now["risks"]
        # everything else in the documents is left as it was
        assert {k: v for k, v in now["snapshot"].items() if k != "risks"} == {
            k: v for k, v in SNAPSHOT.items() if k != "risks"}
        assert [r["risk"] for r in now["template"]["risks"]] == [r["risk"] for r in TEMPLATE["risks"]]
        assert all(r["department"] == "技术部" for r in now["template"]["risks"])

        command.upgrade(cfg, "heads")  # the models read the migrated rows as enum members
        with Session(engine) as s:
            assert [t.status for t in s.scalars(select(Task).order_by(Task.id))] == list(TaskStatus)
            assert [u.status for u in s.scalars(select(TaskUpdate).order_by(TaskUpdate.id))] == list(TaskStatus)
            assert [r.priority for r in s.scalars(select(Requirement).order_by(Requirement.id))] == list(Level)
            assert [(r.likelihood, r.impact) for r in s.scalars(select(Risk).order_by(Risk.id))] == [
                (Level.HIGH, Level.MID), (Level.MID, Level.LOW), (Level.LOW, Level.HIGH)]
            assert [e.kind for e in s.scalars(select(RetroEntry).order_by(RetroEntry.id))] == list(RetroKind)

        command.downgrade(cfg, previous)
        back = _stored(engine)
        assert back["tasks"] == back["task_updates"] == list(TASK_LABELS)
        assert back["requirements"] == list(LEVEL_LABELS)
        assert back["risks"] == RISK_PAIRS
        assert back["retro_entries"] == list(RETRO_LABELS)
        assert back["snapshot"] == SNAPSHOT
        assert back["template"] == TEMPLATE
    finally:
        engine.dispose()


def test_migration_maps_every_label_to_its_code():
    """The migration's frozen tables agree with bot.domain and bot.texts at this revision."""
    m = _migration()
    for frozen, enum, labels in ((m.TASK_STATUS, TaskStatus, texts.TASK_STATUS_LABELS),
                                 (m.LEVEL, Level, texts.LEVEL_LABELS),
                                 (m.RETRO_KIND, RetroKind, texts.RETRO_KIND_LABELS)):
        assert list(labels) == [e.value for e in enum]       # every code has a label, in the enum's order
        assert frozen == {label: code for code, label in labels.items()}
