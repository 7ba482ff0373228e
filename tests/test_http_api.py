"""The native REST API, /healthz, /metrics and the request bounds, on a real scheduler
(SQLite file, real graph) with the app served in the same event loop (httpx's ASGI
transport: no socket, the same code uvicorn runs)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler import TaskDefinition, TaskScheduler
from scheduler.server import create_app
from scheduler.server.cron_list import CronList
from scheduler.server.crons import CRONS_SOURCE, graph_id
from scheduler.server.replies import encode
from tests import prompt_graphs
from tests.conftest import SchedulerFactory, eventually, make_settings


@pytest.fixture
async def api(make_scheduler: SchedulerFactory) -> AsyncIterator[httpx.AsyncClient]:
    scheduler = make_scheduler(http_rate_per_second=0)
    async with client_of(scheduler) as c:
        yield c


def client_of(scheduler: Any) -> httpx.AsyncClient:
    """A client of ``scheduler``'s app (the scheduler started), through httpx's ASGI
    transport."""
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def final(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
        return run if run["status"] not in ("queued", "running") else None

    result: dict[str, Any] = await eventually(done, message=f"run {run_id} to end")
    return result


async def test_tasks_through_rest(api: httpx.AsyncClient) -> None:
    made = await api.post(
        "/api/tasks", json={"id": "report", "schedule": "every day at 09:00", "prompt": "hi"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["source"] == "http" and made.json()["state"] == "active"
    again = await api.post(
        "/api/tasks", json={"id": "report", "interval_seconds": 5, "prompt": "p"}
    )
    assert again.status_code == 409 and again.json()["detail"] == (
        "id: a task with id 'report' already exists; change it with PATCH /api/tasks/report"
    )
    bad = await api.post("/api/tasks", json={"id": "x", "interval_seconds": -1, "prompt": "p"})
    assert bad.status_code == 422 and "interval_seconds" in bad.json()["detail"]
    for i in range(3):
        await api.post("/api/tasks", json={"id": f"t{i}", "interval_seconds": 3600, "prompt": "p"})
    page = (await api.get("/api/tasks", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 4 and [t["id"] for t in page["items"]] == ["t0", "t1"]
    patched = await api.patch("/api/tasks/report", json={"schedule": "every 2 hours"})
    assert patched.json()["definition"]["interval_seconds"] == 7200
    assert (await api.post("/api/tasks/report/pause")).json()["state"] == "paused"
    paused = (await api.get("/api/tasks", params={"state": "paused"})).json()["items"]
    assert [t["id"] for t in paused] == ["report"]
    assert (await api.post("/api/tasks/report/resume")).json()["state"] == "active"
    assert len((await api.get("/api/tasks/report/next", params={"count": 3})).json()) == 3
    missing = await api.get("/api/tasks/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no task with id 'nope'"})
    gone = await api.get("/api/runs/nope")
    assert (gone.status_code, gone.json()) == (404, {"detail": "no run with id 'nope'"})
    assert (await api.delete("/api/tasks/t2")).status_code == 204
    assert (await api.get("/api/tasks/t2")).status_code == 404


async def test_a_patch_merges_objects_as_a_json_merge_patch_does(api: httpx.AsyncClient) -> None:
    """RFC 7386: an object sent merges into the stored one (a key sent as null goes), so
    ``{"after": {"on": "failed"}}`` makes a fallback of the same tasks, as the CLI's
    ``edit --after-on failed`` does; before, it replaced ``after`` whole: 422, "after.tasks:
    Field required", and ``metadata`` sent lost the keys not sent."""
    for task_id in ("a", "b"):
        await api.post("/api/tasks", json={"id": task_id, "interval_seconds": 60, "prompt": "p"})
    made = await api.post(
        "/api/tasks",
        json={"id": "d", "after": ["a", "b"], "prompt": "p", "metadata": {"x": 1, "y": 2}},
    )
    assert made.status_code == 201, made.text
    patched = await api.patch(
        "/api/tasks/d", json={"after": {"on": "failed"}, "metadata": {"y": None, "z": 3}}
    )
    assert patched.status_code == 200, patched.text
    definition = patched.json()["definition"]
    assert definition["after"] == {"tasks": ["a", "b"], "on": "failed", "mode": "all"}
    assert definition["metadata"] == {"x": 1, "z": 3}
    listed = await api.patch("/api/tasks/d", json={"after": "b"})  # not an object: replaces
    assert listed.json()["definition"]["after"] == {
        "tasks": ["b"],
        "on": "succeeded",
        "mode": "all",
    }


