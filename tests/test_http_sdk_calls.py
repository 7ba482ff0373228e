"""SDK calls a user makes on a cron's thread, answered as the LangGraph server answers
them, on a real scheduler (SQLite file, real graph) through httpx's ASGI transport:
``threads.create(if_exists="do_nothing")`` on a thread runs used, ``runs.join`` and
``threads.get_state`` at a checkpoint."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, TypedDict

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from scheduler import TaskDefinition
from scheduler.server.http import HttpServer
from tests import test_http_edges
from tests.conftest import SchedulerFactory, eventually
from tests.test_http_edges import client_of

api = test_http_edges.api  # the fixture: a client of a started scheduler (``.scheduler``)


def on_thread(api: httpx.AsyncClient, task_id: str, thread: str, prompt: str) -> Any:
    """Add a task on ``thread`` with ``prompt``; its scheduler."""
    scheduler = api.scheduler  # type: ignore[attr-defined]
    scheduler.add_task(
        TaskDefinition(id=task_id, interval_seconds=3600, prompt=prompt, thread_id=thread)
    )
    return scheduler


async def listed(api: httpx.AsyncClient, thread: str, run_id: str) -> None:
    """Wait until ``runs.list`` shows the run on ``thread``, as a client finds a run to
    join."""

    async def found() -> bool:
        runs = (await api.get(f"/threads/{thread}/runs", params={"select": "run_id"})).json()
        return {"run_id": run_id} in runs

    await eventually(found, message=f"run {run_id} on its thread")


async def test_threads_create_with_do_nothing_answers_the_thread_as_it_is(
    api: httpx.AsyncClient,
) -> None:
    """``threads.create(thread_id=..., if_exists="do_nothing")``, the SDK's "get or
    create", answers the thread that exists as ``threads.get`` does, as the LangGraph
    server answers it: its values, its status, its last change. It answered the thread
    as just made: ``values: null``, ``idle`` while a run went on it, ``updated_at`` its
    creation."""
    made = (await api.post("/threads", json={"metadata": {"team": "ops"}})).json()
    thread = made["thread_id"]
    scheduler = on_thread(api, "hello", thread, "hello")
    await scheduler.wait_for_run(scheduler.run_task_now("hello"), timeout=10)
    got = (await api.get(f"/threads/{thread}")).json()
    assert got["values"]["messages"][0]["content"] == "hello"  # (what a run left)
    kept = await api.post("/threads", json={"thread_id": thread, "if_exists": "do_nothing"})
    assert kept.status_code == 200, kept.text
    assert kept.json() == got

    on_thread(api, "slow", thread, "sleep:30")
    run_id = scheduler.run_task_now("slow")

    async def running() -> bool:
        return (await api.get(f"/api/runs/{run_id}")).json()["status"] == "running"

    await eventually(running, message="the slow run to start")
    kept = await api.post("/threads", json={"thread_id": thread, "if_exists": "do_nothing"})
    assert (kept.json()["status"], kept.json()["metadata"]) == ("busy", got["metadata"])
    assert got["metadata"].keys() == {"team", "graph_id", "assistant_id"}  # (a run went)
    await scheduler.acancel_run(run_id)


async def test_runs_join_waits_for_the_run_and_answers_what_the_server_does(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs.join`` on a cron's thread: the thread's values once the run has ended, a
    blank line every few seconds meanwhile (the SDK reads for 300 s at most between two
    bytes); ``__error__`` for a run that failed, ``__interrupt__`` for one that waits at
    ``interrupt()``; 404 for a run of another thread. It answered 404 "no thread
    'T/runs/R/join'" for a thread that exists."""
    from scheduler.server import joins

    monkeypatch.setattr(joins, "KEEP_ALIVE_SECONDS", 0.1)
    thread = "équipe/日本"  # (its answer's Location header holds it, percent-encoded)
    assert (await api.post("/threads", json={"thread_id": thread})).status_code == 200
    scheduler = on_thread(api, "slow", thread, "sleep:1")
    run_id = scheduler.run_task_now("slow")
    await listed(api, thread, run_id)
    joined = await api.get(f"/threads/{thread}/runs/{run_id}/join")
    assert joined.status_code == 200, joined.text
    assert (
        joined.text.startswith("\n")
        and joined.json() == (await api.get(f"/threads/{thread}/state")).json()["values"]
    )
    assert joined.json()["messages"][-1]["type"] == "ai"
    assert (await api.get(f"/threads/{thread}/runs/{run_id}")).json()["status"] == "success"

    on_thread(api, "failing", thread, "fail")
    failed = scheduler.run_task_now("failing")
    await listed(api, thread, failed)
    answer = (await api.get(f"/threads/{thread}/runs/{failed}/join")).json()
    assert answer == {"__error__": {"error": "CommandError", "message": "failing on command"}}
    [task] = (await api.get(f"/threads/{thread}/state")).json()["tasks"]
    assert task["error"] == "CommandError('failing on command')"  # (it was quoted twice)

    on_thread(api, "asking", thread, "ask-record-sleep:0")
    asking = scheduler.run_task_now("asking")
    await listed(api, thread, asking)
    answer = (await api.get(f"/threads/{thread}/runs/{asking}/join")).json()
    assert [i["value"] for i in answer["__interrupt__"]] == [{"question": "go on?"}]
    await scheduler.acancel_run(asking)

    other = (await api.post("/threads", json={})).json()["thread_id"]
    for path in (f"/threads/{other}/runs/{run_id}/join", f"/threads/{thread}/runs/nope/join"):
        assert (await api.get(path)).status_code == 404, path


