"""A LangGraph server as the execution engine, against a real ``langgraph dev``: a firing
becomes a server run (with the scheduler's metadata and run name), a task's thread is a
server thread across firings, a timeout cancels the server's run, and an ``interrupt()`` on
the server is ``waiting`` here until ``resume_run`` resumes it there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from scheduler import RunStatus, TaskDefinition, TaskScheduler
from scheduler.remote import ServerGraph, server_thread_id
from tests.conftest import LangGraphDev, eventually, make_settings

# one xdist worker runs every test of the group (--dist loadgroup): one langgraph dev (a
# session fixture), started once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("langgraph-dev")]

Factory = Callable[[str], TaskScheduler]


@pytest.fixture
async def on_server(langgraph_dev: LangGraphDev, tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[TaskScheduler] = []

    def factory(graph_id: str) -> TaskScheduler:
        settings = make_settings(graph=f"{langgraph_dev.url}#{graph_id}")
        scheduler = TaskScheduler(db_path=tmp_path / f"{graph_id}.db", settings=settings)
        made.append(scheduler)
        scheduler.start()
        return scheduler

    yield factory
    for scheduler in made:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def fire(scheduler: TaskScheduler, task: TaskDefinition) -> Any:
    scheduler.add_task(task)
    return await scheduler.wait_for_run(scheduler.run_task_now(task.id), timeout=60)


async def test_a_firing_is_a_server_run_with_the_schedulers_metadata(
    on_server: Factory, langgraph_dev: LangGraphDev
) -> None:
    scheduler = on_server("context_agent")
    task = TaskDefinition(
        id="remote-react", interval_seconds=3600, prompt="hi", metadata={"team": "ops"}
    )
    run = await fire(scheduler, task)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    assert run.output == (
        "echo-model says hello to default-user (prompt: You are a helpful assistant.)"
    )  # the server built the context from the schema's defaults
    assert run.thread_id is not None
    async with get_client(url=langgraph_dev.url) as client:
        [server_run] = await client.runs.list(server_thread_id(run.thread_id))
    assert server_run["status"] == "success"
    metadata = server_run["metadata"]
    assert (metadata["task_id"], metadata["scheduler_run_id"]) == ("remote-react", run.id)
    assert metadata["team"] == "ops" and metadata["attempt"] == 1
    assert server_run["kwargs"]["config"]["run_name"] == "scheduled:remote-react"


async def test_a_tasks_thread_continues_on_the_server_across_firings(on_server: Factory) -> None:
    scheduler = on_server("counter")
    task = TaskDefinition(
        id="remote-chat", interval_seconds=3600, prompt="again", thread_id="remote-chat-thread"
    )
    outputs = [(await fire(scheduler, task)).output for _ in range(3)]
    assert [o.split(" (")[0] for o in outputs if o] == ["turn 1", "turn 2", "turn 3"]


async def test_two_spellings_of_one_uuid_take_turns_on_their_one_server_thread(
    on_server: Factory,
) -> None:
    """The server reads both spellings as one thread; here they were two, and their runs
    ran at once on it (the server queued the second, whose timeout counted the first)."""
    scheduler = on_server("sleeper")
    thread = str(uuid.uuid4())
    for task_id, spelling in (("lower", thread), ("upper", thread.upper())):
        scheduler.add_task(
            TaskDefinition(id=task_id, interval_seconds=3600, prompt="1.5", thread_id=spelling)
        )
    ids = [scheduler.run_task_now("lower"), scheduler.run_task_now("upper")]
    runs = [await scheduler.wait_for_run(run_id, timeout=60) for run_id in ids]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs), runs
    first, second = sorted(runs, key=lambda r: r.started_at or r.queued_at)
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at, "two runs on one server thread at once"


async def test_a_timeout_cancels_the_servers_run(
    on_server: Factory, langgraph_dev: LangGraphDev
) -> None:
    scheduler = on_server("sleeper")
    task = TaskDefinition(id="slow", interval_seconds=3600, prompt="60", timeout_seconds=2)
    run = await fire(scheduler, task)
    assert run.status is RunStatus.TIMED_OUT
    assert run.thread_id is not None
    thread = server_thread_id(run.thread_id)
    async with get_client(url=langgraph_dev.url) as client:

        async def cancelled() -> bool:
            [server_run] = await client.runs.list(thread)
            return server_run["status"] in ("interrupted", "error")

        await eventually(cancelled, timeout=20, message="the server's run cancelled")


class HoldingProxy:
    """A TCP proxy to ``port`` that holds the answer to a run's stream (a connection whose
    first request is ``POST .../runs/stream``) for ``seconds``: the server has made the run,
    and the client does not know it yet."""

    def __init__(self, port: int, seconds: float) -> None:
        self.port, self.seconds = port, seconds
        self.url = ""
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.close()
        for serving in list(self._serving):
            serving.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._serving.add(current := asyncio.current_task())  # type: ignore[arg-type]
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.port)
        self._open |= {writer, upstream}
        first = await reader.read(65536)
        upstream.write(first)
        held = b"/runs/stream" in first.split(b"\r\n", 1)[0]

        async def pipe(source: asyncio.StreamReader, to: asyncio.StreamWriter, hold: bool) -> None:
            with contextlib.suppress(OSError):
                if hold:
                    await asyncio.sleep(self.seconds)
                while data := await source.read(65536):
                    to.write(data)
                    await to.drain()
            to.close()

        try:
            await asyncio.gather(pipe(reader, upstream, False), pipe(upstream_reader, writer, held))
        finally:
            for end in (writer, upstream):
                end.close()
                self._open.discard(end)
            self._serving.discard(current)  # type: ignore[arg-type]


async def test_a_run_cut_short_before_the_server_said_which_run_it_made_is_cancelled_there(
    langgraph_dev: LangGraphDev, tmp_path: Path
) -> None:
    """The run's timeout comes while the server's answer to the run's creation is still on
    its way (held by a proxy): the server's run, which goes on after a disconnect, is
    looked up by its metadata and cancelled there. Before, it ran on, unwatched, while the
    run here was recorded ``timed_out``."""
    async with HoldingProxy(int(langgraph_dev.url.rsplit(":", 1)[1]), 6) as proxy:
        settings = make_settings(graph=f"{proxy.url}#sleeper", max_retries=0)
        scheduler = TaskScheduler(db_path=tmp_path / "held.db", settings=settings)
        scheduler.start()
        try:
            task = TaskDefinition(id="held", interval_seconds=3600, prompt="30", timeout_seconds=1)
            run = await fire(scheduler, task)
        finally:
            await scheduler.stop(grace_seconds=0)
            scheduler.close()
    assert run.status is RunStatus.TIMED_OUT, run.error_message
    assert run.thread_id is not None
    async with get_client(url=langgraph_dev.url) as client:

        async def cancelled() -> Any:
            runs = await client.runs.list(server_thread_id(run.thread_id))
            return [r["status"] for r in runs] == ["interrupted"] and runs

        [server_run] = await eventually(cancelled, timeout=20, message="the server's run cancelled")
    assert server_run["metadata"]["scheduler_run_id"] == run.id


async def test_an_interrupt_on_the_server_waits_here_and_an_answer_resumes_it_there(
    on_server: Factory, langgraph_dev: LangGraphDev
) -> None:
    scheduler = on_server("asker")
    run = await fire(scheduler, TaskDefinition(id="approve", interval_seconds=3600, prompt="v2"))
    assert run.status is RunStatus.WAITING, run.error_message
    assert run.interrupts is not None
    assert run.interrupts[0]["value"] == {"question": "approve v2?"}
    scheduler.resume_run(run.id, "approved")
    done = await eventually(lambda: (r := scheduler.get_run(run.id)).status.is_final and r)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was approved")
    assert done.thread_id is not None
    async with get_client(url=langgraph_dev.url) as client:
        state = await client.threads.get_state(server_thread_id(done.thread_id))
    assert state["values"]["messages"][-1]["content"] == "the answer was approved"


async def test_a_run_cancelled_on_the_server_fails_here(
    on_server: Factory, langgraph_dev: LangGraphDev
) -> None:
    """Cancelled there by another client (Studio, the SDK): its stream ends without an
    ``error`` event, with the state it had; the run here fails (to retry), it did not
    succeed with that state as its output."""
    scheduler = on_server("sleeper")
    scheduler.add_task(
        TaskDefinition(id="slow", interval_seconds=3600, prompt="60", thread_id="cancelled-there")
    )
    run_id = scheduler.run_task_now("slow")
    thread = server_thread_id("cancelled-there")
    async with get_client(url=langgraph_dev.url) as client:

        async def running() -> Any:
            with contextlib.suppress(NotFoundError):  # (the thread is made with the run)
                runs = await client.runs.list(thread)
                return runs and runs[0]["status"] == "running" and runs[0]
            return None

        server_run = await eventually(running, timeout=30, message="the server's run")
        await client.runs.cancel(thread, server_run["run_id"])
        run = await scheduler.wait_for_run(run_id, timeout=30)
        assert (await client.runs.get(thread, server_run["run_id"]))["status"] == "interrupted"
    assert run.status is RunStatus.FAILED, (run.status, run.output)
    assert run.error_type == "ServerRunError" and run.output is None
    assert f"run {server_run['run_id']!r}" in run.error_message
    assert "ended 'interrupted', not 'success': cancelled on the server" in run.error_message


async def test_a_null_answer_is_refused_and_the_run_still_waits_for_one(
    on_server: Factory,
) -> None:
    """LangGraph takes ``Command(resume=None)`` for no answer: the server's run would stop
    at the same question, the answer used up. Refused, nothing written."""
    scheduler = on_server("asker")
    run = await fire(scheduler, TaskDefinition(id="approve", interval_seconds=3600, prompt="v4"))
    assert run.status is RunStatus.WAITING, run.error_message
    with pytest.raises(ValueError, match="the answer must not be null"):
        scheduler.resume_run(run.id, None)
    after = scheduler.get_run(run.id)
    assert (after.status, after.answered) == (RunStatus.WAITING, False)
    scheduler.resume_run(run.id, "yes")
    done = await eventually(lambda: (r := scheduler.get_run(run.id)).status.is_final and r)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was yes")


def test_run_here_then_answer_here_each_in_its_own_event_loop(
    langgraph_dev: LangGraphDev, tmp_path: Path
) -> None:
    """``run --wait`` then ``answer --wait`` (each an ``asyncio.run``) on one scheduler: the
    answer's run must not use the connections of the first, closed, event loop."""
    settings = make_settings(graph=f"{langgraph_dev.url}#asker")
    scheduler = TaskScheduler(db_path=tmp_path / "here.db", settings=settings)
    try:
        scheduler.add_task(TaskDefinition(id="approve", interval_seconds=3600, prompt="v5"))
        asked = asyncio.run(scheduler.run_task_here("approve", timeout=60))
        assert asked.status is RunStatus.WAITING, asked.error_message
        done = asyncio.run(scheduler.resume_run_here(asked.id, "yes", timeout=60))
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was yes"), (
            done.error_message
        )
    finally:
        scheduler.close()