async def test_runs_through_rest(api: httpx.AsyncClient) -> None:
    await api.post("/api/tasks", json={"id": "ok", "interval_seconds": 3600, "prompt": "hi"})
    await api.post("/api/tasks", json={"id": "bad", "interval_seconds": 3600, "prompt": "fail"})
    ok = (await api.post("/api/tasks/ok/run")).json()
    bad = (await api.post("/api/tasks/bad/run")).json()
    assert (await final(api, ok["id"]))["status"] == "succeeded"
    failed = await final(api, bad["id"])
    assert failed["status"] == "failed" and "failing on command" in failed["error_message"]
    listed = (await api.get("/api/runs", params={"task_id": "bad", "status": "failed"})).json()
    assert [r["id"] for r in listed["items"]] == [bad["id"]]
    await api.post("/api/tasks", json={"id": "slow", "interval_seconds": 3600, "prompt": "hang"})
    slow = (await api.post("/api/tasks/slow/run")).json()

    async def running() -> bool:
        return bool((await api.get(f"/api/runs/{slow['id']}")).json()["status"] == "running")

    await eventually(running, message="the slow run to start")
    assert (await api.post(f"/api/runs/{slow['id']}/cancel")).status_code == 200
    assert (await final(api, slow["id"]))["status"] == "cancelled"
    assert (await api.post(f"/api/runs/{ok['id']}/cancel")).status_code == 409
    preview = (
        await api.get(
            "/api/schedules/preview", params={"schedule": "weekdays at 08:00", "count": 2}
        )
    ).json()
    assert preview["description"].startswith("At 08:00") and len(preview["times"]) == 2
    assert preview["passed"] is False
    past = {"schedule": "at 2001-01-01 09:00", "tz": "UTC"}
    passed = (await api.get("/api/schedules/preview", params=past)).json()
    assert passed["times"] == ["2001-01-01T09:00:00+00:00"] and passed["passed"] is True
    # the zone's name as everywhere else (tz still taken); a misspelt one is refused, not
    # answered in the default zone
    for zone in ({"timezone": "Asia/Tokyo"}, {"tz": "Asia/Tokyo"}):
        tokyo = await api.get("/api/schedules/preview", params={"schedule": "0 9 * * *", **zone})
        assert tokyo.json()["timezone"] == "Asia/Tokyo", tokyo.text
        assert tokyo.json()["times"][0].endswith("T09:00:00+09:00"), tokyo.text
    for wrong in ({"timezon": "Asia/Tokyo"}, {"timezone": "Asia/Tokyo", "tz": "UTC"}):
        refused = await api.get("/api/schedules/preview", params={"schedule": "@daily", **wrong})
        assert refused.status_code == 422 and "timezon" in refused.json()["detail"], refused.text
    # an empty zone answered in the default one; an unknown one was blamed on the schedule
    for zone, says in [("", "timezone: is empty"), ("Mars/Base", "timezone: unknown time zone")]:
        for name in ("timezone", "tz"):
            params = {"schedule": "every 2h", name: zone}
            refused = await api.get("/api/schedules/preview", params=params)
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"].startswith(says), refused.text