async def test_a_join_does_not_hold_up_the_servers_stop(make_scheduler: SchedulerFactory) -> None:
    """A join waiting on a long run, as the server stops: its connection is closed at once
    (the SDK asks again at the answer's ``Location``), not held until uvicorn's stop gives
    up (5 s), and it never answers as if the run had ended."""
    scheduler = make_scheduler(http_rate_per_second=0)
    scheduler.start()
    server = HttpServer(scheduler, scheduler.settings, "127.0.0.1:0")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://{server.address}", timeout=30) as c:
            c.scheduler = scheduler  # type: ignore[attr-defined]
            thread = (await c.post("/threads", json={})).json()["thread_id"]
            run_id = on_thread(c, "slow", thread, "sleep:60").run_task_now("slow")
            await listed(c, thread, run_id)
            path = f"/threads/{thread}/runs/{run_id}/join"
            async with c.stream("GET", path) as joined:
                assert joined.headers["location"] == path
                stopped = time.monotonic()
                await server.stop()
                assert time.monotonic() - stopped < 2
                with pytest.raises(httpx.RemoteProtocolError):  # (cut short: no answer)
                    await joined.aread()
    finally:
        await server.stop()
        await scheduler.stop(grace_seconds=0)


async def test_a_run_queued_on_a_thread_shows_there_as_pending(
    make_scheduler: SchedulerFactory,
) -> None:
    """A run queued for a thread (behind ``SCHEDULER_MAX_CONCURRENT_RUNS``, or behind the
    previous run of an ``enqueue`` cron) is on its thread at once, as on the LangGraph
    server: ``runs.list`` and ``runs.get`` show it ``pending`` and the thread is ``busy``.
    It was on no thread until it started: the thread ``idle``, the run not found."""
    scheduler = make_scheduler(http_rate_per_second=0, max_concurrent_runs=1)
    async with client_of(scheduler) as api:
        api.scheduler = scheduler  # type: ignore[attr-defined]
        thread = (await api.post("/threads", json={})).json()["thread_id"]
        scheduler.add_task(TaskDefinition(id="hog", interval_seconds=3600, prompt="hang"))
        hog = scheduler.run_task_now("hog")

        async def running() -> bool:
            return (await api.get(f"/api/runs/{hog}")).json()["status"] == "running"

        await eventually(running, message="the run that takes the only place")
        waiting = on_thread(api, "mine", thread, "hi").run_task_now("mine")
        assert (await api.get(f"/api/runs/{waiting}")).json()["status"] == "queued"
        assert (await api.get(f"/threads/{thread}")).json()["status"] == "busy"
        listed = (await api.get(f"/threads/{thread}/runs")).json()
        assert [(r["run_id"], r["status"]) for r in listed] == [(waiting, "pending")]
        got = await api.get(f"/threads/{thread}/runs/{waiting}")
        assert (got.status_code, got.json()["status"]) == (200, "pending")
        other = (await api.post("/threads", json={})).json()["thread_id"]
        scheduler.add_task(  # (its firing queued behind the hog, then withdrawn: paused)
            TaskDefinition(id="tick", interval_seconds=1, prompt="hi", thread_id=other)
        )

        async def firing() -> list[Any]:
            runs: list[Any] = (await api.get(f"/threads/{other}/runs")).json()
            return runs

        assert [r["status"] for r in await eventually(firing)] == ["pending"]
        await scheduler.apause_task("tick")

        async def withdrawn() -> bool:
            return [r["status"] for r in await firing()] != ["pending"]

        await eventually(withdrawn, message="the queued firing to be withdrawn")
        assert [r["status"] for r in await firing()] == ["interrupted"]  # (as cancelled)
        assert (await api.get(f"/threads/{other}")).json()["status"] == "idle"  # (never ran)
        await scheduler.acancel_run(hog)
        done = await scheduler.wait_for_run(waiting, timeout=10)
        assert (done.status.value, done.thread_id) == ("succeeded", thread)
        assert (await api.get(f"/threads/{thread}")).json()["status"] == "idle"


