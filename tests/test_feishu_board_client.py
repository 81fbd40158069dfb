"""The client's bitable calls against the fake: documented shapes, batch limits (1,000 records a
write, 500 a search page), the uuid client_token making batch_create idempotent, base creation's
20/min waited out, the missing-scope error naming bitable:app, a deleted record not found."""
import uuid

import pytest

from bot.feishu import RECORD_NOT_FOUND_CODE, MissingScope, Permanent
from bot.sync_board import TABLES, plain, records_token


async def _task_table(client):
    app = await client.create_base("进度跟踪表 · x")
    name, fields = TABLES["task"]
    return app, await client.create_table(app["app_token"], name, fields)


def test_records_token_is_a_stable_uuid_per_item_set():
    a = records_token("t", 1, "task", [3, 1, 2])
    assert uuid.UUID(a).version == 4 and a == records_token("t", 1, "task", [1, 2, 3])
    assert a != records_token("t", 1, "task", [1, 2]) and a != records_token("t", 2, "task", [1, 2, 3])


async def test_base_and_table_shapes(fake, client):
    app, table_id = await _task_table(client)
    assert app["app_token"] and app["url"] and app["default_table_id"]
    table = fake.table_named(app["app_token"], "任务")
    assert table["table_id"] == table_id
    assert {f["field_name"] for f in table["fields"]} >= {"任务", "负责人", "状态", "完成率", "滞后原因"}
    with pytest.raises(Permanent):   # two tables of one name
        await client.create_table(app["app_token"], "任务", [{"field_name": "任务", "type": 1}])


async def test_batch_create_is_idempotent_by_client_token(fake, client):
    app, table_id = await _task_table(client)
    token = records_token("t", 1, "task", [1, 2])
    rows = [{"任务": "接口开发", "负责人": [{"id": "ou_a"}], "状态": "未开始", "完成率": 0},
            {"任务": "页面适配", "状态": "进行中", "完成率": 20}]
    first = await client.create_records(app["app_token"], table_id, rows, client_token=token)
    again = await client.create_records(app["app_token"], table_id, rows, client_token=token)
    assert [r["record_id"] for r in first] == [r["record_id"] for r in again]
    assert len(fake.records(app["app_token"], "任务")) == 2
    with pytest.raises(Permanent):   # not a uuid
        await client.create_records(app["app_token"], table_id, rows, client_token="ct-1")


async def test_values_are_checked_against_the_field_types(fake, client):
    app, table_id = await _task_table(client)
    for bad in ({"状态": "差不多"}, {"完成率": "40"}, {"负责人": "ou_a"}, {"没有的列": "x"}):
        with pytest.raises(Permanent):
            await client.create_records(app["app_token"], table_id, [bad], client_token=str(uuid.uuid4()))
    assert fake.records(app["app_token"], "任务") == []


async def test_batch_limits(fake, client):
    app, table_id = await _task_table(client)
    with pytest.raises(Permanent):
        await client.create_records(app["app_token"], table_id, [{"任务": f"t{i}"} for i in range(1001)],
                                    client_token=str(uuid.uuid4()))
    made = await client.create_records(app["app_token"], table_id, [{"任务": f"t{i}"} for i in range(1000)],
                                       client_token=str(uuid.uuid4()))
    assert len(made) == 1000
    page = await client.search_records(app["app_token"], table_id, page_size=500)
    assert len(page["items"]) == 500 and page["has_more"] and page["total"] == 1000
    rest = await client.search_records(app["app_token"], table_id, page_size=500, page_token=page["page_token"])
    assert len(rest["items"]) == 500 and not rest["has_more"]
    with pytest.raises(Permanent):
        await client.search_records(app["app_token"], table_id, page_size=501)


async def test_update_search_and_who_edited(fake, client):
    app, table_id = await _task_table(client)
    [rec] = await client.create_records(app["app_token"], table_id, [{"任务": "x", "完成率": 0}],
                                        client_token=str(uuid.uuid4()))
    await client.update_records(app["app_token"], table_id, [{"record_id": rec["record_id"], "fields": {"完成率": 10}}])
    fake.user_edit_record(app["app_token"], table_id, rec["record_id"], {"完成率": 30.0}, "ou_owner")
    [item] = (await client.search_records(app["app_token"], table_id))["items"]
    assert plain(item["fields"]["完成率"]) == 30 and item["last_modified_by"] == {"id": "ou_owner"}
    assert item["last_modified_time"] > 0


async def test_deleted_record_is_not_found_and_the_batch_writes_nothing(fake, client):
    app, table_id = await _task_table(client)
    a, b = await client.create_records(app["app_token"], table_id, [{"任务": "a"}, {"任务": "b"}],
                                       client_token=str(uuid.uuid4()))
    fake.user_delete_record(app["app_token"], table_id, a["record_id"])
    with pytest.raises(Permanent) as err:
        await client.update_records(app["app_token"], table_id, [
            {"record_id": a["record_id"], "fields": {"任务": "a2"}},
            {"record_id": b["record_id"], "fields": {"任务": "b2"}}])
    assert err.value.code == RECORD_NOT_FOUND_CODE
    [left] = fake.records(app["app_token"], "任务")
    assert left["fields"]["任务"] == "b"


async def test_missing_scope_names_it(fake, client):
    fake.revoke_scope("bitable:app")
    with pytest.raises(MissingScope) as err:
        await client.create_table("bas", "任务", [])
    assert err.value.code == 99991672 and "bitable:app" in err.value.scopes


async def test_base_creation_limit_is_waited_out(fake, client):
    """20/min on base creation (documented): the 21st call gets 429 and the client waits it out."""
    for i in range(21):
        await client.create_base(f"b{i}")
    statuses = [c.status for c in fake.calls_to("/open-apis/bitable/v1/apps", "POST") if c.path.endswith("/apps")]
    assert statuses.count(429) >= 1 and statuses.count(200) == 21
    assert len(fake.bases()) == 21