async def test_answering_a_run_that_does_not_wait_is_a_409_as_a_cancel_is(
    api: httpx.AsyncClient, tmp_path: Any
) -> None:
    """The answer is fine, the run's state is not: a run answered already, running or
    finished answers 409 (as a cancel of a run that is not running), not a 422 that
    blamed ``value``; an answer that does not fit its question stays a 422."""
    task = {"id": "ask", "interval_seconds": 3600, "prompt": "ask-record-sleep:0"}
    task["metadata"] = {"log": str(tmp_path / "log")}
    assert (await api.post("/api/tasks", json=task)).status_code == 201
    run_id = (await api.post("/api/tasks/ask/run")).json()["id"]

    async def waiting() -> bool:
        return bool((await api.get(f"/api/runs/{run_id}")).json()["status"] == "waiting")

    await eventually(waiting, message="the run to wait at interrupt()")
    asked = (await api.get(f"/api/runs/{run_id}")).json()
    await asyncio.sleep(0.05)
    assert (await api.post(f"/api/runs/{run_id}/answer", json={"value": None})).status_code == 422
    extra = await api.post(f"/api/runs/{run_id}/answer", json={"value": "yes", "valeu": 1})
    assert extra.status_code == 422 and "valeu" in extra.json()["detail"], extra.text
    answered = await api.post(f"/api/runs/{run_id}/answer", json={"value": "yes"})
    assert answered.status_code == 200, answered.text
    again = await api.post(f"/api/runs/{run_id}/answer", json={"value": "yes"})
    assert again.status_code == 409, again.text
    assert not again.json()["detail"].startswith("value:"), again.text
    ended = await final(api, run_id)
    assert ended["status"] == "succeeded"
    # its start is its first (the answer's resume wrote its own over it), and the start
    # lateness counted it once (the resume added a sample as late as the answer was)
    assert ended["started_at"] == asked["started_at"], ended
    metrics = (await api.get("/metrics")).text
    assert "scheduler_start_lateness_seconds_count 1.0" in metrics
    done = await api.post(f"/api/runs/{run_id}/answer", json={"value": "yes"})
    assert done.status_code == 409, done.text
    assert done.json()["detail"] == (
        f"run {run_id!r} is not waiting for an answer (it is succeeded)"
    )


async def test_removing_a_task_others_run_after(api: httpx.AsyncClient) -> None:
    await api.post("/api/tasks", json={"id": "fetch", "interval_seconds": 60, "prompt": "f"})
    await api.post("/api/tasks", json={"id": "report", "after": "fetch", "prompt": "r"})
    refused = await api.delete("/api/tasks/fetch")
    assert refused.status_code == 409 and "needed by report" in refused.json()["detail"]
    assert (await api.delete("/api/tasks/fetch", params={"force": "true"})).status_code == 204