async def test_get_state_at_a_checkpoint(api: httpx.AsyncClient) -> None:
    """``threads.get_state(thread, checkpoint_id=...)`` (``GET .../state/{id}``) and
    ``threads.get_state(thread, checkpoint={...})`` (``POST .../state/checkpoint``) answer
    the state at that checkpoint, as the history shows it. They answered 404 "no thread
    'T/state/ID'" for a thread that exists."""
    thread = (await api.post("/threads", json={})).json()["thread_id"]
    scheduler = on_thread(api, "hello", thread, "hello")
    for _ in range(2):
        await scheduler.wait_for_run(scheduler.run_task_now("hello"), timeout=10)
    history = (await api.post(f"/threads/{thread}/history", json={"limit": 10})).json()
    older = history[3]  # (the first run's last checkpoint: one human message, one answer)
    assert len(older["values"]["messages"]) == 2, older
    checkpoint_id = older["checkpoint_id"]
    got = await api.get(f"/threads/{thread}/state/{checkpoint_id}")
    assert got.status_code == 200, got.text
    assert got.json() == older
    posted = await api.post(
        f"/threads/{thread}/state/checkpoint", json={"checkpoint": {"checkpoint_id": checkpoint_id}}
    )
    assert posted.status_code == 200, posted.text
    assert posted.json() == older
    latest = (await api.get(f"/threads/{thread}/state")).json()
    assert len(latest["values"]["messages"]) == 4 and latest == history[0]
    assert (await api.get(f"/threads/nope/state/{checkpoint_id}")).status_code == 404