def test_a_server_graph_runs_in_one_event_loop_after_another(langgraph_dev: LangGraphDev) -> None:
    """Its client is the running event loop's: a graph used in one event loop, then in
    another (not closed in between) works in both; ``aclose`` closes each loop's."""
    graph = ServerGraph(f"{langgraph_dev.url}#counter")
    config = {"configurable": {"thread_id": "two-loops"}}

    async def turn() -> Any:
        said = {"messages": [{"role": "user", "content": "hi"}]}
        return await asyncio.wait_for(graph.ainvoke(said, config), 30)

    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        outputs = [loop.run_until_complete(turn())["messages"][-1]["content"] for loop in loops]
    finally:
        for loop in loops:
            with contextlib.suppress(Exception):  # (before the fix: the other loop's client)
                loop.run_until_complete(graph.aclose())
            loop.close()
    assert [o.split(" (")[0] for o in outputs] == ["turn 1", "turn 2"]


async def test_an_answer_never_goes_to_another_runs_question_on_the_server_thread(
    on_server: Factory, langgraph_dev: LangGraphDev
) -> None:
    """Two tasks on one server thread, each waiting at its own question: the server resumes
    whatever question the thread waits at (the second's), so the first's answer would
    approve the second's question. It is not applied, as in this process."""
    scheduler = on_server("asker")
    runs = []
    for task_id, prompt in (("first", "v6"), ("second", "v7")):
        task = TaskDefinition(id=task_id, interval_seconds=3600, prompt=prompt, thread_id="one")
        runs.append(await fire(scheduler, task))
    first, second = runs
    assert (first.status, second.status) == (RunStatus.WAITING, RunStatus.WAITING)
    scheduler.resume_run(first.id, "yes to v6")
    done = await eventually(lambda: (r := scheduler.get_run(first.id)).status.is_final and r)
    assert (done.status, done.error_type) == (RunStatus.CANCELLED, "AnswerNotApplied"), done
    assert "now waits at another question" in (done.error_message or "")
    async with get_client(url=langgraph_dev.url) as client:
        state = await client.threads.get_state(server_thread_id("one"))
    assert [i["value"] for i in state["interrupts"]] == [{"question": "approve v7?"}]
    scheduler.resume_run(second.id, "yes to v7")
    done = await eventually(lambda: (r := scheduler.get_run(second.id)).status.is_final and r)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was yes to v7")


