"""The LangGraph SDK's crons API, driven by the official ``langgraph-sdk`` client (async and
sync), against this scheduler's HTTP server (a real ``python -m scheduler serve --http``
subprocess) and, as the reference, a real ``langgraph dev`` on the same graph: the same
tests, with the reference server's documented quirks as the only differences.

Both run the ``counter`` graph of ``tests/server_graphs.py`` (offline).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.conftest import PYTHON, ROOT, LangGraphDev
from tests.serving import ServeProcess

# one xdist worker runs every test of the group (--dist loadgroup): one langgraph dev (a
# session fixture) and this module's server, started once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("langgraph-dev")]

GRAPH = "counter"
HELLO = {"messages": [{"role": "user", "content": "hello"}]}


@dataclass
class Server:
    name: str  # "ours" or "reference"
    url: str
    api_key: str | None = None
    directory: Path | None = None  # ours: the project directory, its scheduler.db


class OurServer(ServeProcess):
    """The server in a project directory of its own (the ``counter`` graph in its
    ``langgraph.json``)."""

    def __init__(self, directory: Path, *, api_key: str | None = None, host: str = "127.0.0.1"):
        (directory / "langgraph.json").write_text(
            '{"dependencies": ["."], "graphs": {"counter": "./server_graphs.py:counter"}}'
        )
        (directory / "server_graphs.py").write_text(
            (ROOT / "tests" / "server_graphs.py").read_text()
        )
        super().__init__(directory, api_key=api_key, host=host)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("ours")
    server = OurServer(directory)
    try:
        server.wait_ready()
        yield Server("ours", server.url, directory=directory)
    finally:
        server.stop()


@pytest.fixture(params=["ours", "reference"])
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "ours":
        ours: Server = request.getfixturevalue("ours")
        return ours
    dev: LangGraphDev = request.getfixturevalue("langgraph_dev")
    return Server("reference", dev.url)


_OPEN: list[Any] = []


def sdk(url: str, api_key: str | None = None) -> Any:
    """An async SDK client, closed after the test."""
    client = get_client(url=url, api_key=api_key)
    _OPEN.append(client)
    return client


def sdk_sync(url: str, api_key: str | None = None) -> Any:
    """A sync SDK client, closed after the test."""
    client = get_sync_client(url=url, api_key=api_key)
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> Any:
    yield
    while _OPEN:
        client = _OPEN.pop()
        if hasattr(client, "aclose"):
            await client.aclose()
        else:
            client.close()


def tag() -> dict[str, str]:
    """Metadata unique to one test, so the reference server's other crons do not count."""
    return {"test": uuid.uuid4().hex}