async def test_get_state_at_a_checkpoint_the_thread_has_not(api: httpx.AsyncClient) -> None:
    """As the LangGraph server answers (``langgraph dev``, measured): 200, empty values,
    the checkpoint asked for as the state's ``checkpoint`` (with the thread's id, and its
    ``checkpoint_ns`` if sent), for a thread with a graph (runs used it, or its metadata
    names a ``graph_id``); for one without, the empty state (``checkpoint: null``). It
    answered ``checkpoint_id: null`` for every thread: the id asked for was lost."""
    thread = (await api.post("/threads", json={})).json()["thread_id"]
    scheduler = on_thread(api, "hello", thread, "hello")
    await scheduler.wait_for_run(scheduler.run_task_now("hello"), timeout=10)
    other = (await api.post("/threads", json={})).json()["thread_id"]  # (another's, too)
    on_thread(api, "other", other, "hello")
    await scheduler.wait_for_run(scheduler.run_task_now("other"), timeout=10)
    theirs = (await api.get(f"/threads/{other}/state")).json()["checkpoint_id"]
    named = (await api.post("/threads", json={"metadata": {"graph_id": "agent"}})).json()
    empty = {
        "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
        "checkpoint": None, "parent_checkpoint": None, "interrupts": [],
        "checkpoint_id": None, "parent_checkpoint_id": None,
    }  # fmt: skip
    for on in (thread, named["thread_id"]):
        for asked in ("0" * 32, theirs):
            got = await api.get(f"/threads/{on}/state/{asked}")
            assert got.status_code == 200, got.text
            echoed = {"checkpoint_id": asked, "thread_id": on}
            assert got.json() == {**empty, "checkpoint": echoed, "checkpoint_id": asked}
        sent = {"checkpoint_id": "nope", "checkpoint_ns": "", "thread_id": "elsewhere"}
        posted = await api.post(f"/threads/{on}/state/checkpoint", json={"checkpoint": sent})
        echoed = {**sent, "thread_id": on}
        assert posted.json() == {**empty, "checkpoint": echoed, "checkpoint_id": "nope"}
    bare = (await api.post("/threads", json={"metadata": {"team": "ops"}})).json()["thread_id"]
    assert (await api.get(f"/threads/{bare}/state/{theirs}")).json() == empty
    assert (await api.get(f"/threads/{bare}/state")).json() == empty


async def test_a_history_filter_the_checkpointer_cannot_apply_is_a_422(
    api: httpx.AsyncClient,
) -> None:
    """A metadata key SQLite's checkpointer refuses to filter by (it takes letters,
    digits, ``_ . -`` only: ``"user id"``, ``""``) is a 422 naming ``metadata``. Every
    ValueError of the checkpointer was answered 503 "the graph keeps no checkpoints ... set
    SCHEDULER_INJECT_CHECKPOINTER=true", which it does."""
    thread = (await api.post("/threads", json={})).json()["thread_id"]
    scheduler = on_thread(api, "hello", thread, "hello")
    await scheduler.wait_for_run(scheduler.run_task_now("hello"), timeout=10)
    for key in ("user id", "", "a'b"):
        refused = await api.post(f"/threads/{thread}/history", json={"metadata": {key: 1}})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith("metadata: "), refused.text
        assert "INJECT_CHECKPOINTER" not in refused.text
    found = await api.post(f"/threads/{thread}/history", json={"metadata": {"step": 1}})
    assert [h["metadata"]["step"] for h in found.json()] == [1]


async def test_a_thread_shows_the_interrupts_its_run_waits_at(
    api: httpx.AsyncClient, tmp_path: Any
) -> None:
    """The SDK's ``Thread`` has ``interrupts`` (by the id of the task that raised them), as
    the LangGraph server sets them when a run ends: a thread whose run waits at
    ``interrupt()`` was ``interrupted`` with no ``interrupts`` key (``thread["interrupts"]``
    raised KeyError); once answered and ended, they are ``{}``."""
    made = (await api.post("/threads", json={})).json()
    thread = made["thread_id"]
    assert "interrupts" not in made  # (a thread no run used: as the server's)
    scheduler = api.scheduler  # type: ignore[attr-defined]
    scheduler.add_task(
        TaskDefinition(
            id="ask", interval_seconds=3600, prompt="ask-record-sleep:0", thread_id=thread,
            metadata={"log": str(tmp_path / "log")},
        )
    )  # fmt: skip
    run_id = scheduler.run_task_now("ask")
    await scheduler.wait_for_run(run_id, timeout=10)
    got = (await api.get(f"/threads/{thread}")).json()
    assert got["status"] == "interrupted"
    [(task_id, asked)] = got["interrupts"].items()
    assert task_id and [i["value"] for i in asked] == [{"question": "go on?"}]
    assert [i["id"] for i in asked] == [i["id"] for i in scheduler.get_run(run_id).interrupts]
    searched = await api.post("/threads/search", json={"select": ["thread_id", "interrupts"]})
    assert {"thread_id": thread, "interrupts": got["interrupts"]} in searched.json()
    scheduler.resume_run(run_id, "yes")
    await scheduler.wait_for_run(run_id, timeout=10)
    got = (await api.get(f"/threads/{thread}")).json()
    assert (got["status"], got["interrupts"]) == ("idle", {})


