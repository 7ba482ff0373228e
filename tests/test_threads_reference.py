"""``threads.get_state`` at a checkpoint the thread has not: the same calls through the
official ``langgraph-sdk`` against this scheduler's HTTP server (a real ``python -m
scheduler serve --http`` subprocess) and, as the reference, a real ``langgraph dev`` on the
same graph (the fixtures of ``tests/test_crons_api.py``, whose cron test checks the
metadata a cron's runs give their threads)."""

from __future__ import annotations

import pytest

from tests import test_crons_api
from tests.test_crons_api import GRAPH, Server, sdk, tag

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
