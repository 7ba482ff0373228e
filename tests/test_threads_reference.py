"""Threads as the SDK reads them after a cron's runs, and ``threads.get_state`` at a
checkpoint the thread has not: the same calls through the official ``langgraph-sdk``
against this scheduler's HTTP server (a real ``python -m scheduler serve --http``
subprocess) and, as the reference, a real ``langgraph dev`` on the same graph (the
fixtures of ``tests/test_crons_api.py``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests import test_crons_api
from tests.test_crons_api import GRAPH, HELLO, Server, sdk, tag

# one xdist worker runs every test of the group (--dist loadgroup): one langgraph dev (a
# session fixture) and this module's server, started once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("langgraph-dev")]

ours = test_crons_api.ours  # the fixtures: this scheduler's server, started once here,
server = test_crons_api.server  # ... each test run against it and against the reference
_close_clients = test_crons_api._close_clients  # (autouse: the SDK clients closed)

EMPTY = {
    "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
    "checkpoint": None, "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
    "parent_checkpoint_id": None,
}  # fmt: skip


async def test_get_state_at_a_checkpoint_the_thread_has_not(server: Server) -> None:
    """200, empty values and the checkpoint asked for, for a thread with a graph (here:
    made with ``graph_id``); the empty state for a thread without one; 404 for no
    thread."""
    client = sdk(server.url, server.api_key)
    named = (await client.threads.create(graph_id=GRAPH, metadata=tag()))["thread_id"]
    bare = (await client.threads.create(metadata=tag()))["thread_id"]
    asked = "1f1f1c25-0ea6-6bb4-8001-f4fcd1da8098"  # (a checkpoint id's form)
    state = await client.threads.get_state(named, checkpoint_id=asked)
    echoed = {"checkpoint_id": asked, "thread_id": named}
    assert state == {**EMPTY, "checkpoint": echoed, "checkpoint_id": asked}
    sent = {"checkpoint_id": asked, "checkpoint_ns": "", "thread_id": bare}
    state = await client.threads.get_state(named, checkpoint=sent)  # type: ignore[arg-type]
    assert state == {**EMPTY, "checkpoint": {**sent, "thread_id": named}, "checkpoint_id": asked}
    assert await client.threads.get_state(bare, checkpoint_id=asked) == EMPTY
    assert await client.threads.get_state(bare) == EMPTY
    missing = await client.http.client.get(f"/threads/{tag()['test']}/state/{asked}")
    assert missing.status_code == 404


async def ran(client: Any, thread_id: str) -> bool:
    runs = await client.runs.list(thread_id)
    return any(run["status"] == "success" for run in runs)


async def test_a_crons_runs_give_their_threads_the_graphs_ids(server: Server) -> None:
    """A cron's run adds ``graph_id`` and ``assistant_id`` to the metadata of the thread it
    runs on, and a cron without a thread (``on_run_completed: keep``) makes threads with
    its metadata and them: ``threads.get``, ``threads.search`` and ``threads.count`` by
    metadata find them."""
    client = sdk(server.url, server.api_key)
    own, crons = tag(), tag()
    thread = (await client.threads.create(metadata=own))["thread_id"]
    on_thread = await client.crons.create_for_thread(
        thread, GRAPH, schedule="* * * * *", input=HELLO, metadata=crons
    )
    fresh = await client.crons.create(
        GRAPH, schedule="* * * * *", input=HELLO, metadata=crons, on_run_completed="keep"
    )
    try:
        made: list[Any] = []
        deadline = time.monotonic() + 100  # the next minute, plus the reference's polling
        while time.monotonic() < deadline:
            made = await client.threads.search(metadata=crons, limit=100)
            if made and await ran(client, thread) and await ran(client, made[0]["thread_id"]):
                break
            await asyncio.sleep(0.5)
        assert made, "no thread of the cron without a thread found by its metadata"
        assert await ran(client, thread), "no run of the cron on the thread"
        ids = {"graph_id": GRAPH, "assistant_id": fresh["assistant_id"]}
        assert (await client.threads.get(thread))["metadata"] == {**own, **ids}
        assert [t["metadata"] for t in made] == [{**crons, **ids}] * len(made)
        found = await client.threads.search(metadata={**own, **ids})
        assert [t["thread_id"] for t in found] == [thread]
        assert await client.threads.count(metadata={**own, "graph_id": GRAPH}) == 1
        again = await client.threads.search(metadata={**crons, "graph_id": GRAPH}, limit=100)
        assert {t["thread_id"] for t in made} <= {t["thread_id"] for t in again}
        assert await client.threads.count(metadata=crons) >= len(made)
    finally:
        for cron in (on_thread, fresh):
            await client.crons.delete(cron["cron_id"])
    # a deleted cron: the reference keeps the metadata it wrote in its threads; here a
    # thread a run made shows its task's metadata as the task is now (none: the graph's
    # ids only), as its runs do
    kept = await client.threads.search(metadata=crons, limit=100)
    if server.name == "reference":
        assert {t["thread_id"] for t in made} <= {t["thread_id"] for t in kept}
    else:
        assert kept == []
        assert (await client.threads.get(made[0]["thread_id"]))["metadata"] == ids
    assert (await client.threads.get(thread))["metadata"] == {**own, **ids}