class _Odd(TypedDict, total=False):
    prompt: str
    blob: bytes
    ratio: float
    waited: timedelta


def _odd_values(state: _Odd) -> dict[str, Any]:
    return {"blob": b"\x00\xff\xfb", "ratio": float("nan"), "waited": timedelta(seconds=90)}


_odd = StateGraph(_Odd)
_odd.add_node("odd", _odd_values)
_odd.add_edge(START, "odd")


async def test_values_json_has_no_form_for_are_answered_as_the_server_encodes_them(
    make_scheduler: SchedulerFactory,
) -> None:
    """Bytes that are not UTF-8 in a thread's values made threads.get, get_state,
    get_history and the unfiltered threads.search answer 500 (and runs.join break off);
    NaN went out as ``NaN``, which the SDK cannot read. As the LangGraph server: standard
    base64, ``null``, a timedelta's seconds."""
    scheduler = make_scheduler(http_rate_per_second=0, graph=_odd.compile(InMemorySaver()))
    async with client_of(scheduler) as api:
        thread = (await api.post("/threads", json={})).json()["thread_id"]
        scheduler.add_task(
            TaskDefinition(id="odd", interval_seconds=3600, prompt="p", thread_id=thread)
        )
        run_id = scheduler.run_task_now("odd")
        await scheduler.wait_for_run(run_id, timeout=10)
        expected = {"blob": "AP/7", "ratio": None, "waited": 90.0}
        for path in (f"/threads/{thread}", f"/threads/{thread}/state"):
            answer = await api.get(path)
            assert answer.status_code == 200, answer.text
            values = answer.json()["values"]
            assert {k: values[k] for k in expected} == expected
        history = await api.get(f"/threads/{thread}/history")
        assert history.status_code == 200 and history.json()[0]["values"]["blob"] == "AP/7"
        found = await api.post("/threads/search", json={})
        assert found.status_code == 200, found.text
        [listed] = [t for t in found.json() if t["thread_id"] == thread]
        assert listed["values"]["blob"] == "AP/7" and listed["values"]["ratio"] is None
        joined = await api.get(f"/threads/{thread}/runs/{run_id}/join")
        assert joined.status_code == 200 and joined.json()["blob"] == "AP/7"


async def test_threads_create_refuses_what_it_would_not_do(api: httpx.AsyncClient) -> None:
    """``threads.create(supersteps=[...])`` and ``ttl=...`` answered 200 and made a plain
    thread (no values, no expiry), as a search refuses a filter it cannot apply."""
    for extra, name in (
        (
            {"supersteps": [{"updates": [{"values": {"messages": []}, "as_node": "x"}]}]},
            "supersteps",
        ),
        ({"ttl": {"ttl": 5, "strategy": "delete"}}, "ttl"),
    ):
        answer = await api.post("/threads", json=extra)
        assert answer.status_code == 422, answer.text
        assert f"{name}: not supported by this server's threads create" in answer.text
    assert (await api.post("/threads/search", json={})).json() == []  # nothing made
