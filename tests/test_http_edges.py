"""The HTTP server at its edges, on a real scheduler (SQLite file, real graph) through
httpx's ASGI transport: hostile values answered 422 with the field named and nothing
written; rows that are not what the crons API wrote; changes that race; the crons
contract where the LangGraph server merges, filters or defaults; the guard's rate and
cookie."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import ValidationError

from scheduler import Settings, TaskDefinition
from scheduler.server import create_app
from scheduler.server.crons import CRONS_SOURCE, graph_id
from scheduler.storage.threads import insert_thread, made_threads
from tests.conftest import SchedulerFactory, loop_gaps


def client_of(scheduler: Any) -> httpx.AsyncClient:
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is a reply
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def api(make_scheduler: SchedulerFactory) -> AsyncIterator[httpx.AsyncClient]:
    scheduler = make_scheduler(http_rate_per_second=0)
    async with client_of(scheduler) as c:
        c.scheduler = scheduler  # type: ignore[attr-defined]
        yield c


def cron(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    scheduler = api.scheduler  # type: ignore[attr-defined]
    return {"assistant_id": graph_id(scheduler.settings.graph), "schedule": "0 9 * * *", **fields}


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- hostile values -------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["", " "])
async def test_an_empty_time_zone_is_a_422_not_utc(api: httpx.AsyncClient, zone: str) -> None:
    """A cron's ``timezone: ""`` was taken, fired in UTC and read back as ``""`` (the
    reference answers 400); now a 422 naming the field, on a create and on an update, as
    for a task. (An empty ``tz=`` of a preview is no zone given: the setting's, answered.)"""
    made = await api.post("/runs/crons", json=cron(api))
    answers = {
        "crons": await api.post("/runs/crons", json=cron(api, timezone=zone)),
        "update": await api.patch(f"/runs/crons/{made.json()['cron_id']}", json={"timezone": zone}),
        "task": await api.post(
            "/api/tasks", json={"id": "i", "interval_seconds": 60, "prompt": "p", "timezone": zone}
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.status_code, answer.text)
        assert answer.json()["detail"].startswith("timezone: "), (name, answer.text)
    searched = (await api.post("/runs/crons/search", json={})).json()
    assert [c["timezone"] for c in searched] == [None]  # (none given, as the reference)


@pytest.mark.parametrize("zone", ["Europe", "America/", "x" * 300, "UTC\x00"])
async def test_a_zone_name_zoneinfo_trips_over_is_a_422(api: httpx.AsyncClient, zone: str) -> None:
    """A folder of the zone database, a name too long to be a file, a NUL: zoneinfo raises
    other errors than "not found" for these."""
    answers = {
        "crons": await api.post("/runs/crons", json=cron(api, timezone=zone)),
        "interval": await api.post(
            "/api/tasks", json={"id": "i", "interval_seconds": 60, "prompt": "p", "timezone": zone}
        ),
        "schedule": await api.post(
            "/api/tasks",
            json={"id": "s", "schedule": "every day at 9:00", "prompt": "p", "timezone": zone},
        ),
        "preview": await api.get(
            "/api/schedules/preview", params={"schedule": "0 9 * * *", "tz": zone}
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.status_code, answer.text)
        assert "time zone" in answer.text or "timezone" in answer.text, (name, answer.text)
    assert (await api.get("/api/tasks")).json()["total"] == 0


@pytest.mark.parametrize("configurable", ["x", [1], 5, True])
async def test_a_configurable_that_is_not_an_object_is_a_422(
    api: httpx.AsyncClient, configurable: Any
) -> None:
    made = await api.post("/runs/crons", json=cron(api, config={"configurable": configurable}))
    assert made.status_code == 422 and "config.configurable" in made.text, made.text
    good = (await api.post("/runs/crons", json=cron(api, config={"tags": ["a"]}))).json()
    patched = await api.patch(
        f"/runs/crons/{good['cron_id']}", json={"config": {"configurable": configurable}}
    )
    assert patched.status_code == 422 and "config.configurable" in patched.text, patched.text
    assert (await api.get(f"/runs/crons/{good['cron_id']}")).json()["payload"]["config"] == {
        "tags": ["a"], "configurable": {"cron_id": good["cron_id"]},
    }  # fmt: skip


async def test_an_answer_too_deep_is_a_422_naming_the_value(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/runs/nope/answer", json={"value": nested(40)})
    assert answer.status_code == 422 and "value:" in answer.text, answer.text


@pytest.mark.parametrize("field", ["input", "metadata", "config", "context", "stream_mode"])
async def test_a_cron_field_nested_past_pydantics_serializer_is_a_422(
    api: httpx.AsyncClient, field: str
) -> None:
    """260 levels: pydantic parses it, and its serializer (which writes the payload) did not."""
    made = (await api.post("/runs/crons", json=cron(api))).json()
    thread = (await api.post("/threads", json={})).json()["thread_id"]
    value = {"x": nested(300)}
    for method, path, body in (
        ("POST", "/runs/crons", cron(api, **{field: value})),
        ("POST", f"/threads/{thread}/runs/crons", cron(api, **{field: value})),
        ("PATCH", f"/runs/crons/{made['cron_id']}", {field: value}),
    ):
        answer = await api.request(method, path, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"] == f"{field}: nested more than 32 levels deep"
    assert (await api.post("/runs/crons/count", json={})).json() == 1
    assert (await api.get(f"/runs/crons/{made['cron_id']}")).json()["updated_at"] == made[
        "updated_at"
    ]


async def test_a_null_answer_is_a_422_before_the_run_is_looked_up(
    api: httpx.AsyncClient,
) -> None:
    """``Command(resume=None)`` is no answer to LangGraph: the run would not go on."""
    answer = await api.post("/api/runs/nope/answer", json={"value": None})
    assert answer.status_code == 422, answer.text
    assert "value: the answer must not be null" in answer.json()["detail"]


async def test_thread_metadata_too_deep_is_refused_and_a_stored_one_does_not_break_search(
    api: httpx.AsyncClient,
) -> None:
    made = await api.post("/threads", json={"thread_id": "deep", "metadata": {"a": nested(300)}})
    assert made.status_code == 422 and "metadata:" in made.text, made.text
    store = api.scheduler.store  # type: ignore[attr-defined]
    assert [t for t, _, _ in made_threads(store)] == []
    # rows written past the API (the database is not trusted): listed without metadata
    insert_thread(store, "forged", "[" * 5000 + "]" * 5000, 1.0)
    insert_thread(store, "not-an-object", "[1, 2]", 2.0)
    await api.post("/threads", json={"thread_id": "fine", "metadata": {"k": "v"}})
    found = await api.post("/threads/search", json={})
    assert found.status_code == 200, found.text
    assert {t["thread_id"]: t["metadata"] for t in found.json()} == {
        "forged": {}, "not-an-object": {}, "fine": {"k": "v"},
    }  # fmt: skip


async def test_an_id_or_callback_ending_in_a_newline_is_a_422(api: httpx.AsyncClient) -> None:
    """The id rule's regex ended in ``$``, which also matches before a final newline:
    ``"report\\n"`` was a task id (a line break in every log line about the task), and
    ``"pkg.mod:fn\\n"`` a callback path."""
    made = await api.post(
        "/api/tasks", json={"id": "report\n", "interval_seconds": 60, "prompt": "p"}
    )
    assert made.status_code == 422 and made.json()["detail"].startswith("id:"), made.text
    assert (await api.get("/api/tasks")).json()["total"] == 0
    with pytest.raises(ValidationError, match="result_callback"):
        TaskDefinition(id="r", interval_seconds=60, result_callback="tests.callbacks:record\n")
    with pytest.raises(ValidationError, match="after"):
        TaskDefinition(id="r", after={"tasks": ["report\n"]})


# -- what the crons API did not write -------------------------------------------------------


async def test_rest_cannot_set_the_request_the_crons_api_keeps(api: httpx.AsyncClient) -> None:
    forged = {"id": "forged", "interval_seconds": 60, "prompt": "p", "request": {"kind": "cron"}}
    made = await api.post("/api/tasks", json=forged)
    assert made.status_code == 422 and "request:" in made.text, made.text
    assert (await api.get("/api/tasks/forged")).status_code == 404
    real = (await api.post("/runs/crons", json=cron(api))).json()
    patched = await api.patch(f"/api/tasks/{real['cron_id']}", json={"request": {"kind": "cron"}})
    assert patched.status_code == 422 and "request:" in patched.text, patched.text
    renamed = await api.patch(f"/api/tasks/{real['cron_id']}", json={"name": "renamed"})
    assert renamed.status_code == 200, renamed.text  # the request it keeps is no change


ODD = "0b0e0f00-0000-4000-8000-000000000000"  # a UUID, as a cron's id must be


@pytest.mark.parametrize(
    "request_",
    [
        {"kind": "cron"},
        {"kind": "cron", "assistant_id": 5, "payload": {}, "fields": {}},
        {"kind": "cron", "assistant_id": "a", "payload": [], "fields": {}},
        {"kind": "cron", "assistant_id": "a", "payload": {}, "fields": {}, "timezone": 3},
    ],
)
async def test_a_cron_row_not_as_the_crons_api_wrote_it_is_no_cron(
    api: httpx.AsyncClient, request_: dict[str, Any]
) -> None:
    good = (await api.post("/runs/crons", json=cron(api))).json()
    scheduler = api.scheduler  # type: ignore[attr-defined]
    scheduler.add_task(
        TaskDefinition(id=ODD, cron_expression="0 8 * * *", prompt="p", request=request_),
        source=CRONS_SOURCE,
    )
    found = await api.post("/runs/crons/search", json={})
    assert found.status_code == 200 and [c["cron_id"] for c in found.json()] == [good["cron_id"]]
    assert (await api.post("/runs/crons/count", json={})).json() == 1
    for answer in (
        await api.get(f"/runs/crons/{ODD}"),
        await api.patch(f"/runs/crons/{ODD}", json={"enabled": False}),
        await api.delete(f"/runs/crons/{ODD}"),
    ):
        assert answer.status_code == 404, answer.text
    assert scheduler.get_task(ODD).definition.request == request_


async def test_every_stored_task_id_is_reachable_through_rest_and_the_dashboard(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A route's ``{task_id}`` was one path segment: a stored id with "/" (the id rules
    refuse it; a row written before them, or by another program, may have it) was a 404
    on every route, listed but not even removable. Ids are percent-encoded segments, read
    as paths; ``/next`` still means a task's next times."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    scheduler.add_task(TaskDefinition(id="a.b:c_d-e", interval_seconds=60, prompt="p"))
    with pytest.raises(ValidationError, match="id must be 1-128 characters"):
        TaskDefinition(id="team/report", interval_seconds=60, prompt="p")
    now = time.time()
    db = sqlite3.connect(tmp_path / "scheduler.db")  # a row someone else wrote
    with db:
        db.execute(
            "INSERT INTO scheduler_tasks (id, definition, format, next_run_time, paused, "
            "anchor, source, created_at, updated_at) VALUES (?, ?, 1, ?, 0, ?, 'api', ?, ?)",
            ("team/report", json.dumps({"id": "team/report", "interval_seconds": 60,
             "prompt": "p"}), now + 60, now, now, now),
        )  # fmt: skip
    db.close()
    rows = (await api.get("/fragments/tasks")).text
    for task_id in ("a.b:c_d-e", "team/report"):
        path = quote(task_id, safe="")
        assert f'href="/tasks/{path}"' in rows
        got = await api.get(f"/api/tasks/{path}")
        assert got.status_code == 200 and got.json()["id"] == task_id, got.text
        page = await api.get(f"/tasks/{path}")
        assert page.status_code == 200 and task_id in page.text
        paused = await api.post(
            f"/tasks/{path}/pause?back=task", headers={"origin": "http://127.0.0.1"}
        )
        assert paused.status_code == 303 and paused.headers["location"] == f"/tasks/{path}"
        assert (await api.get(f"/api/tasks/{path}")).json()["paused"] is True
    resumed = await api.post("/api/tasks/a.b%3Ac_d-e/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text
    assert (await api.get("/api/tasks/team/report")).json()["id"] == "team/report"
    next_times = await api.get("/api/tasks/a.b:c_d-e/next", params={"count": 2})
    assert next_times.status_code == 200 and len(next_times.json()) == 2
    assert (await api.delete("/api/tasks/team%2Freport")).status_code == 204
    assert [t.id for t in scheduler.list_tasks()] == ["a.b:c_d-e"]


# -- changes that race ----------------------------------------------------------------------


async def test_a_patch_racing_a_delete_never_brings_the_task_back(api: httpx.AsyncClient) -> None:
    for i in range(15):
        made = (await api.post("/runs/crons", json=cron(api))).json()
        await api.post("/api/tasks", json={"id": f"t{i}", "interval_seconds": 60, "prompt": "p"})
        for path, change in (
            (f"/runs/crons/{made['cron_id']}", {"metadata": {"i": i}}),
            (f"/api/tasks/t{i}", {"prompt": "changed"}),
        ):
            task_id = path.rsplit("/", 1)[1]
            patch, delete = await asyncio.gather(api.patch(path, json=change), api.delete(path))
            assert delete.status_code == 204, delete.text
            assert patch.status_code in (200, 404), patch.text
            assert (await api.get(f"/api/tasks/{task_id}")).status_code == 404, (i, path)


async def test_patches_of_different_fields_at_once_are_all_kept(api: httpx.AsyncClient) -> None:
    await api.post("/api/tasks", json={"id": "t", "interval_seconds": 60, "prompt": "p"})
    made = (await api.post("/runs/crons", json=cron(api))).json()
    cron_path = f"/runs/crons/{made['cron_id']}"
    answers = await asyncio.gather(
        api.patch("/api/tasks/t", json={"prompt": "new prompt"}),
        api.patch("/api/tasks/t", json={"interval_seconds": 120}),
        api.patch("/api/tasks/t", json={"metadata": {"k": "v"}}),
        api.patch(cron_path, json={"metadata": {"a": 1}}),
        api.patch(cron_path, json={"metadata": {"b": 2}}),
        api.patch(cron_path, json={"schedule": "30 6 * * *"}),
    )
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    task = (await api.get("/api/tasks/t")).json()["definition"]
    assert (task["prompt"], task["interval_seconds"], task["metadata"]) == (
        "new prompt", 120, {"k": "v"},
    )  # fmt: skip
    now = (await api.get(cron_path)).json()
    assert (now["schedule"], now["metadata"]) == ("30 6 * * *", {"a": 1, "b": 2})


async def test_a_change_made_through_rest_is_kept_by_a_later_crons_patch(
    api: httpx.AsyncClient,
) -> None:
    made = (await api.post("/runs/crons", json=cron(api, input={"x": 1}))).json()
    path = f"/runs/crons/{made['cron_id']}"
    changed = await api.patch(
        f"/api/tasks/{made['cron_id']}",
        json={"cron_expression": "30 6 * * *", "input": {"x": 2}, "timezone": "Asia/Tokyo"},
    )
    assert changed.status_code == 200, changed.text
    seen = (await api.get(path)).json()  # the payload too, before any crons PATCH
    assert (seen["payload"]["schedule"], seen["payload"]["input"]) == ("30 6 * * *", {"x": 2})
    after = (await api.patch(path, json={"metadata": {"n": 1}})).json()
    assert (after["schedule"], after["timezone"], after["payload"]["input"]) == (
        "30 6 * * *", "Asia/Tokyo", {"x": 2},
    )  # fmt: skip
    assert after["next_run_date"].endswith("21:30:00+00:00")  # 06:30 in Tokyo


async def test_a_zone_changed_through_rest_is_the_crons_zone_at_once(
    api: httpx.AsyncClient,
) -> None:
    for sent, changed in ((None, "Asia/Tokyo"), ("Asia/Tokyo", "UTC")):
        zone = {"timezone": sent} if sent is not None else {}  # (null: a 422, as there)
        made = (await api.post("/runs/crons", json=cron(api, **zone))).json()
        path = f"/runs/crons/{made['cron_id']}"
        rest = await api.patch(f"/api/tasks/{made['cron_id']}", json={"timezone": changed})
        assert rest.status_code == 200, rest.text
        seen = (await api.get(path)).json()
        found = (await api.post("/runs/crons/search", json={"limit": 100})).json()
        listed = next(c for c in found if c["cron_id"] == made["cron_id"])
        assert (seen["timezone"], seen["payload"]["timezone"], listed["timezone"]) == (changed,) * 3
        hour = "00:00:00" if changed == "Asia/Tokyo" else "09:00:00"  # 09:00 there
        assert seen["next_run_date"].endswith(f"{hour}+00:00"), seen


async def test_a_crons_patch_keeps_the_fields_only_rest_sets(api: httpx.AsyncClient) -> None:
    first, second = [(await api.post("/threads", json={})).json()["thread_id"] for _ in "ab"]
    made = (await api.post(f"/threads/{first}/runs/crons", json=cron(api))).json()
    own = {
        "name": "nightly report", "description": "for ops", "timeout_seconds": 60.0,
        "max_retries": 3, "retry_delay_seconds": 5.0, "overlap": "skip",
        "thread_id": second, "start_date": "2030-01-01T00:00:00Z",
    }  # fmt: skip
    changed = await api.patch(f"/api/tasks/{made['cron_id']}", json=own)
    assert changed.status_code == 200, changed.text
    patched = await api.patch(f"/runs/crons/{made['cron_id']}", json={"enabled": False})
    assert (patched.status_code, patched.json()["thread_id"]) == (200, second), patched.text
    task = (await api.get(f"/api/tasks/{made['cron_id']}")).json()["definition"]
    assert {k: task.get(k) for k in own} == own
    assert task["enabled"] is False
    # a field the crons API writes still takes over; a name it gave follows its schedule
    again = await api.patch(
        f"/runs/crons/{made['cron_id']}", json={"multitask_strategy": "enqueue"}
    )
    assert again.status_code == 200, again.text
    task = (await api.get(f"/api/tasks/{made['cron_id']}")).json()["definition"]
    assert (task["overlap"], task["name"], task["timeout_seconds"]) == ("queue", own["name"], 60)
    other = (await api.post("/runs/crons", json=cron(api))).json()
    await api.patch(f"/runs/crons/{other['cron_id']}", json={"schedule": "5 4 * * *"})
    renamed = (await api.get(f"/api/tasks/{other['cron_id']}")).json()["definition"]
    assert renamed["name"] == "cron 5 4 * * *"


# -- the crons contract ---------------------------------------------------------------------


async def test_a_patch_merges_metadata_and_stays_on_its_thread(api: httpx.AsyncClient) -> None:
    thread = (await api.post("/threads", json={})).json()["thread_id"]
    made = (
        await api.post(f"/threads/{thread}/runs/crons", json=cron(api, metadata={"team": "ops"}))
    ).json()
    patched = await api.patch(
        f"/runs/crons/{made['cron_id']}",
        json={"metadata": {"owner": "bob", "team": "dev"}, "thread_id": "elsewhere"},
    )
    assert patched.json()["metadata"] == {"team": "dev", "owner": "bob"}
    assert patched.json()["thread_id"] == thread


async def test_search_by_metadata_is_containment(api: httpx.AsyncClient) -> None:
    metadata = {"owner": {"team": "ops", "name": "bob"}, "flag": True, "tags": ["a", "b"], "n": 1}
    made = (await api.post("/runs/crons", json=cron(api, metadata=metadata))).json()
    await api.post("/threads", json={"thread_id": "th", "metadata": metadata})
    expected = {
        json.dumps({"owner": {"team": "ops"}}): 1,
        json.dumps({"owner": {"team": "dev"}}): 0,
        json.dumps({"flag": True}): 1,
        json.dumps({"flag": 1}): 0,
        json.dumps({"n": 1.0}): 1,
        json.dumps({"n": True}): 0,
        json.dumps({"tags": ["b"]}): 1,
        json.dumps({"tags": ["c"]}): 0,
        json.dumps({"owner": "ops"}): 0,
    }
    for wanted, count in expected.items():
        body = {"metadata": json.loads(wanted)}
        assert (await api.post("/runs/crons/count", json=body)).json() == count, wanted
        found = (await api.post("/runs/crons/search", json=body)).json()
        assert [c["cron_id"] for c in found] == [made["cron_id"]] * count, wanted
        threads = (await api.post("/threads/search", json=body)).json()
        assert [t["thread_id"] for t in threads] == ["th"] * count, wanted


async def test_a_metadata_filter_is_matched_in_bounded_time(api: httpx.AsyncClient) -> None:
    """Searches are matched on the event loop, and arrays were matched item by item: a
    filter of 130,000 items against a cron's array of 40,000 (both within the bounds)
    blocked the loop for hours, and nothing fired. Scalars in arrays are matched through
    a set; a filter that would take more than a bounded number of steps is a 422."""
    big = list(range(3000))
    held = {"n": big, "kinds": [1, "1", True, None, {"k": [1, 2]}]}
    made = (await api.post("/runs/crons", json=cron(api, metadata=held))).json()
    await api.post("/threads", json={"thread_id": "th", "metadata": held})
    for wanted, count in (
        ({"n": big[::-1]}, 1),
        ({"n": [*big, 3000]}, 0),
        ({"kinds": [True, "1", 1, None, {"k": [2]}]}, 1),
        ({"kinds": [1.0, {}]}, 1),
        ({"kinds": [False]}, 0),
        ({"kinds": ["2"]}, 0),
        ({"kinds": [{"k": [3]}]}, 0),
    ):
        body = {"metadata": wanted}
        found = (await api.post("/runs/crons/search", json=body)).json()
        assert [c["cron_id"] for c in found] == [made["cron_id"]] * count, wanted
        threads = (await api.post("/threads/search", json=body)).json()
        assert [t["thread_id"] for t in threads] == ["th"] * count, wanted
    nested = {"d": [{"k": i} for i in range(1500)]}
    await api.post("/runs/crons", json=cron(api, metadata=nested))
    await api.post("/threads", json={"thread_id": "nested", "metadata": nested})
    for path in ("/runs/crons/search", "/runs/crons/count", "/threads/search", "/threads/count"):
        refused = await api.post(path, json={"metadata": nested})
        assert refused.status_code == 422, (path, refused.status_code)
        assert refused.json()["detail"].startswith("metadata: too large a filter")


async def test_a_cron_without_a_timezone_is_utc_whatever_the_scheduler_zone(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(http_rate_per_second=0, timezone="Asia/Tokyo")
    async with client_of(scheduler) as api:
        api.scheduler = scheduler  # type: ignore[attr-defined]
        made = (await api.post("/runs/crons", json=cron(api))).json()
        assert made["timezone"] is None and made["next_run_date"].endswith("T09:00:00+00:00")
        zoned = (await api.post("/runs/crons", json=cron(api, timezone="Asia/Tokyo"))).json()
        assert zoned["next_run_date"].endswith("T00:00:00+00:00")


async def test_end_times_in_other_offsets_sort_by_time(api: httpx.AsyncClient) -> None:
    early = await api.post("/runs/crons", json=cron(api, end_time="2030-01-01T10:00:00+05:00"))
    late = await api.post("/runs/crons", json=cron(api, end_time="2030-01-01T06:00:00+00:00"))
    never = await api.post("/runs/crons", json=cron(api))  # no end: the earliest, as there
    assert early.json()["end_time"] == "2030-01-01T05:00:00+00:00"
    ids = [never.json()["cron_id"], early.json()["cron_id"], late.json()["cron_id"]]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        body = {"sort_by": "end_time", "sort_order": order}
        found = (await api.post("/runs/crons/search", json=body)).json()
        assert [c["cron_id"] for c in found] == expected, order


# -- the guard ------------------------------------------------------------------------------


async def test_a_rate_below_one_a_second_serves_one_request_then_one_per_period(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(http_rate_per_second=0.5)
    async with client_of(scheduler) as api:
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/healthz")).status_code == 429
        await asyncio.sleep(2.2)
        assert (await api.get("/healthz")).status_code == 200


async def test_the_key_cookie_is_found_beside_another_apps_cookies(
    make_scheduler: SchedulerFactory,
) -> None:
    """Cookies are not per port: on localhost a browser sends other local apps' cookies
    too, some of them in forms Python's SimpleCookie gives up on."""
    scheduler = make_scheduler(http_rate_per_second=0, api_key="k3y")
    async with client_of(scheduler) as api:
        for cookie in (
            "scheduler_key=k3y",
            'prefs={"theme": "dark"}; scheduler_key=k3y',
            "a=b c; scheduler_key=k3y; z=ü",
        ):
            answer = await api.get("/api/tasks", headers={"cookie": cookie.encode()})
            assert answer.status_code == 200, cookie
        for cookie in ("scheduler_key=wrong", 'prefs={"a": 1}', "scheduler_key="):
            refused = await api.get("/api/tasks", headers={"cookie": cookie})
            assert refused.status_code in (401, 403), cookie


async def test_a_patch_with_nulls_leaves_those_fields_as_they_are(api: httpx.AsyncClient) -> None:
    made = (await api.post("/runs/crons", json=cron(api, metadata={"k": 1}))).json()
    path = f"/runs/crons/{made['cron_id']}"
    nulls = {"enabled": None, "metadata": None, "schedule": None, "input": None}
    patched = await api.patch(path, json={**nulls, "timezone": "Europe/Paris"})
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["enabled"], after["metadata"], after["schedule"]) == (True, {"k": 1}, "0 9 * * *")
    assert after["timezone"] == "Europe/Paris"
    only_nulls = await api.patch(path, json=nulls)  # nothing to change, as the reference says
    assert only_nulls.status_code == 400 and "nothing to change" in only_nulls.text


async def test_a_thread_runs_status_filter_comes_before_the_page(api: httpx.AsyncClient) -> None:
    scheduler = api.scheduler  # type: ignore[attr-defined]
    scheduler.add_tasks(
        [
            TaskDefinition(id="ok", interval_seconds=3600, prompt="hi", thread_id="th"),
            TaskDefinition(id="bad", interval_seconds=3600, prompt="fail", thread_id="th"),
        ]
    )
    ok = await scheduler.wait_for_run(scheduler.run_task_now("ok"), timeout=10)
    for _ in range(3):
        await scheduler.wait_for_run(scheduler.run_task_now("bad"), timeout=10)
    page = await api.get("/threads/th/runs", params={"status": "success", "limit": 1})
    assert [r["run_id"] for r in page.json()] == [ok.id]
    errors = await api.get("/threads/th/runs", params={"status": "error", "limit": 2, "offset": 1})
    assert len(errors.json()) == 2 and all(r["status"] == "error" for r in errors.json())
    everything = await api.get("/threads/th/runs", params={"limit": 10})
    assert len(everything.json()) == 4


async def test_a_threads_runs_are_found_in_any_spelling_of_its_uuid(
    api: httpx.AsyncClient,
) -> None:
    """As the LangGraph server reads a thread id; a thread a task names in a spelling of its
    own is that spelling's (a checkpointer keeps its checkpoints under that text)."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    made = (await api.post("/threads", json={"thread_id": str(uuid.uuid4()).upper()})).json()
    thread = made["thread_id"]
    assert thread == thread.lower()  # made in the usual spelling, as the server makes it
    scheduler.add_task(
        TaskDefinition(id="on", interval_seconds=3600, prompt="hi", thread_id=thread)
    )
    run = await scheduler.wait_for_run(scheduler.run_task_now("on"), timeout=10)
    for spelling in (thread.upper(), "{" + thread + "}", uuid.UUID(thread).hex):
        listed = await api.get(f"/threads/{spelling}/runs")
        assert [r["run_id"] for r in listed.json()] == [run.id], listed.text
        got = await api.get(f"/threads/{spelling}/runs/{run.id}")
        assert got.status_code == 200 and got.json()["thread_id"] == thread, got.text
    named = str(uuid.uuid4()).upper()
    scheduler.add_task(
        TaskDefinition(id="named", interval_seconds=3600, prompt="hi", thread_id=named)
    )
    await scheduler.wait_for_run(scheduler.run_task_now("named"), timeout=10)
    assert (await api.get(f"/threads/{named}")).json()["thread_id"] == named
    on_it = await api.post(f"/threads/{named}/runs/crons", json=cron(api))
    assert on_it.json()["thread_id"] == named, on_it.text  # the conversation the task has


async def test_a_thread_whose_id_holds_a_slash_is_reached_as_the_sdk_quotes_it(
    api: httpx.AsyncClient,
) -> None:
    """A thread id is a name: ``team/ops`` is one (threads.create makes it, a task may name
    it); the SDK sends it as one path segment, ``team%2Fops``."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    made = await api.post("/threads", json={"thread_id": "team/ops", "metadata": {"k": 1}})
    assert made.status_code == 200, made.text
    scheduler.add_task(
        TaskDefinition(id="daily", interval_seconds=3600, prompt="hi", thread_id="reports/daily")
    )
    run = await scheduler.wait_for_run(scheduler.run_task_now("daily"), timeout=10)
    for thread in ("team/ops", "reports/daily"):
        path = f"/threads/{quote(thread, safe='')}"
        got = await api.get(path)
        assert (got.status_code, got.json()["thread_id"]) == (200, thread), got.text
        assert (await api.get(f"{path}/state")).status_code == 200
        listed = await api.get(f"{path}/runs")
        assert listed.status_code == 200, listed.text
        on_it = await api.post(f"{path}/runs/crons", json=cron(api))
        assert (on_it.status_code, on_it.json()["thread_id"]) == (200, thread), on_it.text
    assert [r["run_id"] for r in listed.json()] == [run.id]
    one = await api.get(f"/threads/{quote('reports/daily', safe='')}/runs/{run.id}")
    assert one.json()["run_id"] == run.id, one.text


async def test_a_probe_may_ask_healthz_with_head(api: httpx.AsyncClient) -> None:
    answer = await api.head("/healthz")
    assert answer.status_code == 200 and answer.content == b""


async def test_the_openapi_document_has_one_operation_id_per_operation(
    api: httpx.AsyncClient,
) -> None:
    """``/healthz`` as one GET and HEAD route gave both methods one operationId: OpenAPI
    requires them unique (client generators refuse the document), and FastAPI warned at
    each build of it (here, where warnings are errors, a 500)."""
    answer = await api.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    ids = [op["operationId"] for path in answer.json()["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert (await api.head("/healthz")).status_code == 200


async def test_a_search_selects_only_fields_a_cron_has(api: httpx.AsyncClient) -> None:
    made = (await api.post("/runs/crons", json=cron(api))).json()
    chosen = await api.post("/runs/crons/search", json={"select": ["cron_id", "schedule"]})
    assert chosen.json() == [{"cron_id": made["cron_id"], "schedule": "0 9 * * *"}]
    unknown = await api.post("/runs/crons/search", json={"select": ["cron_id", "password"]})
    assert unknown.status_code == 422 and "select" in unknown.text, unknown.text


# -- found by a hostile client (review) -------------------------------------------------------

JSON_TYPE = {"content-type": "application/json"}


@pytest.mark.parametrize("strategy", [[], {}, [1], {"a": 1}, 5])
async def test_a_patched_multitask_strategy_that_is_not_text_is_a_422(
    api: httpx.AsyncClient, strategy: Any
) -> None:
    made = (await api.post("/runs/crons", json=cron(api))).json()
    answer = await api.patch(
        f"/runs/crons/{made['cron_id']}", json={"multitask_strategy": strategy}
    )
    assert answer.status_code == 422 and "multitask_strategy" in answer.text, answer.text


async def test_lone_surrogates_are_a_422_naming_the_field_and_nothing_is_stored(
    api: httpx.AsyncClient,
) -> None:
    """JSON may spell half of a UTF-16 pair (``"\\ud800"``); such text cannot be stored.
    It used to be a 500, and a thread's metadata was stored first: every threads search
    answered 500 after it."""
    raw = {
        "/api/tasks": '{"id": "t", "prompt": "p", "schedule": "every 5 minutes", '
        '"metadata": {"k": "\\udfff"}}',
        "/threads": '{"thread_id": "x\\ud800"}',
        "/runs/crons": json.dumps(cron(api))[:-1] + ', "input": {"\\ud800": 1}}',
    }
    for path, body in raw.items():
        answer = await api.post(path, content=body, headers=JSON_TYPE)
        assert answer.status_code == 422, (path, answer.status_code, answer.text)
    bad_metadata = '{"thread_id": "t1", "metadata": {"a": "\\ud800"}}'
    answer = await api.post("/threads", content=bad_metadata)
    assert answer.status_code == 422 and "metadata" in answer.text, answer.text
    await api.post("/api/tasks", json={"id": "t", "prompt": "p", "schedule": "every 5 minutes"})
    patched = await api.patch(
        "/api/tasks/t", content='{"input": {"a": "\\udfff"}}', headers=JSON_TYPE
    )
    assert patched.status_code == 422 and "input" in patched.text, patched.text
    searched = await api.post("/threads/search", json={})
    assert searched.status_code == 200 and searched.json() == [], searched.text
    assert [t["id"] for t in (await api.get("/api/tasks")).json()["items"]] == ["t"]


async def test_a_chunked_body_past_the_bound_is_a_413(make_scheduler: SchedulerFactory) -> None:
    """No Content-Length: the bound is found while the body is read. It used to be a 500
    (crons) or a 400 (the other routes)."""
    scheduler = make_scheduler(http_rate_per_second=0, http_max_body_bytes=2048)
    async with client_of(scheduler) as api:
        big = json.dumps({"metadata": {"k": "x" * 5000}}).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        for path in ("/runs/crons", "/runs/crons/search", "/api/tasks", "/threads"):
            answer = await api.post(path, content=chunks())
            assert answer.status_code == 413, (path, answer.status_code, answer.text)
            assert "larger than 2048 bytes" in answer.json()["detail"], answer.text


async def test_threads_made_at_once_with_one_id_make_one_thread(api: httpx.AsyncClient) -> None:
    """Four creates of one thread at once: one makes it, the others find it (409, or the
    thread with ``if_exists: do_nothing``); it used to be a 503 naming the database file."""
    for round_ in range(5):
        body = {"thread_id": f"th{round_}"}
        answers = await asyncio.gather(*(api.post("/threads", json=body) for _ in range(4)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [
            a.text for a in answers
        ]
        again = {**body, "if_exists": "do_nothing"}
        kept = await asyncio.gather(*(api.post("/threads", json=again) for _ in range(4)))
        assert {a.status_code for a in kept} == {200}
        assert len({a.json()["created_at"] for a in [*answers, *kept] if a.is_success}) == 1


async def test_a_thread_a_run_used_exists_for_threads_create(api: httpx.AsyncClient) -> None:
    """threads.get finds it, so threads.create answers 409 (or it, with do_nothing), as
    the LangGraph server does for a thread that exists, rather than "making" it anew."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    for thread in ("reports", str(uuid.uuid4())):
        scheduler.add_task(
            TaskDefinition(
                id=f"on-{thread[:4]}", interval_seconds=3600, prompt="hi", thread_id=thread
            )
        )
        await scheduler.wait_for_run(scheduler.run_task_now(f"on-{thread[:4]}"), timeout=10)
        before = (await api.get(f"/threads/{thread}")).json()
        made = await api.post("/threads", json={"thread_id": thread, "metadata": {"m": 1}})
        assert made.status_code == 409, made.text
        kept = await api.post("/threads", json={"thread_id": thread, "if_exists": "do_nothing"})
        assert kept.status_code == 200, kept.text
        assert (kept.json()["thread_id"], kept.json()["created_at"]) == (
            thread, before["created_at"],
        )  # fmt: skip
        after = (await api.get(f"/threads/{thread}")).json()
        assert after["created_at"] == before["created_at"], after
        assert after["metadata"] == before["metadata"] != {"m": 1}  # (the graph's ids)


async def test_a_crons_input_gets_the_same_bounds_as_a_tasks(api: httpx.AsyncClient) -> None:
    """A cron keeps its request's fields beside the task's (two levels down, twice): they
    were checked with the task's bounds, so a cron's input could be 2 levels shallower and
    under half the size of a task's, and the error named ``request``."""
    deep: Any = {"leaf": 1}
    for _ in range(30):  # 31 levels
        deep = {"d": deep}
    for value in (deep, {"text": "x" * 200_000}):
        made = await api.post("/runs/crons", json=cron(api, input=value))
        assert made.status_code == 200, made.text
        task = await api.post(
            "/api/tasks", json={"id": "same", "interval_seconds": 60, "input": value}
        )
        assert task.status_code == 201, task.text
        await api.delete("/api/tasks/same")
    too_deep = await api.post("/runs/crons", json=cron(api, input={"d": deep, "e": {"f": deep}}))
    assert too_deep.status_code == 422 and "input" in too_deep.text, too_deep.text


async def test_an_api_key_that_is_not_ascii_is_accepted_in_a_header(
    make_scheduler: SchedulerFactory,
) -> None:
    key = "clé-ünï"
    scheduler = make_scheduler(http_rate_per_second=0, api_key=key)
    async with client_of(scheduler) as api:
        for header in ("x-api-key", "authorization"):
            value = key if header == "x-api-key" else f"Bearer {key}"
            answer = await api.get("/api/tasks", headers={header: value.encode()})
            assert answer.status_code == 200, (header, answer.text)
        wrong = await api.get("/api/tasks", headers={"x-api-key": "clé-ünì".encode()})
        assert wrong.status_code == 403


async def test_a_dashboard_login_with_a_key_that_is_not_ascii_keeps_working(
    make_scheduler: SchedulerFactory,
) -> None:
    """The login cookie held the key as Python quotes a cookie (``"cl\\351-..."``): read
    back, it was not the key's bytes, and every page after the login answered 403."""
    for key in ("clé-ünï", 'k;e y,"\\%41'):
        scheduler = make_scheduler(http_rate_per_second=0, api_key=key)
        async with client_of(scheduler) as api:
            login = await api.get("/login", params={"key": key})
            assert login.status_code == 303, login.text
            cookie = login.headers["set-cookie"].split(";", 1)[0]  # name=value, sent back
            assert cookie.isascii()
            page = await api.get("/", headers={"cookie": cookie})
            assert page.status_code == 200, (key, cookie, page.status_code)
            wrong = await api.get("/", headers={"cookie": cookie[:-1]})
            assert wrong.status_code == 403
        await scheduler.stop(grace_seconds=0)


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_api_key_is_refused(key: str) -> None:
    """It counted as a key: the server listened on any address, and an empty x-api-key
    header got in."""
    with pytest.raises(ValidationError, match="api_key"):
        Settings(_env_file=None, api_key=key)


@pytest.mark.parametrize("key", ["secret ", " secret", "secret\t", "sec\nret", "sec\x00ret"])
async def test_an_api_key_no_header_can_carry_is_refused(
    key: str, make_scheduler: SchedulerFactory
) -> None:
    """A header's value loses the spaces at its ends and cannot hold a control character:
    a key set as ``SCHEDULER_API_KEY="secret "`` could not be sent by any client (httpx
    and the SDK refuse the header, curl and the server drop the space) and every request
    got 403. It is refused where it is set, naming the field."""
    with pytest.raises(ValidationError, match="api_key") as refused:
        Settings(_env_file=None, api_key=key)
    assert "an HTTP header cannot carry" in str(refused.value)
    with pytest.raises(ValidationError, match="api_key"):
        make_scheduler(api_key=key)
    inner = Settings(_env_file=None, api_key="sec ret\tkey")  # inside, a space or a tab is text
    assert inner.api_key == "sec ret\tkey"


async def test_healthz_says_the_database_fails_without_saying_where(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``/healthz`` answers without a key: a driver's message (host, user, database) goes
    to the log, not to whoever asks."""
    from scheduler.exceptions import StorageError

    store = api.scheduler.store  # type: ignore[attr-defined]

    def down() -> int:
        raise StorageError('connection to "db.internal" failed for user "scheduler"')

    monkeypatch.setattr(store, "revision", down)
    answer = await api.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "failing: StorageError"
    assert "db.internal" not in answer.text
    assert "db.internal" in caplog.text


async def test_numbers_and_flags_in_sdk_bodies_are_not_coerced(api: httpx.AsyncClient) -> None:
    for body in ({"limit": "5"}, {"limit": True}, {"offset": 1.5}, {"enabled": 1}):
        answer = await api.post("/runs/crons/search", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert next(iter(body)) in answer.json()["detail"], answer.text
    made = await api.post("/runs/crons", json=cron(api, enabled="yes"))
    assert made.status_code == 422 and "enabled" in made.text, made.text


async def test_a_websocket_is_refused_before_the_application(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(api_key="k" * 32)
    scheduler.start()
    reached: list[str] = []

    async def application(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])
        await send({"type": "websocket.accept"})

    app = create_app(scheduler, scheduler.settings)
    app.app = application  # whatever route a later version adds: the guard stands before it
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"id": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"id": "t", "priority": ' + b"9" * 5000 + b"}", "4300"),
    ],
    ids=["latin-1", "deep", "huge-integer"],
)
async def test_a_rest_body_json_cannot_read_is_a_422_naming_the_body(
    api: httpx.AsyncClient, body: bytes, why: str
) -> None:
    reply = await api.post("/api/tasks", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail.startswith("body: not JSON this server can read") and why in detail, detail
    assert (await api.get("/api/tasks")).json()["items"] == []  # nothing written


async def test_a_cron_schedule_longer_than_a_name_is_taken(api: httpx.AsyncClient) -> None:
    """A valid schedule may have up to 256 characters, a task name 200: the name a cron's
    task gets from its schedule (``cron ...``) refused schedules of 196 or more with
    ``name: String should have at most 200 characters``, a field the SDK never sent."""
    minutes, hours = ",".join(map(str, range(60))), ",".join(map(str, range(24)))
    schedule = f"{minutes} {hours} * * *"
    assert 200 < len(schedule) <= 256
    made = await api.post("/runs/crons", json=cron(api, schedule=schedule))
    assert made.status_code == 200, made.text
    assert made.json()["schedule"] == schedule
    other = (await api.post("/runs/crons", json=cron(api))).json()
    patched = await api.patch(f"/runs/crons/{other['cron_id']}", json={"schedule": schedule})
    assert patched.status_code == 200 and patched.json()["schedule"] == schedule, patched.text
    name = (await api.get(f"/api/tasks/{other['cron_id']}")).json()["name"]
    assert name.startswith("cron 0,1,2,") and len(name) <= 200, name
    bad = await api.post("/runs/crons", json=cron(api, schedule="0 9 * * *\x00"))
    assert bad.status_code == 422 and bad.json()["detail"].startswith("schedule:"), bad.text
    assert "name" not in bad.json()["detail"], bad.text  # no field the SDK sent


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b'{"id": "t", "prompt": ', "body: not JSON this server can read: "),
        (b"{not json", "body: not JSON this server can read: "),
        (b"[1]", "body: "),
        (b'"text"', "body: "),
        (b"null", "body: "),
    ],
    ids=["cut-short", "not-json", "array", "string", "null"],
)
@pytest.mark.parametrize(
    "path", ["/api/tasks", "/api/runs/r/answer", "/runs/crons", "/runs/crons/search", "/threads"]
)
async def test_a_body_that_is_not_a_json_object_is_a_422_naming_the_body(
    api: httpx.AsyncClient, path: str, body: bytes, start: str
) -> None:
    """As a body JSON cannot read (above): JSON cut short was ``1: JSON decode error`` (the
    offset as a field) on REST and ``Invalid JSON: ...`` on the SDK's endpoints, and a body
    that is no object named no field."""
    reply = await api.post(path, content=body, headers=JSON_TYPE)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"].startswith(start), reply.json()["detail"]
    assert (await api.get("/api/tasks")).json()["items"] == []  # nothing written


async def test_a_rest_write_without_a_body_is_a_422_naming_the_body(
    api: httpx.AsyncClient,
) -> None:
    task = {"id": "t", "interval_seconds": 60, "prompt": "p"}
    assert (await api.post("/api/tasks", json=task)).status_code == 201
    writes = [("POST", "/api/tasks"), ("PATCH", "/api/tasks/t"), ("POST", "/api/runs/r/answer")]
    for method, path in writes:
        reply = await api.request(method, path)
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"] == "body: Field required", (path, reply.text)


async def test_a_thread_filter_by_values_is_refused_not_ignored(api: httpx.AsyncClient) -> None:
    """``threads.search(values=...)`` and ``threads.count(values=...)`` filter by the
    threads' state on the LangGraph server; here they were ignored, so every thread was
    answered as a match. Now a 422 says so (as ``extract``, which shapes the answer)."""
    assert (await api.post("/threads", json={"thread_id": "t"})).status_code == 200
    for path, body in [
        ("/threads/search", {"values": {"topic": "none of them"}}),
        ("/threads/count", {"values": {"topic": "none of them"}}),
        ("/threads/search", {"extract": {"last": "values.messages[-1]"}}),
    ]:
        reply = await api.post(path, json=body)
        assert reply.status_code == 422, (path, reply.text)
        assert reply.json()["detail"].startswith(f"{next(iter(body))}: "), reply.text
    everything = await api.post("/threads/search", json={"values": {}, "limit": 10})
    assert [t["thread_id"] for t in everything.json()] == ["t"]  # the SDK omits an empty one


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_nul_in_an_id_names_nothing_and_is_no_database_failure(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL refuses a NUL (U+0000) in any text, also in a lookup: a task, run or
    thread id with one in the URL answered 503 ``database ...: PostgreSQL text fields
    cannot contain NUL`` (the database said failing, to a client that retries a 503, and
    to a monitor). Now a 4xx, as on SQLite, and nothing is written."""
    from scheduler import TaskScheduler
    from tests import prompt_graphs
    from tests.conftest import make_settings

    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    if database == "postgresql":
        url = request.getfixturevalue("pg_schema_url")
    settings = make_settings(http_rate_per_second=0)
    scheduler = TaskScheduler(database_url=url, graph=prompt_graphs.graph, settings=settings)
    try:
        async with client_of(scheduler) as api:
            api.scheduler = scheduler  # type: ignore[attr-defined]
            task = {"id": "t", "interval_seconds": 3600, "prompt": "hi", "thread_id": "th"}
            assert (await api.post("/api/tasks", json=task)).status_code == 201
            replies = [
                await api.get("/api/tasks/t%00"),
                await api.patch("/api/tasks/t%00", json={"prompt": "x"}),
                await api.delete("/api/tasks/t%00"),
                await api.post("/api/tasks/t%00/run"),
                await api.post("/api/tasks/t%00/pause"),
                await api.get("/api/tasks/t%00/next"),
                await api.get("/api/runs/r%00"),
                await api.post("/api/runs/r%00/cancel"),
                await api.get("/threads/th%00"),
                await api.get("/threads/th%00/runs"),
                await api.get("/threads/th/runs/r%00"),
                await api.post("/threads/th%00/runs/crons", json=cron(api)),
                await api.get("/tasks/t%00"),  # the dashboard
            ]
            for reply in replies:
                assert reply.status_code in (404, 422), (reply.request.url, reply.text)
                assert "database" not in reply.text, (reply.request.url, reply.text)
            filters = [("/api/runs", {"task_id": "t\x00"}), ("/api/tasks", {"source": "\x00"})]
            for path, params in filters:
                reply = await api.get(path, params=params)
                assert reply.status_code in (200, 422) and "database" not in reply.text, reply.text
            assert [t["id"] for t in (await api.get("/api/tasks")).json()["items"]] == ["t"]
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def test_a_large_metadata_filter_lets_the_event_loop_run_while_it_is_matched(
    api: httpx.AsyncClient,
) -> None:
    """Searches are matched on the event loop: a filter within the bound (a million
    steps) over a few hundred crons held it for the whole match, up to half a second, and
    nothing fired meanwhile (a client could send one after another). The match now lets
    the loop run every few milliseconds; the answer is the same."""
    held = {"d": [{"k": i} for i in range(40)]}
    made = [
        (await api.post("/runs/crons", json=cron(api, metadata=held))).json() for _ in range(300)
    ]
    wanted = {"metadata": {"d": [{"k": i} for i in range(39, -1, -1)]}}
    async with loop_gaps() as gaps:
        await asyncio.sleep(0.01)
        began = time.monotonic()
        found = await api.post("/runs/crons/search", json={**wanted, "limit": 1000})
        took = time.monotonic() - began
        counted = await api.post("/runs/crons/count", json=wanted)
    assert found.status_code == 200
    assert sorted(c["cron_id"] for c in found.json()) == sorted(c["cron_id"] for c in made)
    assert counted.json() == len(made)
    stalled = max(gaps)
    assert stalled < took / 3, f"the event loop stalled {stalled:.3f} s of the {took:.3f} s"