@pytest.mark.parametrize(
    ("graph_id", "stopped_before"), [("reviewed", "publish"), ("reviewed_inside", "review")]
)
async def test_a_static_breakpoint_on_the_server_waits_here_and_an_answer_finishes_it_there(
    on_server: Factory, langgraph_dev: LangGraphDev, graph_id: str, stopped_before: str
) -> None:
    """A graph compiled with ``interrupt_before`` (its own, or a subgraph's) stops there on
    the server, whose run is recorded ``success`` all the same, half done: here it waits
    (as in this process), and an answer goes on from there, on the server, as the server's
    docs resume a static breakpoint: with no input (and no ``command``)."""
    scheduler = on_server(graph_id)
    run = await fire(scheduler, TaskDefinition(id="review", interval_seconds=3600, prompt="v8"))
    assert run.status is RunStatus.WAITING, (run.status, run.output, run.error_message)
    [asked] = run.interrupts or []
    assert asked["value"] == {"breakpoint": [stopped_before]}
    assert re.fullmatch("[0-9a-f]{32}", asked["id"]), asked  # (from the server's checkpoint)
    assert graph_id == "reviewed_inside" or run.output == "draft of v8"
    scheduler.resume_run(run.id, {asked["id"]: "go on"})  # answered by id, as in this process
    done = await eventually(lambda: (r := scheduler.get_run(run.id)).status.is_final and r)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "published draft of v8"), done
    async with get_client(url=langgraph_dev.url) as client:
        thread = server_thread_id(done.thread_id or "")
        state = await client.threads.get_state(thread)
        resumed = (await client.runs.list(thread))[0]
    assert (resumed["kwargs"]["input"], resumed["kwargs"]["command"]) == (None, None)
    assert state["next"] == []
    assert [m["content"] for m in state["values"]["messages"]] == [
        "v8",
        "draft of v8",
        "published draft of v8",
    ]