async def test_a_task_that_cannot_be_loaded_is_a_409_and_counted_by_the_metrics(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """The task's state, not the request: a PATCH answered 409, and resume, run and next
    a 422 with the same message."""
    scheduler = make_scheduler(http_rate_per_second=0)
    async with client_of(scheduler) as api:
        await api.post("/api/tasks", json={"id": "t", "interval_seconds": 60, "prompt": "p"})
        with sqlite3.connect(tmp_path / "scheduler.db") as db:
            db.execute("UPDATE scheduler_tasks SET definition = 'not json' WHERE id = 't'")
        scheduler.add_task(TaskDefinition(id="other", interval_seconds=60, prompt="p"))
        for method, path, body in [
            ("PATCH", "/api/tasks/t", {"prompt": "q"}),
            ("POST", "/api/tasks/t/resume", None),
            ("POST", "/api/tasks/t/run", None),
            ("GET", "/api/tasks/t/next", None),
        ]:
            answer = await api.request(method, path, json=body)
            assert answer.status_code == 409, (path, answer.text)
            assert "task 't' cannot be loaded" in answer.json()["detail"], answer.text
        # counted before it is due (the dispatcher finds a row when it is: the gauge read
        # 0 for a broken task due in a minute, a year, or paused)
        assert "scheduler_unloadable_tasks 1.0" in (await api.get("/metrics")).text
        scheduler.remove_task("t")
        assert "scheduler_unloadable_tasks 0.0" in (await api.get("/metrics")).text


async def test_a_405_names_every_method_of_its_path(api: httpx.AsyncClient) -> None:
    """Starlette's named the methods of the first route of the path only (``PUT
    /api/tasks/t`` answered ``Allow: PATCH``, though GET and DELETE work too)."""
    for method, path, allowed in [
        ("PUT", "/api/tasks", "GET, POST"),
        ("PUT", "/api/tasks/t", "DELETE, GET, PATCH"),
        ("PUT", "/runs/crons/1f1f1c25-0ea6-6bb4-8001-f4fcd1da8098", "DELETE, GET, PATCH"),
        ("POST", "/healthz", "GET, HEAD"),
    ]:
        refused = await api.request(method, path)
        assert (refused.status_code, refused.headers["allow"]) == (405, allowed), path


async def test_a_key_given_twice_in_a_body_is_refused(api: httpx.AsyncClient) -> None:
    """As the CLI's JSON flags and a tasks file refuse it: the last one was taken, unseen
    (``{"id": "dup1", "id": "dup2"}`` made ``dup2``)."""
    json_type = {"content-type": "application/json"}
    for body, key in [
        ('{"id": "dup1", "id": "dup2", "interval_seconds": 60, "prompt": "p"}', "id"),
        ('{"id": "m", "interval_seconds": 60, "prompt": "p", "metadata": {"a": 1, "a": 2}}', "a"),
    ]:
        refused = await api.post("/api/tasks", content=body, headers=json_type)
        assert refused.status_code == 422, refused.text
        assert (
            refused.json()["detail"]
            == f"{key}: given twice in one object of the body; give it once"
        )
    assert (await api.get("/api/tasks")).json()["items"] == []
    await api.post("/api/tasks", json={"id": "t", "interval_seconds": 60, "prompt": "p"})
    patched = await api.patch(
        "/api/tasks/t", content='{"prompt": "a", "prompt": "b"}', headers=json_type
    )
    assert patched.status_code == 422 and patched.json()["detail"].startswith("prompt: given twice")
    assert (await api.get("/api/tasks/t")).json()["definition"]["prompt"] == "p"


async def test_healthz_and_metrics(api: httpx.AsyncClient) -> None:
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert health.json()["role"] == "active" and health.json()["database"] == "ok"
    await api.post("/api/tasks", json={"id": "ok", "interval_seconds": 3600, "prompt": "hi"})
    run = (await api.post("/api/tasks/ok/run")).json()
    await final(api, run["id"])
    text = (await api.get("/metrics")).text
    assert 'scheduler_runs{status="succeeded"} 1.0' in text
    assert "scheduler_start_lateness_seconds_count 1.0" in text
    assert "scheduler_active 1.0" in text and "scheduler_queue_depth 0.0" in text


async def test_request_bounds(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(http_rate_per_second=5, http_max_body_bytes=2048)
    async with client_of(scheduler) as c:
        big = await c.post(
            "/api/tasks", json={"id": "x", "prompt": "p" * 5000, "interval_seconds": 5}
        )
        assert big.status_code == 413
        statuses = await asyncio.gather(*(c.get("/api/tasks") for _ in range(20)))
        slowed = [r for r in statuses if r.status_code == 429]
        assert slowed and all(r.headers["retry-after"] == "1" for r in slowed)
        assert scheduler.list_tasks() == []


async def test_a_thread_made_twice(api: httpx.AsyncClient) -> None:
    made = (await api.post("/threads", json={"thread_id": "t-1", "metadata": {"a": 1}})).json()
    assert made["thread_id"] == "t-1" and made["metadata"] == {"a": 1}
    assert (await api.post("/threads", json={"thread_id": "t-1"})).status_code == 409
    kept = await api.post("/threads", json={"thread_id": "t-1", "if_exists": "do_nothing"})
    assert kept.status_code == 200 and kept.json()["metadata"] == {"a": 1}
    [found] = (await api.post("/threads/search", json={"metadata": {"a": 1}})).json()
    assert found["thread_id"] == "t-1"


async def test_callbacks_through_http_pass_the_callback_policy(api: httpx.AsyncClient) -> None:
    refused = await api.post(
        "/api/tasks",
        json={"id": "x", "interval_seconds": 60, "prompt": "p", "result_callback": "os:system"},
    )
    assert refused.status_code == 422 and "os:system" in refused.json()["detail"]
    assert (await api.get("/api/tasks/x")).status_code == 404


async def test_the_kept_crons_follow_this_servers_own_creates_and_deletes(
    make_scheduler: SchedulerFactory,
) -> None:
    """A cron the crons API creates or deletes is applied to the kept list in place: the
    searches after it read nothing from the database, and the list stays what a fresh read
    gives. Any other change (a pause through the REST API) makes the next search read."""
    # (the list is also read again once a poll interval has passed, for other processes'
    # changes: a long one, so that a slow machine does not read for that reason)
    scheduler = make_scheduler(http_rate_per_second=0, poll_interval_seconds=60)
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    assistant = graph_id(scheduler.settings.graph)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as api:

        async def search() -> list[str]:
            found = await api.post("/runs/crons/search", json={"limit": 100})
            assert found.status_code == 200, found.text
            return [c["cron_id"] for c in found.json()]

        assert await search() == []
        kept: CronList = app.app.state.cron_list
        reads = 0
        read = kept.read

        def counted() -> Any:
            nonlocal reads
            reads += 1
            return read()

        kept.read = counted  # type: ignore[method-assign]
        made: list[str] = []
        for hour in range(4):
            body = {"assistant_id": assistant, "schedule": f"0 {hour} * * *", "input": {}}
            made.insert(0, (await api.post("/runs/crons", json=body)).json()["cron_id"])
            assert await search() == made
        assert (await api.delete(f"/runs/crons/{made[1]}")).status_code == 204
        del made[1]
        assert await search() == made
        assert reads == 0
        fresh = CronList(scheduler, CRONS_SOURCE).read()
        assert [encode(c) for c in fresh.crons] == kept.kept().encoded  # type: ignore[union-attr]

        assert (await api.post(f"/api/tasks/{made[0]}/pause")).status_code == 200
        found = (await api.post("/runs/crons/search", json={"limit": 100})).json()
        assert reads == 1 and [c["enabled"] for c in found] == [False, True, True]


async def test_crons_bodies_that_do_not_validate_answer_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    cases = [
        ("/runs/crons/search", {"limit": 0}, "limit"),
        ("/runs/crons/count", {"sort_order": "sideways"}, "sort_order"),
        ("/runs/crons", {"schedule": "0 9 * * *"}, "assistant_id"),
        ("/threads/t-1/runs/crons", {"assistant_id": 5, "schedule": "0 9 * * *"}, "assistant_id"),
    ]
    for path, body, field in cases:
        answer = await api.post(path, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert f"{field}:" in answer.json()["detail"], (path, answer.text)
    broken = await api.post("/runs/crons/search", content=b"{not json")
    assert broken.status_code == 422 and "JSON" in broken.json()["detail"]
    patched = await api.patch("/runs/crons/nope", json={"enabled": "maybe"})
    assert patched.status_code == 422 and "enabled:" in patched.json()["detail"]


async def test_every_422_names_the_field_the_same_way(api: httpx.AsyncClient) -> None:
    answers = [
        await api.get("/api/tasks", params={"limit": 0}),  # a query parameter (FastAPI's check)
        await api.post("/threads/search", json={"limit": "many"}),  # a body model
        await api.post("/runs/crons/search", json={"limit": 0}),  # a body read by pydantic
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("limit: "), detail


async def test_a_cron_a_read_already_holds_is_not_followed_in_twice(
    make_scheduler: SchedulerFactory,
) -> None:
    """The list read on a worker thread may already hold a cron whose create committed
    between the read's count of local changes and its rows: following that create adds
    nothing."""
    scheduler = make_scheduler(http_rate_per_second=0)
    body = {"assistant_id": graph_id(scheduler.settings.graph), "schedule": "0 9 * * *"}
    async with client_of(scheduler) as api:
        before = scheduler.store.local_changes
        cron = (await api.post("/runs/crons", json=body)).json()
    kept = CronList(scheduler, CRONS_SOURCE)
    read = kept.read()  # holds the cron ...
    read.changes = before  # ... as if its count had been taken just before the create
    kept.follow(before, added=cron)
    assert [c["cron_id"] for c in read.crons] == [cron["cron_id"]]
    assert len(read.encoded) == 1


@pytest.mark.parametrize(
    ("headers", "served"),
    [
        ({}, True),  # a program: the SDK, curl
        ({"sec-fetch-site": "same-origin", "origin": "http://127.0.0.1"}, True),
        ({"sec-fetch-site": "none"}, True),  # typed into the address bar
        ({"origin": "http://127.0.0.1"}, True),  # an older browser, this origin
        ({"origin": "http://trusted.example", "sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "cross-site", "origin": "https://evil.example"}, False),
        ({"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:5173"}, False),
        ({"sec-fetch-site": "cross-site"}, False),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null"}, False),  # a sandboxed frame, a data: URL
    ],
)
async def test_writes_from_another_sites_page_are_refused(
    make_scheduler: SchedulerFactory, headers: dict[str, str], served: bool
) -> None:
    scheduler = make_scheduler(http_rate_per_second=0, http_cors_origins=["http://trusted.example"])
    cron = {"assistant_id": graph_id(scheduler.settings.graph), "schedule": "0 9 * * *"}
    async with client_of(scheduler) as c:
        task = {"id": "t", "interval_seconds": 3600, "prompt": "hi"}
        made = await c.post("/api/tasks", json=task, headers=headers)
        cron_made = await c.post("/runs/crons", json=cron, headers=headers)
        listed = await c.get("/api/tasks", headers=headers)  # reads are never refused
        assert listed.status_code == 200
    if served:
        assert (made.status_code, cron_made.status_code) == (201, 200)
        assert len(scheduler.list_tasks()) == 2
    else:
        assert made.status_code == cron_made.status_code == 403
        assert made.json()["detail"].startswith("cross-site request refused")
        assert scheduler.list_tasks() == []


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("127.0.0.1:8123", True),
        ("127.3.2.1", True),
        ("localhost:8123", True),
        ("[::1]:8123", True),
        ("127.0.0.1.rebind.attacker.example:8123", False),  # a name, not an address
        ("127.attacker.example", False),
        ("localhost.attacker.example", False),
        ("attacker.example", False),
        ("[::1", False),
        ("", False),
    ],
)
async def test_without_a_key_only_loopback_host_names_are_served(
    make_scheduler: SchedulerFactory, host: str, served: bool
) -> None:
    """A page whose own name an attacker points at 127.0.0.1 (DNS rebinding) sends its own
    name as Host, and is same-origin to itself: only the Host check stops it."""
    scheduler = make_scheduler(http_rate_per_second=0)
    task = {"id": "t", "interval_seconds": 3600, "prompt": "hi"}
    same_origin = {"host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"}
    async with client_of(scheduler) as c:
        read = await c.get("/api/tasks", headers=same_origin)
        made = await c.post("/api/tasks", json=task, headers=same_origin)
    if served:
        assert (read.status_code, made.status_code) == (200, 201)
    else:
        assert read.status_code == made.status_code == 403
        assert scheduler.list_tasks() == []


async def test_callbacks_through_http_need_a_listed_module(
    make_scheduler: SchedulerFactory,
) -> None:
    """Importing a module runs its code: a request may set a callback only from a module
    SCHEDULER_CALLBACK_MODULES lists, even one of the project's (allowed from Python)."""
    from scheduler import TaskDefinition

    task = {"id": "h", "interval_seconds": 3600, "prompt": "hi"}
    for listed in ([], ["tests.callbacks"]):
        scheduler = make_scheduler(http_rate_per_second=0, callback_modules=listed)
        scheduler.add_task(  # from Python: the project's module is enough
            TaskDefinition(
                id="py", interval_seconds=60, prompt="p", result_callback="tests.callbacks:collect"
            )
        )
        async with client_of(scheduler) as c:
            made = await c.post(
                "/api/tasks", json={**task, "result_callback": "tests.callbacks:collect"}
            )
            kept = await c.patch("/api/tasks/py", json={"enabled": False})  # callback unchanged
            changed = await c.patch(
                "/api/tasks/py", json={"on_failure_callback": "tests.callbacks:on_failure"}
            )
        assert kept.status_code == 200 and kept.json()["definition"]["enabled"] is False
        if listed:
            assert (made.status_code, changed.status_code) == (201, 200)
        else:
            for reply, field in ((made, "result_callback"), (changed, "on_failure_callback")):
                assert reply.status_code == 422
                assert reply.json()["detail"].startswith(f"{field} 'tests.callbacks:")
                assert "SCHEDULER_CALLBACK_MODULES=tests" in reply.json()["detail"]
            assert [t.id for t in scheduler.list_tasks()] == ["py"]
            assert scheduler.get_task("py").definition.on_failure_callback is None
        await scheduler.stop()


async def test_list_offsets_are_bounded_and_paged_in_the_database(api: httpx.AsyncClient) -> None:
    await api.post("/api/tasks", json={"id": "p", "interval_seconds": 3600, "prompt": "hi"})
    made = [(await api.post("/api/tasks/p/run")).json()["id"] for _ in range(3)]
    for run_id in made:
        await final(api, run_id)
    page = (await api.get("/api/runs", params={"limit": 1, "offset": 1})).json()
    assert [r["id"] for r in page["items"]] == [made[1]]  # newest first
    assert (await api.get("/api/runs", params={"offset": 10**9})).json()["items"] == []
    for path in ("/api/runs", "/api/tasks"):
        reply = await api.get(path, params={"offset": 10**20})
        assert reply.status_code == 422 and reply.json()["detail"].startswith("offset:")
    # the thread runs the SDK lists clamp their paging (limit 1-1000, offset 0-10**9)
    await api.post("/threads", json={"thread_id": "t"})
    assert (await api.get("/threads/t/runs", params={"offset": 10**20})).json() == []
    for path in ("/runs/crons/search", "/threads/search"):
        reply = await api.post(path, json={"offset": 10**20})
        assert reply.status_code == 422 and reply.json()["detail"].startswith("offset:")


async def test_a_cors_front_end_with_a_key(make_scheduler: SchedulerFactory) -> None:
    """Origins are matched as browsers send them whatever the setting's spelling; their
    preflights need no key (a browser sends none), their writes do; others get neither."""
    from pydantic import ValidationError

    from scheduler.settings import Settings

    for junk in ("http://localhost:3000/app", "http://user@app.example", "http://a.example?x=1",
                 "http://a.example:abc", "app.example", "ftp://a.example", "null"):  # fmt: skip
        with pytest.raises(ValidationError, match="not an origin"):
            Settings(http_cors_origins=junk)
    spelled = "https://App.Example:443/, http://[::1]:3000, https://bücher.example, *"
    assert Settings(http_cors_origins=spelled).http_cors_origins == [
        "https://app.example", "http://[::1]:3000", "https://xn--bcher-kva.example", "*",
    ]  # fmt: skip
    scheduler = make_scheduler(
        http_rate_per_second=0, api_key="k", http_cors_origins="HTTP://LocalHost:3000/"
    )
    assert scheduler.settings.http_cors_origins == ["http://localhost:3000"]
    front, other = "http://localhost:3000", "http://localhost:4000"
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "x-api-key"}
    async with client_of(scheduler) as c:
        preflight = await c.options("/api/tasks", headers={"origin": front, **ask})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == front
        refused = await c.options("/api/tasks", headers={"origin": other, **ask})
        assert refused.status_code == 401  # not a trusted page's: the key is asked for
        assert (await c.options("/api/tasks", headers=ask)).status_code == 401  # no Origin
        browser = {"origin": front, "sec-fetch-site": "same-site"}
        task = {"id": "t", "interval_seconds": 3600, "prompt": "hi"}
        keyless = await c.post("/api/tasks", json=task, headers=browser)
        assert keyless.status_code == 401
        # the guard's answers carry the CORS headers too: the page's browser showed a
        # network error, not "the key is missing"
        assert keyless.headers["access-control-allow-origin"] == front
        wrong = await c.get("/api/tasks", headers={**browser, "x-api-key": "nope"})
        assert (wrong.status_code, wrong.headers["access-control-allow-origin"]) == (403, front)
        assert (
            "access-control-allow-origin"
            not in (
                await c.get("/api/tasks", headers={"origin": other, "sec-fetch-site": "same-site"})
            ).headers
        )
        made = await c.post("/api/tasks", json=task, headers={**browser, "x-api-key": "k"})
        assert made.status_code == 201
        assert made.headers["access-control-allow-origin"] == front
        elsewhere = {"origin": other, "sec-fetch-site": "same-site", "x-api-key": "k"}
        assert (await c.post("/api/tasks", json=task, headers=elsewhere)).status_code == 403
    assert [t.id for t in scheduler.list_tasks()] == ["t"]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_threads_status_is_its_newest_runs(
    database: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    """As the LangGraph server's (measured on ``langgraph dev``): a run going makes its
    thread ``busy``, one waiting at ``interrupt()`` or cancelled ``interrupted``, one that
    failed ``error``; a run that succeeded after a failure makes it ``idle`` again."""
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    if database == "postgresql":
        url = request.getfixturevalue("pg_schema_url")
    scheduler = TaskScheduler(
        database_url=url, graph=prompt_graphs.graph, settings=make_settings(http_rate_per_second=0)
    )
    try:
        async with client_of(scheduler) as api:
            await _statuses(api, tmp_path)
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def _statuses(api: httpx.AsyncClient, tmp_path: Any) -> None:
    commands = {
        "going": "hang",
        "asking": "ask-record-sleep:0",
        "failing": "fail",
        "cancelled": "hang",
        "recovered": "fail",
        "done": "hi",
    }
    mine = {"test": "statuses"}
    runs = {}
    for name, prompt in commands.items():
        await api.post("/threads", json={"thread_id": f"t-{name}", "metadata": mine})
        task = {"id": name, "interval_seconds": 3600, "prompt": prompt, "thread_id": f"t-{name}"}
        task["metadata"] = {"log": str(tmp_path / "log")}
        assert (await api.post("/api/tasks", json=task)).status_code == 201
        runs[name] = (await api.post(f"/api/tasks/{name}/run")).json()["id"]
    for name in ("failing", "recovered", "done"):
        await final(api, runs[name])

    async def status(name: str) -> str:
        thread: dict[str, Any] = (await api.get(f"/threads/t-{name}")).json()
        return str(thread["status"])

    async def settled() -> bool:
        run = (await api.get(f"/api/runs/{runs['cancelled']}")).json()
        if run["status"] == "running":
            await api.post(f"/api/runs/{runs['cancelled']}/cancel")
        waiting = (await api.get(f"/api/runs/{runs['asking']}")).json()["status"] == "waiting"
        return waiting and run["status"] == "cancelled"

    await eventually(settled, message="the question asked and the cancel done")
    await api.patch("/api/tasks/recovered", json={"prompt": "hi"})
    await final(api, (await api.post("/api/tasks/recovered/run")).json()["id"])
    expected = {
        "going": "busy",
        "asking": "interrupted",
        "failing": "error",
        "cancelled": "interrupted",
        "recovered": "idle",
        "done": "idle",
    }
    assert {name: await status(name) for name in commands} == expected
    for wanted in ("busy", "interrupted", "error", "idle"):
        found = (
            await api.post("/threads/search", json={"status": wanted, "metadata": mine})
        ).json()
        names = {name for name, status in expected.items() if status == wanted}
        assert {t["thread_id"] for t in found} == {f"t-{n}" for n in names}
        assert {t["status"] for t in found} == {wanted}
        counted = await api.post("/threads/count", json={"status": wanted, "metadata": mine})
        assert counted.json() == len(names)
    page = (await api.post("/threads/search", json={"metadata": mine, "limit": 100})).json()
    assert {t["thread_id"]: t["status"] for t in page} == {f"t-{n}": s for n, s in expected.items()}