async def test_create_search_count_update_delete(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    mine = tag()
    thread = await client.threads.create(metadata=mine)
    first = await client.crons.create(GRAPH, schedule="0 9 * * *", input=HELLO, metadata=mine)
    second = await client.crons.create(
        GRAPH, schedule="30 7 * * 1-5", input=HELLO, metadata=mine, timezone="Europe/Paris"
    )
    on_thread = await client.crons.create_for_thread(
        thread["thread_id"], GRAPH, schedule="*/5 * * * *", input=HELLO, metadata=mine
    )
    assistant = first["assistant_id"]
    assert second["assistant_id"] == on_thread["assistant_id"] == assistant
    for cron in (first, second, on_thread):
        assert set(cron) >= {
            "cron_id", "assistant_id", "thread_id", "schedule", "timezone", "next_run_date",
            "payload", "metadata", "enabled", "end_time", "created_at", "updated_at", "user_id",
        }  # fmt: skip
        assert cron["enabled"] is True and cron["metadata"] == mine
        assert cron["user_id"] == ""  # no auth: the reference answers "", not null
        assert cron["payload"]["input"] == HELLO
    assert (first["thread_id"], on_thread["thread_id"]) == (None, thread["thread_id"])
    assert first["schedule"] == "0 9 * * *" and first["next_run_date"].endswith(":00:00+00:00")
    assert second["timezone"] == "Europe/Paris"
    assert second["next_run_date"][11:16] in ("06:30", "05:30")  # 07:30 Paris, in UTC

    found = await client.crons.search(metadata=mine, limit=10)
    assert {c["cron_id"] for c in found} == {c["cron_id"] for c in (first, second, on_thread)}
    page = await client.crons.search(metadata=mine, limit=2, offset=0)
    rest = await client.crons.search(metadata=mine, limit=2, offset=2)
    assert len(page) == 2 and len(rest) == 1
    assert {c["cron_id"] for c in page + rest} == {c["cron_id"] for c in found}
    ordered = await client.crons.search(metadata=mine, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in ordered] == [
        first["cron_id"],
        second["cron_id"],
        on_thread["cron_id"],
    ]
    [only] = await client.crons.search(thread_id=thread["thread_id"])
    assert only["cron_id"] == on_thread["cron_id"]
    assert len(await client.crons.search(assistant_id=assistant, metadata=mine)) == 3
    assert await client.crons.count(metadata=mine) == 3
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    assert await client.crons.count(assistant_id=assistant) >= 3

    updated = await client.crons.update(first["cron_id"], schedule="15 10 * * *", enabled=False)
    assert updated["schedule"] == "15 10 * * *" and updated["enabled"] is False
    assert updated["cron_id"] == first["cron_id"]
    assert len(await client.crons.search(metadata=mine, enabled=False)) == 1
    again = await client.crons.update(first["cron_id"], enabled=True)
    assert again["enabled"] is True and again["next_run_date"][11:16] == "10:15"
    fetched = await client.http.get(f"/runs/crons/{first['cron_id']}")
    assert fetched["schedule"] == "15 10 * * *"
    merged = await client.crons.update(first["cron_id"], metadata={"extra": 1})
    assert merged["metadata"] == {**mine, "extra": 1}  # merged into the cron's own
    assert await client.crons.count(metadata={**mine, "extra": 1}) == 1  # contained
    with pytest.raises(BadRequestError):
        await client.crons.update(first["cron_id"])  # nothing to change

    for cron in (first, second, on_thread):
        await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(metadata=mine) == 0
    with pytest.raises(NotFoundError):
        await client.crons.delete(first["cron_id"])
    with pytest.raises(NotFoundError):
        await client.http.get(f"/runs/crons/{first['cron_id']}")


def test_the_sync_client_too(server: Server) -> None:
    client = sdk_sync(server.url, server.api_key)
    mine = tag()
    cron = client.crons.create(GRAPH, schedule="0 0 1 * *", input=HELLO, metadata=mine)
    assert [c["cron_id"] for c in client.crons.search(metadata=mine)] == [cron["cron_id"]]
    assert client.crons.count(metadata=mine) == 1
    assert client.crons.update(cron["cron_id"], schedule="0 0 2 * *")["schedule"] == "0 0 2 * *"
    client.crons.delete(cron["cron_id"])
    assert client.crons.count(metadata=mine) == 0


async def _ran(client: Any, thread_id: str) -> bool:
    return any(run["status"] == "success" for run in await client.runs.list(thread_id))


async def test_a_cron_fires_and_its_run_is_listed_on_the_thread(server: Server) -> None:
    """A cron on a thread runs there at the minute, as the SDK sees it (runs, state,
    history, search); the run adds ``graph_id`` and ``assistant_id`` to the thread's
    metadata, and a cron without a thread (``on_run_completed: keep``) makes threads with
    its own metadata and them, which ``threads.get``, ``search`` and ``count`` find."""
    client = sdk(server.url, server.api_key)
    own = tag()
    thread = await client.threads.create(metadata=own)
    mine = tag()
    cron = await client.crons.create_for_thread(
        thread["thread_id"], GRAPH, schedule="* * * * *", input=HELLO, metadata=mine
    )
    fresh = await client.crons.create(
        GRAPH, schedule="* * * * *", input=HELLO, metadata=mine, on_run_completed="keep"
    )
    made: list[Any] = []
    ids = {"graph_id": GRAPH, "assistant_id": fresh["assistant_id"]}
    try:
        runs: list[Any] = []
        deadline = time.monotonic() + 100  # the next minute, plus the reference's polling
        while time.monotonic() < deadline:
            runs = await client.runs.list(thread["thread_id"])
            made = await client.threads.search(metadata=mine, limit=100)
            if (
                any(r["status"] == "success" for r in runs)
                and made
                and await _ran(client, made[0]["thread_id"])
            ):
                break
            await asyncio.sleep(0.5)
        succeeded = [r for r in runs if r["status"] == "success"]
        assert succeeded, f"no successful run on the cron's thread: {runs}"
        run = succeeded[0]
        assert run["thread_id"] == thread["thread_id"]
        assert run["assistant_id"] == cron["assistant_id"]
        assert run["multitask_strategy"] == "enqueue"  # a cron's default
        assert run["metadata"].items() >= {**mine, "assistant_id": cron["assistant_id"]}.items()
        assert run["metadata"]["graph_id"] == GRAPH
        fetched = await client.runs.get(thread["thread_id"], run["run_id"])
        assert fetched["run_id"] == run["run_id"] and fetched["status"] == "success"
        threads = await client.threads.search(limit=100)
        assert thread["thread_id"] in {t["thread_id"] for t in threads}
        chosen = await client.runs.list(thread["thread_id"], select=["run_id", "status"])
        assert chosen and all(set(r) == {"run_id", "status"} for r in chosen)
        [used] = await client.threads.search(ids=[thread["thread_id"]])
        assert used["thread_id"] == thread["thread_id"]
        # what the cron produced, read where the SDK reads it: the thread's state
        state = await client.threads.get_state(thread["thread_id"])
        said = [(m["type"], m["content"]) for m in state["values"]["messages"]]
        assert said[:2] == [("human", "hello"), ("ai", "turn 1 (secret unset)")]
        assert state["checkpoint"]["thread_id"] == thread["thread_id"]
        assert state["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
        assert state["next"] == [] and state["interrupts"] == []
        history = await client.threads.get_history(thread["thread_id"], limit=5)
        assert history[0]["checkpoint_id"] == state["checkpoint_id"]  # newest first
        assert history[0]["values"]["messages"][:2] == state["values"]["messages"][:2]
        got = await client.threads.get(thread["thread_id"])
        assert got["values"]["messages"][:2] == state["values"]["messages"][:2]
        [found] = await client.threads.search(ids=[thread["thread_id"]])  # a search's too
        assert found["values"]["messages"][:2] == state["values"]["messages"][:2]
        # the threads' metadata: the graph's ids once a run went on them
        assert made, "no thread of the cron without a thread found by its metadata"
        assert got["metadata"] == {**own, **ids}
        assert [t["metadata"] for t in made] == [{**mine, **ids}] * len(made)
        by_ids = await client.threads.search(metadata={**own, **ids})
        assert [t["thread_id"] for t in by_ids] == [thread["thread_id"]]
        assert await client.threads.count(metadata={**own, "graph_id": GRAPH}) == 1
        again = await client.threads.search(metadata={**mine, "graph_id": GRAPH}, limit=100)
        assert {t["thread_id"] for t in made} <= {t["thread_id"] for t in again}
        assert await client.threads.count(metadata=mine) >= len(made)
    finally:
        await client.crons.delete(cron["cron_id"])
        await client.crons.delete(fresh["cron_id"])
    # a deleted cron: the reference keeps the metadata it wrote in its threads; here a
    # thread a run made shows its task's metadata as the task is now (none: the graph's
    # ids only), as its runs do
    kept = await client.threads.search(metadata=mine, limit=100)
    if server.name == "reference":
        assert {t["thread_id"] for t in made} <= {t["thread_id"] for t in kept}
    else:
        assert kept == []
        assert (await client.threads.get(made[0]["thread_id"]))["metadata"] == ids
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {**own, **ids}


async def test_bad_requests_name_the_field(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    with pytest.raises(UnprocessableEntityError):
        await client.crons.create(GRAPH, schedule="every tuesday-ish", input=HELLO)
    with pytest.raises(UnprocessableEntityError):
        await client.crons.search(select=["now"])  # in the SDK's list, in no Cron
    if server.name == "reference":
        return  # its quirks: a missing schedule answers 500; a graph name in a search, 422
    with pytest.raises(UnprocessableEntityError, match="schedule: required"):
        await client.http.post("/runs/crons", json={"assistant_id": GRAPH, "input": HELLO})
    with pytest.raises(UnprocessableEntityError, match="schedule"):
        await client.crons.create(GRAPH, schedule="61 * * * *", input=HELLO)
    with pytest.raises(UnprocessableEntityError, match="assistant_id"):
        await client.crons.create("no-such-graph", schedule="0 9 * * *", input=HELLO)
    with pytest.raises(UnprocessableEntityError, match="multitask_strategy"):
        await client.crons.create(GRAPH, schedule="0 9 * * *", multitask_strategy="rollback")
    mine = tag()
    await client.crons.create(GRAPH, schedule="0 9 * * *", input=HELLO, metadata=mine)
    assert len(await client.crons.search(assistant_id=GRAPH, metadata=mine)) == 1  # a name works


async def test_a_cron_is_a_task_like_any_other(ours: Server, tmp_path: Path) -> None:
    client = sdk(ours.url)
    cron = await client.crons.create(GRAPH, schedule="0 9 * * 1", input=HELLO, metadata=tag())
    async with httpx.AsyncClient(base_url=ours.url) as http:
        task = (await http.get(f"/api/tasks/{cron['cron_id']}")).json()
        listed = (await http.get("/api/tasks", params={"source": "http:crons"})).json()
    assert task["source"] == "http:crons" and task["definition"]["cron_expression"] == "0 9 * * 1"
    assert task["definition"]["overlap"] == "queue"  # multitask_strategy enqueue, the default
    assert cron["cron_id"] in {t["id"] for t in listed["items"]}
    await client.crons.delete(cron["cron_id"])


async def test_searches_see_every_change_at_once_and_other_processes_soon(ours: Server) -> None:
    """Searches are answered from a kept list: a change through this server shows in the
    very next search; one made by another process (the CLI on the same database) within
    the poll interval (0.5 s), as the scheduler itself sees it."""
    client = sdk(ours.url)
    mine = tag()
    made = [
        await client.crons.create(GRAPH, schedule=f"0 {h} * * *", input=HELLO, metadata=mine)
        for h in (6, 7, 8)
    ]
    ids = [c["cron_id"] for c in made]
    assert [c["cron_id"] for c in await client.crons.search(metadata=mine)] == ids[::-1]
    await client.crons.update(ids[0], schedule="5 6 * * *")
    async with httpx.AsyncClient(base_url=ours.url) as http:
        assert (await http.post(f"/api/tasks/{ids[1]}/pause")).status_code == 200
    found = {c["cron_id"]: c for c in await client.crons.search(metadata=mine)}
    assert found[ids[0]]["schedule"] == "5 6 * * *" and not found[ids[1]]["enabled"]
    await client.crons.delete(ids[1])
    assert await client.crons.count(metadata=mine) == 2

    assert ours.directory is not None
    cli = [PYTHON, "-m", "scheduler", "--db", str(ours.directory / "scheduler.db")]
    for command in (["pause", ids[2]], ["remove", "--yes", ids[0]]):
        done = await asyncio.to_thread(
            subprocess.run, [*cli, *command], capture_output=True, cwd=ours.directory
        )
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = {c["cron_id"]: c for c in await client.crons.search(metadata=mine)}
        if set(found) == {ids[2]} and not found[ids[2]]["enabled"]:
            break
        await asyncio.sleep(0.1)
    assert set(found) == {ids[2]} and not found[ids[2]]["enabled"], found
    assert time.monotonic() < deadline - 8  # within about a poll interval, not seconds
    await client.crons.delete(ids[2])


def test_the_api_key_is_required_when_set(tmp_path: Path) -> None:
    server = OurServer(tmp_path, api_key="s3cret")
    try:
        server.wait_ready()
        assert httpx.get(f"{server.url}/api/tasks").status_code == 401
        assert (
            httpx.get(f"{server.url}/api/tasks", headers={"x-api-key": "nope"}).status_code == 403
        )
        bearer = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{server.url}/api/tasks", headers=bearer).status_code == 200
        client = sdk_sync(server.url, "s3cret")
        cron = client.crons.create(GRAPH, schedule="0 9 * * *", input=HELLO)
        assert client.crons.count() == 1
        client.crons.delete(cron["cron_id"])
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # probes carry no key
    finally:
        server.stop()


def test_no_key_no_listening_beyond_loopback(tmp_path: Path) -> None:
    server = OurServer(tmp_path, host="0.0.0.0")
    code = server.process.wait(timeout=30)
    output = server.output()
    assert code == 1, output
    assert "refusing to serve HTTP on 0.0.0.0 without an API key" in output


async def test_a_thread_must_exist_for_its_crons_and_runs(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    mine = tag()
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(
            unknown, GRAPH, schedule="0 9 * * *", input=HELLO, metadata=mine
        )
    assert await client.crons.count(metadata=mine) == 0  # nothing made
    with pytest.raises(NotFoundError):
        await client.runs.list(unknown)
    thread = await client.threads.create(metadata=mine)
    assert await client.runs.list(thread["thread_id"]) == []  # made, no runs yet
    state = await client.threads.get_state(thread["thread_id"])  # no checkpoint yet
    assert (state["values"], state["next"], state["checkpoint"]) == ({}, [], None)
    assert (await client.threads.get(thread["thread_id"]))["values"] is None
    with pytest.raises(NotFoundError):
        await client.threads.get_state(unknown)


async def test_a_thread_is_one_thread_in_every_spelling_of_its_uuid(server: Server) -> None:
    """As the reference reads a thread id: upper case, braces or no hyphens find the thread
    (answered in the usual spelling), and one made in another spelling is made in it. A
    cron's id is matched as sent by an update (another spelling: 404), not by a get."""
    client = sdk(server.url, server.api_key)
    mine = tag()
    made = (await client.threads.create(metadata=mine))["thread_id"]
    for spelling in (made.upper(), "{" + made + "}", uuid.UUID(made).hex):
        assert (await client.threads.get(spelling))["thread_id"] == made
        assert [t["thread_id"] for t in await client.threads.search(ids=[spelling])] == [made]
        assert await client.runs.list(spelling) == []
    cron = await client.crons.create_for_thread(
        made.upper(), GRAPH, schedule="0 9 * * *", input=HELLO, metadata=mine
    )
    try:
        assert cron["thread_id"] == made
        assert [c["cron_id"] for c in await client.crons.search(thread_id=made)] == [
            cron["cron_id"]
        ]
        with pytest.raises(NotFoundError):
            await client.crons.update(cron["cron_id"].upper(), schedule="0 10 * * *")
        # a get finds it in another spelling (it was a 404 here)
        got = await client.http.get(f"/runs/crons/{cron['cron_id'].upper()}")
        assert got["cron_id"] == cron["cron_id"]
    finally:
        await client.crons.delete(cron["cron_id"])
    named = str(uuid.uuid4())
    given = await client.threads.create(thread_id=named.upper(), metadata=mine)
    assert given["thread_id"] == named
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=named)
    assert await client.threads.count(metadata=mine) == 2


async def test_a_cron_id_that_is_no_uuid_is_a_422(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    with pytest.raises(UnprocessableEntityError):
        await client.http.get("/runs/crons/not-a-uuid")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update("not-a-uuid", schedule="0 9 * * *")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.delete("not-a-uuid")
    with pytest.raises(NotFoundError):
        await client.crons.delete(str(uuid.uuid4()))  # a UUID no cron has: 404
    cron = await client.crons.create(GRAPH, schedule="0 9 * * *", input=HELLO, metadata=tag())
    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])  # twice


async def test_a_sorted_search_keeps_equal_crons_in_the_order_made(server: Server) -> None:
    """The reference sorts its crons, oldest first, with a stable sort: crons with equal
    keys stay in the order they were made, ascending or descending; no thread sorts as
    the text ``"none"`` (after every UUID)."""
    client = sdk(server.url, server.api_key)
    mine = tag()
    thread = await client.threads.create(metadata=mine)
    first = await client.crons.create(GRAPH, schedule="0 0 1 1 *", input=HELLO, metadata=mine)
    second = await client.crons.create(GRAPH, schedule="0 0 1 1 *", input=HELLO, metadata=mine)
    soon = await client.crons.create_for_thread(
        thread["thread_id"], GRAPH, schedule="* * * * *", input=HELLO, metadata=mine
    )
    name = {first["cron_id"]: "first", second["cron_id"]: "second", soon["cron_id"]: "soon"}

    async def order(sort_by: str, sort_order: str) -> list[str]:
        found = await client.crons.search(metadata=mine, sort_by=sort_by, sort_order=sort_order)
        return [name[c["cron_id"]] for c in found]

    assert await order("next_run_date", "asc") == ["soon", "first", "second"]
    assert await order("next_run_date", "desc") == ["first", "second", "soon"]
    assert await order("assistant_id", "desc") == ["first", "second", "soon"]
    assert await order("thread_id", "asc") == ["soon", "first", "second"]
    assert await order("thread_id", "desc") == ["first", "second", "soon"]
    assert await order("created_at", "asc") == ["first", "second", "soon"]
    assert await order("created_at", "desc") == ["soon", "second", "first"]
    for cron in (first, second, soon):
        await client.crons.delete(cron["cron_id"])


async def test_a_thread_search_filters_sorts_and_selects(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    mine = tag()
    made = [(await client.threads.create(metadata={**mine, "n": n}))["thread_id"] for n in range(3)]
    found = await client.threads.search(ids=made[:2], limit=100)
    assert sorted(t["thread_id"] for t in found) == sorted(made[:2])
    oldest = await client.threads.search(metadata=mine, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in oldest] == made
    newest = await client.threads.search(metadata=mine, sort_by="created_at", sort_order="desc")
    assert [t["thread_id"] for t in newest] == made[::-1]
    chosen = await client.threads.search(metadata=mine, select=["thread_id", "metadata"])
    assert all(set(t) == {"thread_id", "metadata"} for t in chosen) and len(chosen) == 3
    assert await client.threads.search(metadata=mine, status="busy") == []
    assert len(await client.threads.search(metadata=mine, status="idle")) == 3
    for thread in await client.threads.search(ids=made[:1]):
        assert thread["created_at"].endswith("+00:00")  # in UTC


async def test_a_thread_is_got_and_counted(server: Server) -> None:
    client = sdk(server.url, server.api_key)
    mine = tag()
    made = await client.threads.create(metadata=mine)
    got = await client.threads.get(made["thread_id"])
    assert (got["thread_id"], got["metadata"], got["status"]) == (made["thread_id"], mine, "idle")
    assert got["created_at"] == made["created_at"]
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    await client.threads.create(metadata=mine)
    assert await client.threads.count(metadata=mine) == 2
    assert await client.threads.count(metadata={**mine, "other": 1}) == 0
    assert await client.threads.count(metadata=mine, status="busy") == 0
    assert await client.threads.count() >= 2


async def test_the_payload_keeps_the_fields_as_sent(server: Server) -> None:
    """A cron's payload is its request as sent (a PATCH's fields over it), with the
    assistant's UUID and the cron's id in ``config.configurable``."""
    client = sdk(server.url, server.api_key)
    end = datetime(2031, 1, 1, tzinfo=UTC)
    cron = await client.crons.create(
        GRAPH, schedule="0 9 * * *", input=HELLO, metadata=tag(), timezone="Europe/Paris",
        end_time=end, on_run_completed="keep", interrupt_before=["step"], durability="sync",
    )  # fmt: skip
    payload = cron["payload"]
    assert payload["timezone"] == "Europe/Paris" and payload["on_run_completed"] == "keep"
    assert datetime.fromisoformat(payload["end_time"].replace("Z", "+00:00")) == end
    assert (payload["interrupt_before"], payload["durability"]) == (["step"], "sync")
    assert "enabled" not in payload and payload["assistant_id"] == cron["assistant_id"]
    updated = await client.crons.update(cron["cron_id"], timezone="Asia/Tokyo", input={"x": 1})
    payload = updated["payload"]
    assert (payload["timezone"], payload["input"], payload["durability"]) == (
        "Asia/Tokyo", {"x": 1}, "sync",
    )  # fmt: skip
    assert "enabled" not in payload  # not sent
    assert payload["config"]["configurable"]["cron_id"] == cron["cron_id"]
    emptied = await client.crons.update(cron["cron_id"], input={})
    assert emptied["payload"]["input"] == {}  # as sent
    await client.crons.delete(cron["cron_id"])
    bare = await client.crons.create(GRAPH, schedule="0 9 * * *", input={}, metadata={})
    assert (bare["payload"]["input"], bare["payload"]["metadata"]) == ({}, {})
    await client.crons.delete(bare["cron_id"])
    unsent = await client.crons.create(GRAPH, schedule="0 9 * * *")
    assert "input" not in unsent["payload"] and "metadata" not in unsent["payload"]
    await client.crons.delete(unsent["cron_id"])


async def _cli(ours: Server, *command: str) -> None:
    """``python -m scheduler COMMAND`` on the server's database (another process)."""
    assert ours.directory is not None
    cli = [PYTHON, "-m", "scheduler", "--db", str(ours.directory / "scheduler.db"), *command]
    done = await asyncio.to_thread(subprocess.run, cli, capture_output=True, cwd=ours.directory)
    assert done.returncode == 0, done.stderr


async def _searched(client: Any, mine: dict[str, str], wanted: Any) -> dict[str, Any]:
    """The crons of ``mine`` by id once ``wanted(found)`` holds (a change another process
    made shows within the poll interval), else as they are after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        found = {c["cron_id"]: c for c in await client.crons.search(metadata=mine)}
        if wanted(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_a_cron_rest_or_the_cli_gave_another_schedule_stays_a_cron(ours: Server) -> None:
    """A task the crons API made stays a cron whatever schedule REST or the CLI give it:
    got, searched, counted, patched and deleted, its ``schedule`` the form the CLI takes
    (``every 2 hours``, ``at ...``); a crons PATCH with a cron schedule makes it a cron."""
    client, mine = sdk(ours.url), tag()
    every = await client.crons.create(GRAPH, schedule="0 9 * * *", input=HELLO, metadata=mine)
    once = await client.crons.create(GRAPH, schedule="0 8 * * *", input=HELLO, metadata=mine)
    async with httpx.AsyncClient(base_url=ours.url) as http:
        changed = await http.patch(f"/api/tasks/{every['cron_id']}", json={"schedule": "every 2h"})
        assert changed.status_code == 200, changed.text
        got = await client.http.get(f"/runs/crons/{every['cron_id']}")
        assert (got["schedule"], got["payload"]["schedule"]) == ("every 2 hours",) * 2
        assert got["next_run_date"] is not None
        found = {c["cron_id"]: c for c in await client.crons.search(metadata=mine)}
        assert found.keys() == {every["cron_id"], once["cron_id"]}
        assert found[every["cron_id"]]["schedule"] == "every 2 hours"
        assert await client.crons.count(metadata=mine) == 2

        await _cli(ours, "edit", once["cron_id"], "--schedule", "at 2030-03-15 14:00")
        at = "at 2030-03-15T14:00:00+00:00"
        found = await _searched(client, mine, lambda f: f[once["cron_id"]]["schedule"] == at)
        assert found[once["cron_id"]]["schedule"] == at
        got = await client.http.get(f"/runs/crons/{once['cron_id']}")
        assert got["schedule"] == at and got["next_run_date"] == "2030-03-15T14:00:00+00:00"

        kept = await client.crons.update(every["cron_id"], metadata={"n": 1}, enabled=False)
        assert (kept["schedule"], kept["enabled"]) == ("every 2 hours", False)
        task = (await http.get(f"/api/tasks/{every['cron_id']}")).json()["definition"]
        assert (task["interval_seconds"], task["metadata"]["n"]) == (7200, 1)
        same = await client.crons.update(every["cron_id"], schedule="every 2 hours")
        assert same["schedule"] == "every 2 hours"  # as read: sent back, kept
        back = await client.crons.update(every["cron_id"], schedule="30 6 * * *", enabled=True)
        assert back["schedule"] == "30 6 * * *" and back["next_run_date"].endswith("06:30:00+00:00")
        task = (await http.get(f"/api/tasks/{every['cron_id']}")).json()["definition"]
        assert (task["task_type"], task.get("interval_seconds")) == ("cron", None)
        assert task["name"] == "cron 30 6 * * *"

    await client.crons.delete(once["cron_id"])
    assert [c["cron_id"] for c in await client.crons.search(metadata=mine)] == [every["cron_id"]]
    await client.crons.delete(every["cron_id"])
    assert await client.crons.count(metadata=mine) == 0


async def test_a_crons_payload_is_its_task_as_it_is_now(ours: Server) -> None:
    """``payload.end_time`` and ``payload.multitask_strategy`` follow a change made through
    REST or the CLI, and ``end_time`` reads the same in the Cron and its payload, on
    create, get and search: as the SDK sends a UTC datetime."""
    client, mine = sdk(ours.url), tag()
    end = datetime(2031, 1, 1, tzinfo=UTC)
    made = await client.crons.create(
        GRAPH, schedule="0 9 * * *", metadata=mine, end_time=end, multitask_strategy="reject"
    )
    cron_id = made["cron_id"]
    got = await client.http.get(f"/runs/crons/{cron_id}")
    [found] = await client.crons.search(metadata=mine)
    for cron in (made, got, found):
        assert cron["end_time"] == cron["payload"]["end_time"] == end.isoformat(), cron
        assert cron["payload"]["multitask_strategy"] == "reject"
    async with httpx.AsyncClient(base_url=ours.url) as http:
        changed = await http.patch(
            f"/api/tasks/{cron_id}", json={"end_date": "2032-06-01T12:00:00+02:00"}
        )
        assert changed.status_code == 200, changed.text
    await _cli(ours, "edit", cron_id, "--overlap", "queue")
    later = "2032-06-01T10:00:00+00:00"
    found = await _searched(
        client, mine, lambda f: f[cron_id]["payload"].get("multitask_strategy") == "enqueue"
    )
    got = await client.http.get(f"/runs/crons/{cron_id}")
    for cron in (found[cron_id], got):
        assert cron["end_time"] == cron["payload"]["end_time"] == later, cron
        assert cron["payload"]["multitask_strategy"] == "enqueue", cron
    cleared = await client.crons.update(cron_id, end_time=None)
    assert cleared["end_time"] is None and "end_time" not in cleared["payload"]
    await client.crons.delete(cron_id)


async def test_a_creation_with_a_null_or_a_number_for_a_date_is_a_422(server: Server) -> None:
    """As the LangGraph server answers; the SDK leaves out a field it has no value for."""
    client = sdk(server.url, server.api_key)
    for field, value in (
        ("input", None), ("metadata", None), ("enabled", None), ("end_time", None),
        ("config", None), ("context", None), ("timezone", None), ("end_time", 1924992000),
    ):  # fmt: skip
        body = {"assistant_id": GRAPH, "schedule": "0 9 * * *", field: value}
        with pytest.raises(UnprocessableEntityError) as refused:
            await client.http.post("/runs/crons", json=body)
        if server.name == "ours":
            assert f"{field}: " in refused.value.response.json()["detail"], (field, value)
    made = await client.crons.create(GRAPH, schedule="0 9 * * *", input=None, metadata=None)
    assert made["enabled"] is True
    await client.crons.delete(made["cron_id"])


async def test_a_threads_history_is_its_checkpoints_newest_first(ours: Server) -> None:
    client = sdk(ours.url)
    thread = (await client.threads.create(metadata=tag()))["thread_id"]
    assert await client.threads.get_history(thread) == []  # no run yet
    cron = await client.crons.create_for_thread(thread, GRAPH, schedule="0 9 * * *", input=HELLO)
    async with httpx.AsyncClient(base_url=ours.url) as http:
        run = (await http.post(f"/api/tasks/{cron['cron_id']}/run")).json()
        deadline = time.monotonic() + 30
        while run["status"] in ("queued", "running") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            run = (await http.get(f"/api/runs/{run['id']}")).json()
        assert run["status"] == "succeeded", run
        over_get = (await http.get(f"/threads/{thread}/history", params={"limit": 1})).json()
    await client.crons.delete(cron["cron_id"])
    history = await client.threads.get_history(thread, limit=100)
    state = await client.threads.get_state(thread)
    assert len(history) >= 2 and history[0]["checkpoint_id"] == state["checkpoint_id"]
    assert history[0]["values"] == state["values"]
    assert [h["checkpoint_id"] for h in over_get] == [state["checkpoint_id"]]
    steps = [h["metadata"]["step"] for h in history]
    assert steps == sorted(steps, reverse=True)  # newest first
    assert history[1]["checkpoint_id"] == history[0]["parent_checkpoint_id"]
    assert len(await client.threads.get_history(thread, limit=1)) == 1
    older = await client.threads.get_history(thread, before=history[0]["checkpoint_id"])
    assert [h["checkpoint_id"] for h in older] == [h["checkpoint_id"] for h in history[1:]]
    older = await client.threads.get_history(thread, before=history[0]["checkpoint"])
    assert older[0]["checkpoint_id"] == history[1]["checkpoint_id"]
    looked = await client.threads.get_history(thread, metadata={"step": steps[0]})
    assert [h["checkpoint_id"] for h in looked] == [history[0]["checkpoint_id"]]
    with pytest.raises(NotFoundError):
        await client.threads.get_history(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get_history(thread, limit=0)