async def test_an_adopted_server_run_stopped_at_a_static_breakpoint_waits(
    langgraph_dev: LangGraphDev,
) -> None:
    """A retry (or a run watched again) that adopts the server run of an attempt whose
    process died, a run that stopped at a static breakpoint meanwhile: its end is
    ``waiting`` there, not a success (and an ``interrupt()``'s question keeps its id)."""
    from datetime import UTC, datetime

    from scheduler import RunTrigger
    from scheduler.invocation import interrupts_of
    from scheduler.records import RunRecord

    now = datetime.now(UTC)
    attempt = RunRecord(
        id="attempt-1", task_id="review", status=RunStatus.INTERRUPTED, scheduled_for=now,
        queued_at=now, started_at=now, finished_at=now, attempt=1, occurrences=1,
        trigger=RunTrigger.MANUAL, thread_id=f"adopted-{uuid.uuid4()}", error_type=None,
        error_message=None, error_traceback=None, output=None,
    )  # fmt: skip
    thread = server_thread_id(str(attempt.thread_id))
    graph = ServerGraph(f"{langgraph_dev.url}#reviewed")
    try:
        await graph.client.threads.create(thread_id=thread)
        said = {"messages": [{"role": "user", "content": "v9"}]}
        made = await graph.client.runs.create(
            thread, "reviewed", input=said, metadata={"scheduler_run_id": "attempt-1"}
        )
        await graph.client.runs.join(thread, made["run_id"])
        config = {"metadata": {"task_id": "review", "run_id": "attempt-2"}}
        values, where = await graph.aadopt([attempt], config)
    finally:
        await graph.aclose()
    assert where == attempt.thread_id
    [asked] = json.loads(interrupts_of(values) or "[]")
    assert asked["value"] == {"breakpoint": ["publish"]}
    assert re.fullmatch("[0-9a-f]{32}", asked["id"]), asked
    assert values["messages"][-1]["content"] == "draft of v9"
