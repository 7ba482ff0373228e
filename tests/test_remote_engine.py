"""A LangGraph server as the execution engine, against a real ``langgraph dev``: a firing
becomes a server run (with the scheduler's metadata and run name), a task's thread is a
server thread across firings, a timeout cancels the server's run, and an ``interrupt()`` on
the server is ``waiting`` here until ``resume_run`` resumes it there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from scheduler import RunStatus, TaskDefinition, TaskScheduler
from scheduler.remote import server_thread_id
from tests.conftest import LangGraphDev, eventually, make_settings

pytestmark = pytest.mark.slow

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
