"""The client's Task v2 calls against the fake: documented shapes, idempotent creates, the
missing-scope error naming the scope, add_members' 100/min limit waited out, deleted tasks."""

import pytest

from bot.feishu import MissingScope, Permanent, is_not_found

MEMBERS = [{"id": "ou_owner", "type": "user", "role": "assignee"}, {"id": "ou_f", "type": "user", "role": "follower"}]


async def test_create_is_idempotent_by_client_token(fake, client):
    tl = await client.create_tasklist("新品推广页面延迟", [{"id": "ou_owner", "type": "user", "role": "editor"}])
    body = {"summary": "#1 接口开发", "members": MEMBERS, "tasklists": [{"tasklist_guid": tl["guid"]}],
            "start": {"timestamp": "1765155600000", "is_all_day": False},
            "due": {"timestamp": "1765328400000", "is_all_day": False}}
    a = await client.create_task(body, client_token="ct-1")
    b = await client.create_task(body, client_token="ct-1")
    assert a["guid"] == b["guid"] and len(fake.tasks()) == 1
    call = fake.calls_to("/open-apis/task/v2/tasks", "POST")[0]
    assert call.query == {"user_id_type": "open_id"} and call.json["client_token"] == "ct-1"
    assert a["completed_at"] == "0" and a["due"] == {"timestamp": "1765328400000", "is_all_day": False}


async def test_patch_get_and_members(fake, client):
    t = await client.create_task({"summary": "x", "members": MEMBERS}, client_token="ct-2")
    done = await client.patch_task(t["guid"], {"completed_at": "1765155600000"}, ["completed_at"])
    assert done["status"] == "done"
    assert (await client.get_task(t["guid"]))["completed_at"] == "1765155600000"
    added = await client.add_task_members(t["guid"], [{"id": "ou_new", "type": "user", "role": "assignee"}],
                                          client_token="m-1")
    assert ("ou_new", "assignee") in {(m["id"], m["role"]) for m in added["members"]}
    removed = await client.remove_task_members(t["guid"], [{"id": "ou_owner", "type": "user", "role": "assignee"}])
    assert ("ou_owner", "assignee") not in {(m["id"], m["role"]) for m in removed["members"]}
    with pytest.raises(Permanent):   # members are not patchable; add/remove them
        await client.patch_task(t["guid"], {"members": []}, ["members"])


async def test_missing_scope_names_it(fake, client):
    fake.revoke_scope("task:tasklist:write")
    with pytest.raises(MissingScope) as err:
        await client.create_tasklist("x", [])
    assert err.value.code == 99991672 and err.value.scopes == ("task:tasklist:write",)


async def test_deleted_task_is_not_found(fake, client):
    t = await client.create_task({"summary": "x"}, client_token="ct-3")
    fake.user_delete_task(t["guid"])
    with pytest.raises(Permanent) as err:
        await client.get_task(t["guid"])
    assert is_not_found(err.value)


async def test_add_members_limit_is_waited_out(fake, client):
    """100/min on add_members (documented): the 101st call gets 429 and the client waits it out."""
    t = await client.create_task({"summary": "x"}, client_token="ct-4")
    for i in range(101):
        await client.add_task_members(t["guid"], [{"id": f"ou_{i}", "type": "user", "role": "follower"}],
                                      client_token=f"m-{i}")
    statuses = [c.status for c in fake.calls_to(f"/open-apis/task/v2/tasks/{t['guid']}/add_members")]
    assert statuses.count(429) >= 1 and statuses.count(200) == 101


async def test_invalid_input_is_refused(fake, client):
    with pytest.raises(Permanent):
        await client.create_task({"summary": "x", "start": {"timestamp": "2"}, "due": {"timestamp": "1"}},
                                 client_token="ct-5")
    with pytest.raises(Permanent):
        await client.create_task({"summary": "x", "members": [{"id": "ou_a", "role": "owner"}]}, client_token="ct-6")
    assert fake.tasks() == []


async def test_list_tasklists_follows_every_page(fake, client):
    made = [await client.create_tasklist(f"清单 {i}", []) for i in range(130)]
    listed = await client.list_tasklists()
    assert [t["guid"] for t in listed] == [t["guid"] for t in made]
    assert listed[0]["creator"]["type"] == "app"
    pages = [c for c in fake.calls if c.path == "/open-apis/task/v2/tasklists" and c.method == "GET"]
    assert [c.query.get("page_size") for c in pages] == ["100", "100"]
    assert "page_token" not in pages[0].query and pages[1].query["page_token"]


async def test_a_lost_tasklist_create_is_not_retried_by_the_client(fake, client):
    """The create takes no client_token: a 5xx may hide a list Feishu made, so the client
    hands it back to the caller (who looks first) instead of creating again."""
    from bot.feishu import Transient

    fake.lose_next("/open-apis/task/v2/tasklists")
    with pytest.raises(Transient):
        await client.create_tasklist("新品推广页面延迟", [])
    assert len(fake.tasklists()) == 1


async def test_tasklist_list_page_size_is_checked(fake, client):
    from bot.feishu import FeishuError

    with pytest.raises(FeishuError):
        await client._call("GET", "/open-apis/task/v2/tasklists", params={"page_size": 101}, api_paced=True)
