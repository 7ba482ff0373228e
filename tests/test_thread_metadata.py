"""A thread's metadata as the LangGraph server shows it once runs used the thread (measured
on ``langgraph dev``; ``tests/test_threads_reference.py`` runs the same calls against
it): a run adds the graph's ``graph_id`` and ``assistant_id`` to its thread's metadata,
over what the thread had; a thread a run made (a cron's without a thread, a task's
``thread_id`` no ``threads.create`` made) has the metadata of that run's task with them.
``threads.get``, ``threads.search`` and ``threads.count`` (their ``metadata`` filter
too) answer it; the runs' history is where it is read from, nothing is written for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler import TaskDefinition, TaskScheduler
from scheduler.settings import sqlite_url
from tests import prompt_graphs
from tests.conftest import make_settings
from tests.test_http_edges import client_of, cron


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started scheduler (``.scheduler``) on a SQLite file, or a PostgreSQL
    schema."""
    url = (
        sqlite_url(tmp_path / "scheduler.db")
        if request.param == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    settings = make_settings(http_rate_per_second=0)
    scheduler = TaskScheduler(database_url=url, graph=prompt_graphs.graph, settings=settings)
    try:
        async with client_of(scheduler) as c:
            c.scheduler = scheduler  # type: ignore[attr-defined]
            yield c
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


HELLO = {"messages": [{"role": "user", "content": "hello"}]}


async def graph_ids(api: httpx.AsyncClient, thread: str) -> dict[str, str]:
    """The graph's ids as a run on ``thread`` names them (``runs.list``)."""
    [run, *_] = (await api.get(f"/threads/{thread}/runs")).json()
    return {"graph_id": run["metadata"]["graph_id"], "assistant_id": run["assistant_id"]}


async def searched(api: httpx.AsyncClient, metadata: dict[str, Any]) -> list[str]:
    found = await api.post("/threads/search", json={"metadata": metadata, "limit": 100})
    assert found.status_code == 200, found.text
    return sorted(t["thread_id"] for t in found.json())


async def counted(api: httpx.AsyncClient, metadata: dict[str, Any]) -> int:
    answer = await api.post("/threads/count", json={"metadata": metadata})
    assert answer.status_code == 200, answer.text
    number: int = answer.json()
    return number


async def test_a_run_adds_the_graph_to_its_threads_metadata(api: httpx.AsyncClient) -> None:
    """As on the LangGraph server: a thread ``threads.create`` made has its metadata until
    a run goes on it, then ``graph_id`` and ``assistant_id`` too (the graph's, over the
    thread's own), in ``threads.get``, a search's and a count's filter, and
    ``threads.create(if_exists="do_nothing")``. They were never there: a search for the
    graph's threads found none."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    made = (await api.post("/threads", json={"metadata": {"team": "ops"}})).json()
    thread = made["thread_id"]
    idle = (await api.post("/threads", json={"metadata": {"team": "ops"}})).json()["thread_id"]
    posing = {"team": "ops", "graph_id": "other", "assistant_id": "x"}
    impostor = (await api.post("/threads", json={"metadata": posing})).json()["thread_id"]
    assert (await api.get(f"/threads/{thread}")).json()["metadata"] == {"team": "ops"}
    for task_id, on in (("hello", thread), ("again", impostor)):
        scheduler.add_task(
            TaskDefinition(id=task_id, interval_seconds=3600, prompt="hello", thread_id=on)
        )
        await scheduler.wait_for_run(scheduler.run_task_now(task_id), timeout=10)
    ids = await graph_ids(api, thread)
    assert ids["graph_id"] == cron(api)["assistant_id"]  # (the graph's id in langgraph.json)
    for used in (thread, impostor):
        got = (await api.get(f"/threads/{used}")).json()
        assert got["metadata"] == {"team": "ops", **ids}, got
    assert (await api.get(f"/threads/{idle}")).json()["metadata"] == {"team": "ops"}
    assert await searched(api, {"graph_id": ids["graph_id"]}) == sorted([thread, impostor])
    assert await searched(api, {"team": "ops", **ids}) == sorted([thread, impostor])
    assert await searched(api, {"team": "ops"}) == sorted([thread, idle, impostor])
    assert await searched(api, {"graph_id": "other"}) == []
    assert await counted(api, {"graph_id": ids["graph_id"]}) == 2
    assert await counted(api, {"assistant_id": ids["assistant_id"], "team": "ops"}) == 2
    [found] = (await api.post("/threads/search", json={"ids": [thread]})).json()
    assert found["metadata"] == {"team": "ops", **ids}
    kept = await api.post("/threads", json={"thread_id": thread, "if_exists": "do_nothing"})
    assert kept.json()["metadata"] == {"team": "ops", **ids}


async def test_a_thread_a_run_made_has_its_tasks_metadata_and_the_graph(
    api: httpx.AsyncClient,
) -> None:
    """The fresh thread of a cron without a thread, and a task's own ``thread_id`` that no
    ``threads.create`` made, show the metadata of the task whose run made them, with the
    graph's ids, as the LangGraph server's thread made by a run (its ``if_not_exists:
    create``). They showed ``{}``: a search by the cron's metadata found none of its
    threads."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    mine = {"test": "cron-threads", "team": "ops"}
    made = await api.post("/runs/crons", json=cron(api, input=HELLO, metadata=mine))
    cron_id = made.json()["cron_id"]
    fresh = [(await scheduler.wait_for_run(scheduler.run_task_now(cron_id), timeout=10))]
    fresh.append(await scheduler.wait_for_run(scheduler.run_task_now(cron_id), timeout=10))
    threads = sorted(run.thread_id for run in fresh)
    assert len(set(threads)) == 2  # (a fresh thread per run)
    ids = await graph_ids(api, threads[0])
    for thread in threads:
        assert (await api.get(f"/threads/{thread}")).json()["metadata"] == {**mine, **ids}
    assert await searched(api, {"test": "cron-threads"}) == threads
    assert await searched(api, {**mine, "graph_id": ids["graph_id"]}) == threads
    assert await counted(api, {"test": "cron-threads"}) == 2

    own = {"owner": "bob", "graph_id": "not-this-one"}  # (the graph's id wins)
    scheduler.add_task(
        TaskDefinition(
            id="mine", interval_seconds=3600, prompt="hi", thread_id="chat", metadata=own
        )
    )
    await scheduler.wait_for_run(scheduler.run_task_now("mine"), timeout=10)
    expected = {"owner": "bob", **ids}
    assert (await api.get("/threads/chat")).json()["metadata"] == expected
    assert await searched(api, {"owner": "bob"}) == ["chat"]
    assert await searched(api, {"graph_id": ids["graph_id"]}) == sorted([*threads, "chat"])
    listed = (await api.post("/threads/search", json={"limit": 100})).json()
    assert {t["thread_id"]: t["metadata"] for t in listed} == {
        threads[0]: {**mine, **ids},
        threads[1]: {**mine, **ids},
        "chat": expected,
    }
