"""Graphs whose synchronous nodes block past their run's timeout, on a real SQLite file with
the checkpointer the scheduler injects: LangGraph runs such nodes on the event loop's
default executor, and a thread that never returns stays taken after its run timed out.
The scheduler's own calls (checkpoint writes, run-log flushes) must not queue behind them."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph

from scheduler import RunStatus, TaskDefinition, TaskScheduler
from tests import prompt_graphs
from tests.conftest import SchedulerFactory, eventually, make_settings

released = threading.Event()


def _blocks(state: MessagesState) -> dict[str, Any]:
    released.wait(60)  # a synchronous call that does not return in time (a hung socket)
    return {"messages": [AIMessage("late")]}


async def _answers(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(f"done: {state['messages'][-1].content}")]}


async def _route(state: MessagesState) -> str:
    return "blocks" if state["messages"][-1].content == "block" else "answers"


def _graph() -> Any:  # (only the blocking node is synchronous: the rest needs no thread)
    builder = StateGraph(MessagesState)
    builder.add_node("blocks", _blocks)
    builder.add_node("answers", _answers)
    builder.add_conditional_edges(START, _route)
    return builder.compile()


async def test_hung_sync_nodes_hold_up_neither_timeouts_nor_other_runs(
    make_scheduler: SchedulerFactory,
) -> None:
    # a small default executor, so that the test means the same on any number of cores
    small = ThreadPoolExecutor(2, thread_name_prefix="default")
    asyncio.get_running_loop().set_default_executor(small)
    released.clear()
    scheduler = make_scheduler(graph=_graph())
    scheduler.start()
    try:
        hung = []
        for i in range(4):  # twice the executor's threads
            scheduler.add_task(
                TaskDefinition(
                    id=f"hangs-{i}",
                    interval_seconds=3600,
                    prompt="block",
                    thread_id=f"hung-{i}",
                    timeout_seconds=0.3,
                    max_retries=0,
                )
            )
            hung.append(scheduler.run_task_now(f"hangs-{i}"))
        for run_id in hung:  # each recorded at its timeout, not once a node returns
            run = await scheduler.wait_for_run(run_id, timeout=10)
            assert run.status is RunStatus.TIMED_OUT, run
            assert run.duration_seconds is not None and run.duration_seconds < 5
        scheduler.add_task(
            TaskDefinition(id="other", interval_seconds=3600, prompt="hi", thread_id="t-1")
        )
        run = await scheduler.wait_for_run(scheduler.run_task_now("other"), timeout=10)
        assert run.status is RunStatus.SUCCEEDED, run
        assert run.output is not None and "done: hi" in str(run.output)
    finally:
        released.set()
        small.shutdown(wait=False)


async def _sleeps_on_the_loop(state: MessagesState) -> dict[str, Any]:
    time.sleep(2.5)  # noqa: ASYNC251 (the mistake: blocking code in an async node)
    return {"messages": [AIMessage("slept")]}


async def test_a_node_that_blocks_the_event_loop_is_named_in_a_warning(
    make_scheduler: SchedulerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("sleeps", _sleeps_on_the_loop)
    builder.add_edge(START, "sleeps")
    scheduler = make_scheduler(graph=builder.compile(), loop_stall_seconds=1)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="blocks", interval_seconds=3600, prompt="hi"))
    with caplog.at_level(logging.WARNING, logger="scheduler"):
        run = await scheduler.wait_for_run(scheduler.run_task_now("blocks"), timeout=20)
        await eventually(lambda: "runs again" in caplog.text, timeout=5)
    assert run.status is RunStatus.SUCCEEDED
    [stalled] = [r for r in caplog.records if "has not run for 1 s" in r.getMessage()]
    assert "_sleeps_on_the_loop" in stalled.getMessage()
    assert "time.sleep(2.5)" in stalled.getMessage()
    [again] = [r for r in caplog.records if "runs again" in r.getMessage()]
    seconds = float(again.getMessage().split("after ")[1].split(" s")[0])
    assert 1 <= seconds < 10


async def test_no_stall_warning_for_a_loop_that_keeps_running(
    make_scheduler: SchedulerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make_scheduler(loop_stall_seconds=0.5)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="waits", interval_seconds=3600, prompt="sleep:2"))
    with caplog.at_level(logging.WARNING, logger="scheduler"):
        run = await scheduler.wait_for_run(scheduler.run_task_now("waits"), timeout=20)
    assert run.status is RunStatus.SUCCEEDED
    assert "event loop" not in caplog.text


def test_no_stall_warning_for_a_loop_stopped_between_its_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A program may run its loop in turns (``run_until_complete``, a session-wide loop of
    pytest-asyncio between tests): while the loop is stopped, nothing blocks it, and no
    warning says something does (the watch said so, pointing at the program's own code)."""
    loop = asyncio.new_event_loop()
    settings = make_settings(loop_stall_seconds=0.5)
    scheduler = TaskScheduler(True, tmp_path / "s.db", graph=prompt_graphs.graph, settings=settings)

    async def start() -> None:
        scheduler.start()

    try:
        with caplog.at_level(logging.WARNING, logger="scheduler"):
            loop.run_until_complete(start())
            time.sleep(1.5)  # the program's own work, between turns of its loop
            loop.run_until_complete(asyncio.sleep(0.3))
            loop.run_until_complete(scheduler.stop(grace_seconds=0))
    finally:
        scheduler.close()
        loop.close()
    assert "event loop" not in caplog.text
