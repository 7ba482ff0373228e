"""Answers to runs waiting at ``interrupt()``, at the edges: an answer and the run's end
(removed task, waiting timeout) come together, in one process or from another; exactly
one of them wins, and an answer accepted is never lost. A real graph on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
import re
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import interrupt

from scheduler import RunRecord, RunStatus, TaskDefinition, TaskScheduler
from scheduler.exceptions import AnswerMismatchError, RunNotWaitingError
from scheduler.testing import clocked_scheduler
from tests import callbacks, server_graphs
from tests.conftest import SchedulerFactory, eventually


async def test_an_answer_after_the_task_is_removed_is_refused() -> None:
    async with clocked_scheduler(graph=server_graphs.asker) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
        assert run.status is RunStatus.WAITING
        scheduler.remove_task("ask")
        with pytest.raises(RunNotWaitingError):
            scheduler.resume_run(run.id, "yes")
        await clock.advance(seconds=1)
        ended = scheduler.get_run(run.id)
        assert (ended.status, ended.error_message) == (RunStatus.CANCELLED, "the task was removed")
        assert not ended.answered


async def test_a_resumed_run_keeps_its_first_start_and_says_its_second_start_is_a_resume() -> None:
    """The answer's resume wrote its start over the run's (``runs`` showed a run that
    waited an hour as taking 0 s, and the metrics' start lateness took the hour as a late
    start); now ``started_at`` stays, and the second ``started`` event says ``resumed``."""
    async with clocked_scheduler(graph=server_graphs.asker) as (scheduler, clock):
        events: list[Any] = []
        scheduler.subscribe(events.append)
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [asked] = scheduler.list_runs("ask")
        assert asked.status is RunStatus.WAITING and asked.started_at is not None
        await clock.advance(hours=1)
        scheduler.resume_run(asked.id, "yes")
        await clock.advance(seconds=1)
        ended = scheduler.get_run(asked.id)
        assert ended.status is RunStatus.SUCCEEDED
        assert ended.started_at == asked.started_at
        assert ended.duration_seconds is not None and ended.duration_seconds >= 3600
        starts = [(e.run.started_at, e.resumed) for e in events if e.kind == "started"]
        assert starts == [(asked.started_at, False), (asked.started_at, True)]


async def test_a_waiting_run_can_be_cancelled() -> None:
    """``cancel_run`` of a run waiting for an answer ends it ``cancelled``, followed as any
    cancelled run (``on: finished``), and frees its task for the next occurrence (overlap
    ``skip`` skipped every one). It answered False (HTTP: 409 "not running"): with no
    waiting timeout, only an answer or removing the task ended it."""
    async with clocked_scheduler(graph=server_graphs.asker) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(id="ask", interval_seconds=3600, prompt="x", overlap="skip")
        )
        then = {"tasks": ["ask"], "on": "finished"}
        scheduler.add_task(TaskDefinition(id="after", after=then, prompt="sleep:0"))
        await clock.advance(hours=1, seconds=1)
        [run] = scheduler.list_runs("ask")
        assert run.status is RunStatus.WAITING
        assert scheduler.cancel_run(run.id) is True
        await clock.advance(seconds=1)
        ended = scheduler.get_run(run.id)
        assert (ended.status, ended.error_type) == (RunStatus.CANCELLED, "Cancelled")
        assert [r.status for r in scheduler.list_runs("after")] == [RunStatus.WAITING]
        with pytest.raises(RunNotWaitingError):
            scheduler.resume_run(run.id, "yes")
        assert scheduler.cancel_run(run.id) is False
        await clock.advance(hours=1)
        assert [r.status for r in scheduler.list_runs("ask")] == [
            RunStatus.WAITING,
            RunStatus.CANCELLED,
        ]


async def test_wait_for_run_after_a_cancel_waits_for_the_cancel(
    make_scheduler: SchedulerFactory,
) -> None:
    """``cancel_run`` of a run waiting here answers True at once, but its record is written
    a moment later: ``wait_for_run`` returned the record still ``waiting`` (a stop it takes
    for "waits for an answer"), so a caller could not wait for the cancel to land."""
    scheduler = make_scheduler(graph=server_graphs.asker)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="ask", interval_seconds=3600, prompt="x"))
    for _ in range(3):
        run_id = scheduler.run_task_now("ask")
        assert (await scheduler.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
        assert scheduler.cancel_run(run_id) is True
        ended = await scheduler.wait_for_run(run_id, timeout=10)
        assert (ended.status, ended.error_type) == (RunStatus.CANCELLED, "Cancelled")


async def test_a_null_answer_is_refused_here_and_there_and_writes_nothing(
    tmp_path: object,
) -> None:
    """LangGraph takes ``Command(resume=None)`` for no answer (in process, the graph fails
    with an UnboundLocalError; on a server, the run stops at the same question)."""
    db = f"{tmp_path}/s.db"
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
        with pytest.raises(ValueError, match="the answer must not be null"):
            scheduler.resume_run(run.id, None)
        with pytest.raises(ValueError, match="the answer must not be null"):
            await scheduler.aresume_run(run.id, None)
    here = TaskScheduler(db_path=db, graph=server_graphs.asker)
    try:
        with pytest.raises(ValueError, match="the answer must not be null"):
            await here.resume_run_here(run.id, None, timeout=30)
        after = here.get_run(run.id)
        assert (after.status, after.answered) == (RunStatus.WAITING, False)
        done = await here.resume_run_here(run.id, "yes", timeout=30)
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was yes")
    finally:
        here.close()


async def test_an_answer_with_an_integer_checkpoints_cannot_hold_is_refused() -> None:
    """LangGraph's checkpoints hold integers from -2**63 to 2**64-1: an answer with one
    outside is refused, nothing written, and the run still waits for a good one (before,
    it was taken, and the run failed at once: TypeError, its question lost)."""
    async with clocked_scheduler(graph=server_graphs.asker) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
        for value in (2**64, {"n": [-(2**63) - 1]}, 10**5000):
            with pytest.raises(ValueError, match="outside -2\\*\\*63 to 2\\*\\*64-1"):
                scheduler.resume_run(run.id, value)
        waiting = scheduler.get_run(run.id)
        assert (waiting.status, waiting.answered) == (RunStatus.WAITING, False)
        scheduler.resume_run(run.id, [2**64 - 1, -(2**63)])
        await clock.advance(seconds=1)
        done = scheduler.get_run(run.id)
    assert done.output == f"the answer was {[2**64 - 1, -(2**63)]}"


async def test_removing_a_task_ends_its_waiting_runs_held_by_no_process(tmp_path: object) -> None:
    """Removed from another process (the CLI) while no scheduler runs: the answer that
    follows is refused there too, and the next start holds nothing."""
    db = f"{tmp_path}/s.db"
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
    other = TaskScheduler(db_path=db, graph=server_graphs.asker)
    try:
        other.remove_task("ask")
        with pytest.raises(RunNotWaitingError):
            other.resume_run(run.id, "yes")
        assert other.get_run(run.id).status is RunStatus.CANCELLED
    finally:
        other.close()


@pytest.mark.parametrize("before", [0.5, 0.15])
async def test_an_answer_from_another_process_just_before_the_timeout_wins(
    make_scheduler: SchedulerFactory, before: float
) -> None:
    """The active process sees answers given elsewhere at its next poll (every 2 s here);
    its waiting timeout comes first, and must not end a run answered in time."""
    active = make_scheduler(graph=server_graphs.asker, poll_interval_seconds=2.0)
    active.add_task(
        TaskDefinition(id="ask", interval_seconds=3600, prompt="x", waiting_timeout_seconds=1.0)
    )
    active.start()
    run_id = active.run_task_now("ask")
    run = await active.wait_for_run(run_id, timeout=10)
    assert run.status is RunStatus.WAITING and run.waiting_since is not None
    other = make_scheduler(graph=server_graphs.asker)  # another process's API
    await asyncio.sleep(max(0.0, run.waiting_since.timestamp() + 1.0 - before - time.time()))
    await asyncio.to_thread(other.resume_run, run_id, "approved")
    done = await active.wait_for_outcome(run_id, timeout=10)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was approved")


async def test_a_waiting_timeout_refuses_a_later_answer(make_scheduler: SchedulerFactory) -> None:
    active = make_scheduler(graph=server_graphs.asker, poll_interval_seconds=2.0)
    active.add_task(
        TaskDefinition(id="ask", interval_seconds=3600, prompt="x", waiting_timeout_seconds=0.3)
    )
    active.start()
    run_id = active.run_task_now("ask")
    await eventually(lambda: active.get_run(run_id).status is RunStatus.TIMED_OUT)
    other = make_scheduler(graph=server_graphs.asker)
    with pytest.raises(RunNotWaitingError):
        other.resume_run(run_id, "late")
    assert not active.get_run(run_id).answered


async def test_a_waiting_timeout_after_a_removal_elsewhere_tells_the_removal(
    make_scheduler: SchedulerFactory,
) -> None:
    """The task is removed from another process (the removal ends the run ``cancelled``);
    the active one's waiting timeout comes before its next poll. The record stays
    cancelled, and so is the run for this process: its listeners heard ``timed_out`` and
    its failure callback was called for a run that did not time out."""
    callbacks.failures.clear()
    active = make_scheduler(graph=server_graphs.asker, poll_interval_seconds=30.0)
    active.add_task(
        TaskDefinition(
            id="ask",
            interval_seconds=3600,
            prompt="x",
            waiting_timeout_seconds=0.5,
            on_failure_callback="tests.callbacks:on_failure",
        )
    )
    heard: list[tuple[str, RunStatus]] = []
    active.subscribe(lambda event: heard.append((event.kind, event.run.status)))
    active.start()
    run_id = active.run_task_now("ask")
    assert (await active.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
    make_scheduler(graph=server_graphs.asker).remove_task("ask")  # another process's API
    await eventually(lambda: ("finished", RunStatus.CANCELLED) in heard)
    await asyncio.sleep(0.2)  # (a failure callback would have been called by now)
    assert heard[-1] == ("finished", RunStatus.CANCELLED)
    assert active.get_run(run_id).error_type == "TaskRemoved"
    assert callbacks.failures == []


async def test_here_refused_by_an_active_scheduler_writes_nothing(tmp_path: object) -> None:
    """``run --wait`` / ``answer --wait`` with no scheduler seen, and one starts before the
    run does: refused, and nothing was queued or answered (the other scheduler would have
    taken it up while the caller was told it was refused, and a retry runs it twice)."""
    from scheduler.exceptions import SchedulerError
    from scheduler.leader import leader_lock_for

    db = f"{tmp_path}/s.db"
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
    here = TaskScheduler(db_path=db, graph=server_graphs.asker)
    lock = leader_lock_for(here.store)
    assert lock.try_acquire()  # the scheduler that started meanwhile
    try:
        with pytest.raises(SchedulerError, match="is active on"):
            await here.resume_run_here(run.id, "yes", timeout=30)
        assert not here.get_run(run.id).answered
        with pytest.raises(SchedulerError, match="is active on"):
            await here.run_task_here("ask", timeout=30)
        assert [r.id for r in here.list_runs("ask")] == [run.id]
    finally:
        lock.release()
    answered = await here.resume_run_here(run.id, "yes", timeout=30)  # the lock is free again
    assert answered.status is RunStatus.SUCCEEDED
    here.close()


def _odd_question(state: MessagesState) -> dict[str, Any]:
    answer = interrupt({(1, 2): "a key that is not text", 3: {b"bytes": {1.5, 2.5}}})
    return {"messages": [AIMessage(f"the answer was {answer}")]}


_odd = StateGraph(MessagesState)
_odd.add_node("ask", _odd_question)
_odd.add_edge(START, "ask")
odd_asker = _odd.compile()


async def test_a_question_that_is_not_json_still_waits_for_its_answer() -> None:
    """``interrupt()`` with a value JSON cannot hold (a tuple key, bytes keys): the run
    waits, its question kept as text, and the answer resumes it; it used to be recorded
    failed, its graph paused for ever."""
    async with clocked_scheduler(graph=odd_asker) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
        assert run.status is RunStatus.WAITING, run.error_message
        [asked] = run.interrupts or []
        assert "a key that is not text" in str(asked["value"])
        scheduler.resume_run(run.id, "yes")
        await clock.advance(seconds=1)
        done = scheduler.get_run(run.id)
        assert done.status is RunStatus.SUCCEEDED and done.output == "the answer was yes"


@pytest.mark.parametrize(("value", "seen"), [({1: "yes"}, "{'1': 'yes'}"), (("a", 2), "['a', 2]")])
async def test_a_python_answer_resumes_the_graph_with_what_was_recorded(
    tmp_path: Path, value: Any, seen: str
) -> None:
    """An answer that JSON changes (an int key is text once recorded, a tuple a list)
    resumes the graph with the recorded value, here and in a process that answers with
    ``resume_run_here``, as a restart or a worker resumes it from the record; before, the
    graph got the Python value itself (an int key: LangGraph failed the run, TypeError)."""
    db = str(tmp_path / "s.db")
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2099-01-01T00:00:00Z", prompt="x"))
        here_id = scheduler.run_task_now("ask")
        run_id = scheduler.run_task_now("ask")
        await clock.advance(seconds=1)
        scheduler.resume_run(run_id, value)
        await clock.advance(seconds=1)
        done = scheduler.get_run(run_id)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, f"the answer was {seen}")
    here = TaskScheduler(db_path=db, graph=server_graphs.asker)
    try:
        done = await here.resume_run_here(here_id, value, timeout=30)
    finally:
        here.close()
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, f"the answer was {seen}")


def _said(text: str) -> Any:
    return lambda state: {"messages": [AIMessage(text)]}


def _planner(**breakpoints: list[str]) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("plan", _said("planned"))
    graph.add_node("act", _said("acted"))
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "act")
    return graph.compile(**breakpoints)


@pytest.mark.parametrize("breakpoint", ["interrupt_before", "interrupt_after", "subgraph"])
async def test_a_graph_stopped_at_a_static_breakpoint_waits_for_its_answer(
    breakpoint: str,
) -> None:
    """A graph compiled with ``interrupt_before`` / ``interrupt_after`` stops there for a
    human as one that calls ``interrupt()`` does, but ``ainvoke`` returns no
    ``__interrupt__``: the run waits (its question says where the graph stopped), and an
    answer goes on from there; what runs after it waits for that. Before, the run was
    recorded ``succeeded`` with the graph half done, and its follower ran. A subgraph's
    breakpoint stops its parent at the subgraph's node."""
    if breakpoint == "subgraph":  # a parent of the planner, with no breakpoint of its own
        parent = StateGraph(MessagesState)
        parent.add_node("planner", _planner(interrupt_before=["act"]))
        parent.add_edge(START, "planner")
        graph, expected, output = parent.compile(), ["planner"], "x"  # (its state: the input)
    else:
        nodes = ["plan" if breakpoint == "interrupt_after" else "act"]
        graph, expected, output = _planner(**{breakpoint: nodes}), ["act"], "planned"
    async with clocked_scheduler(graph=graph) as (scheduler, clock):
        scheduler.add_tasks(
            [
                TaskDefinition(id="plan", run_at="2099-01-01T00:00:00Z", prompt="x"),
                TaskDefinition(id="next", after="plan", prompt="y", waiting_timeout_seconds=1),
            ]
        )
        run_id = scheduler.run_task_now("plan")
        await clock.advance(seconds=1)
        run = scheduler.get_run(run_id)
        assert (run.status, run.output) == (RunStatus.WAITING, output)
        [asked] = run.interrupts
        assert asked["value"] == {"breakpoint": expected}
        assert re.fullmatch(r"[0-9a-f]{32}", asked["id"])  # (it was None: no answer by id)
        assert scheduler.list_runs("next") == []
        with pytest.raises(AnswerMismatchError, match="did not ask"):
            scheduler.resume_run(run_id, {"0" * 32: "go on"})
        scheduler.resume_run(run_id, {asked["id"]: "go on"})  # by id, as an interrupt's
        await clock.advance(seconds=1)
        done = scheduler.get_run(run_id)
        [follower] = scheduler.list_runs("next")
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "acted")
    assert follower.upstream is not None and follower.upstream["plan"]["status"] == "succeeded"


async def test_an_answer_to_a_breakpoint_is_not_applied_once_another_run_used_the_thread() -> None:
    """A static breakpoint's question has an id (its checkpoint's): when another run used
    the thread after the run stopped there, the answer is not applied (``AnswerNotApplied``)
    as for an ``interrupt()``'s question; before, with no id, it resumed the other run's
    state."""
    graph = _planner(interrupt_before=["act"])
    async with clocked_scheduler(graph=graph) as (scheduler, clock):
        for task_id in ("first", "second"):
            scheduler.add_task(
                TaskDefinition(
                    id=task_id, run_at="2099-01-01T00:00:00Z", prompt="x", thread_id="shared"
                )
            )
        first = scheduler.run_task_now("first")
        await clock.advance(seconds=1)
        second = scheduler.run_task_now("second")
        await clock.advance(seconds=1)
        [asked] = scheduler.get_run(first).interrupts
        [other] = scheduler.get_run(second).interrupts
        assert scheduler.get_run(second).status is RunStatus.WAITING
        assert asked["id"] != other["id"]
        scheduler.resume_run(first, "go on")
        await clock.advance(seconds=1)
        ended = scheduler.get_run(first)
        assert (ended.status, ended.error_type) == (RunStatus.CANCELLED, "AnswerNotApplied")
        scheduler.resume_run(second, {other["id"]: "go on"})
        await clock.advance(seconds=1)
        done = scheduler.get_run(second)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "acted")


async def test_a_run_queued_before_its_task_was_removed_never_runs_a_task_added_again(
    tmp_path: object, make_scheduler: SchedulerFactory
) -> None:
    """``run x``, ``remove x``, ``add x`` (another prompt) with no scheduler running: at the
    next start the old run is cancelled, not run with the new definition."""
    db = f"{tmp_path}/s.db"
    cli = TaskScheduler(db_path=db, graph=server_graphs.asker)
    try:
        cli.add_task(TaskDefinition(id="x", interval_seconds=3600, prompt="old"))
        old = cli.run_task_now("x")
        cli.remove_task("x")
        assert cli.get_run(old).status is RunStatus.CANCELLED  # in the removal itself
        cli.add_task(TaskDefinition(id="x", interval_seconds=3600, prompt="new"))
    finally:
        cli.close()
    scheduler = make_scheduler(db="s.db")
    scheduler.start()
    await asyncio.sleep(1.0)
    assert [(r.id, r.status) for r in scheduler.list_runs("x")] == [(old, RunStatus.CANCELLED)]


def _two_questions_on_one_thread(scheduler: TaskScheduler) -> None:
    for task_id, at in (("first", "00:00:01"), ("second", "00:00:02")):
        scheduler.add_task(
            TaskDefinition(
                id=task_id, run_at=f"2030-01-01T{at}Z", prompt=task_id, thread_id="shared"
            )
        )


async def test_an_answer_is_not_applied_to_the_question_another_run_asked_since() -> None:
    """Two tasks on one thread: the second run's question replaces the first's in the
    thread. LangGraph resumes whatever the thread waits at, so the first run's answer
    would have answered the second question ("yes" to "approve second?"). It ends the
    first run ``cancelled``, not applied; the second still waits for its own answer."""
    async with clocked_scheduler(graph=server_graphs.asker) as (scheduler, clock):
        _two_questions_on_one_thread(scheduler)
        await clock.advance(seconds=3)
        [first] = scheduler.list_runs("first")
        [second] = scheduler.list_runs("second")
        assert first.status is second.status is RunStatus.WAITING
        scheduler.resume_run(first.id, "yes")
        await clock.advance(seconds=1)
        ended = scheduler.get_run(first.id)
        assert (ended.status, ended.error_type) == (RunStatus.CANCELLED, "AnswerNotApplied")
        assert "now waits at another question" in (ended.error_message or "")
        assert scheduler.get_run(second.id).status is RunStatus.WAITING
        scheduler.resume_run(second.id, "no")
        await clock.advance(seconds=1)
        done = scheduler.get_run(second.id)
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was no")


async def test_an_answer_after_another_run_finished_the_thread_is_not_applied(
    tmp_path: object,
) -> None:
    """The same after a restart (the question read back from the run's record), once the
    other run has been answered and finished: the thread waits at nothing."""
    db = f"{tmp_path}/s.db"
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        _two_questions_on_one_thread(scheduler)
        await clock.advance(seconds=3)
        [first] = scheduler.list_runs("first")
        [second] = scheduler.list_runs("second")
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.resume_run(second.id, "no")
        await clock.advance(seconds=1)
        assert scheduler.get_run(second.id).status is RunStatus.SUCCEEDED
        scheduler.resume_run(first.id, "yes")
        await clock.advance(seconds=1)
        ended = scheduler.get_run(first.id)
        assert (ended.status, ended.error_type) == (RunStatus.CANCELLED, "AnswerNotApplied")
        assert "no longer waits at its question" in (ended.error_message or "")
        assert scheduler.get_run(second.id).output == "the answer was no"


class _Branches(MessagesState, total=False):
    got: Annotated[list[str], operator.add]


def _branch(name: str) -> Any:
    def ask(state: _Branches) -> dict[str, Any]:
        return {"got": [f"{name}={interrupt(f'{name}?')}"]}

    return ask


_branches = StateGraph(_Branches)
for _name in ("a", "b"):
    _branches.add_node(_name, _branch(_name))
    _branches.add_edge(START, _name)
two_asker = _branches.compile()


async def test_a_run_waiting_at_two_questions_takes_answers_by_question_id() -> None:
    """Two branches each call ``interrupt()``: one value cannot answer both (LangGraph
    failed the run with it, the answer accepted and lost); it is refused with the ids,
    nothing written, and answers by id go on, some now and the rest later."""
    async with clocked_scheduler(graph=two_asker) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", run_at="2030-01-01T00:00:01Z", prompt="x"))
        await clock.advance(seconds=2)
        [run] = scheduler.list_runs("ask")
        assert run.status is RunStatus.WAITING
        first, second = (str(q["id"]) for q in run.interrupts or [])
        with pytest.raises(ValueError, match="one value cannot answer them all"):
            scheduler.resume_run(run.id, "yes")
        with pytest.raises(ValueError, match="did not ask"):
            scheduler.resume_run(run.id, {first: "yes", "0" * 32: "no"})
        assert not scheduler.get_run(run.id).answered
        scheduler.resume_run(run.id, {first: "yes"})
        await clock.advance(seconds=1)
        again = scheduler.get_run(run.id)
        assert again.status is RunStatus.WAITING
        assert [q["id"] for q in again.interrupts or []] == [second]
        scheduler.resume_run(run.id, {second: "no"})
        await clock.advance(seconds=1)
        done = scheduler.get_run(run.id)
        assert done.status is RunStatus.SUCCEEDED, done.error_message


async def test_pruning_the_history_keeps_a_run_that_waits_for_its_answer() -> None:
    """A run waits (no waiting timeout: for ever) while its task's next occurrences are
    recorded ``skipped``: pruning by count or by age deleted the waiting run's record, so
    its answer was refused ("no run with id") and its task skipped until a restart."""
    async with clocked_scheduler(
        graph=server_graphs.asker, history_max_runs=3, history_max_age_days=0.001
    ) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="ask", interval_seconds=60, prompt="x"))
        await clock.advance(seconds=61)
        [run] = scheduler.list_runs("ask")
        assert run.status is RunStatus.WAITING
        await clock.advance(seconds=600)
        assert scheduler.prune_history() > 0
        assert scheduler.get_run(run.id).status is RunStatus.WAITING
        scheduler.resume_run(run.id, "yes")
        await clock.advance(seconds=1)
        done = scheduler.get_run(run.id)
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was yes")


@pytest.mark.slow
def test_kill_9_right_after_a_waiting_timeout_still_runs_the_fallback(tmp_path: Path) -> None:
    """The timeout that ends a waiting run is an upstream's final outcome like any other:
    the fallback after it is queued in the same transaction, so a kill -9 just after the
    commit loses nothing, and the restart runs the fallback once."""
    from tests.test_reliability import Child, child, rows, wait_until

    db = tmp_path / "scheduler.db"
    calls = tmp_path / "calls.log"
    record = {"metadata": {"log": str(calls)}}
    ask = {"id": "ask", "run_at": datetime.now(UTC).isoformat(), "waiting_timeout_seconds": 0.5}
    alert = {
        "id": "alert",
        "after": {"tasks": ["ask"], "on": "failed"},
        "prompt": "record",
        **record,
    }
    child(db, "add", json.dumps([{**ask, "prompt": "ask-record-sleep:0", **record}, alert]))
    dying = Child(db, env={"TEST_KILL_AFTER_WAITING_TIMEOUT": "1"})
    with contextlib.suppress(subprocess.TimeoutExpired):
        dying.process.wait(timeout=60)
    log = dying.kill()  # (dead by its own hand: this only reads what it wrote)
    assert dying.process.returncode == -signal.SIGKILL, log
    [asked] = rows(db, "SELECT * FROM scheduler_runs WHERE task_id='ask'")
    assert (asked["status"], asked["error_type"]) == ("timed_out", "WaitingTimeout")
    restarted = Child(db, seconds=60)
    try:
        restarted.wait_for("active")
        wait_until(calls.exists, timeout=20, message="the fallback ran")
    finally:
        restarted.stop()
    [fallback] = rows(db, "SELECT * FROM scheduler_runs WHERE task_id='alert'")
    assert fallback["status"] == "succeeded"
    assert json.loads(fallback["upstream"])["ask"]["run_id"] == asked["id"]
    assert [line.split()[0] for line in calls.read_text().splitlines()] == [fallback["id"]]


@pytest.mark.slow
def test_the_cli_cancels_a_run_waiting_in_another_process_or_in_none(tmp_path: Path) -> None:
    """``python -m scheduler cancel RUN`` from another process: a run waiting for an answer
    in a running service ends ``cancelled`` there at its next poll, followed as any
    cancelled run (``on: finished``). Before, the request reached only running runs: the
    CLI's cancel answered False and the run kept waiting. With no scheduler running, the
    request is recorded: an answer is refused meanwhile, and the next start ends it
    ``cancelled``."""
    from tests.test_cli import Cli
    from tests.test_reliability import Child, child, rows, wait_until

    db = tmp_path / "scheduler.db"
    calls = tmp_path / "calls.log"
    record = {"metadata": {"log": str(calls)}}
    now = datetime.now(UTC).isoformat()
    asks = [{"id": i, "run_at": now, "prompt": "ask-record-sleep:0", **record} for i in "ab"]
    then = {"id": "then", "after": {"tasks": ["a"], "on": "finished"}, "prompt": "record"}
    child(db, "add", json.dumps([*asks, {**then, **record}]))
    cli = Cli(tmp_path)

    def run_of(task: str, status: str) -> list[dict[str, Any]]:
        query = "SELECT * FROM scheduler_runs WHERE task_id = ? AND status = ?"
        return rows(db, query, task, status)

    service = Child(db)
    try:
        service.wait_for("active")
        [a] = wait_until(lambda: run_of("a", "waiting"), message="a waiting")
        [b] = wait_until(lambda: run_of("b", "waiting"), message="b waiting")
        assert cli.json("cancel", a["id"])["cancelling"] is True
        [ended] = wait_until(lambda: run_of("a", "cancelled"), message="a cancelled")
        assert ended["error_type"] == "Cancelled"
        [follower] = wait_until(lambda: run_of("then", "succeeded"), message="then ran")
        assert json.loads(follower["upstream"])["a"]["status"] == "cancelled"
        assert "is cancelled" in cli.fails("cancel", a["id"])
    finally:
        service.stop()
    assert run_of("b", "waiting")  # held by no process now
    said = cli("cancel", b["id"]).stdout
    assert "ends cancelled when one starts" in said
    assert "asked to cancel" in cli.fails("answer", b["id"], '"yes"')
    assert run_of("b", "waiting")
    restarted = Child(db)
    try:
        restarted.wait_for("active")
        [ended] = wait_until(lambda: run_of("b", "cancelled"), message="b cancelled at start")
    finally:
        restarted.stop()
    assert ended["answer"] is None and not calls.read_text().count(b["id"])


async def test_an_answer_that_cannot_be_read_fails_the_run_as_any_failure(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """A stored answer that is not JSON (a row written by hand) cannot resume the run: it
    ends ``failed`` (BadAnswer), and that is a failure like any other: the fallback after
    it runs, and its failure callback is called."""
    callbacks.failures.clear()
    ask = TaskDefinition(
        id="ask",
        interval_seconds=3600,
        prompt="x",
        on_failure_callback="tests.callbacks:on_failure",
    )
    alert = TaskDefinition(id="alert", after={"tasks": ["ask"], "on": "failed"}, prompt="x")
    first = make_scheduler(graph=server_graphs.asker)
    first.add_tasks([ask, alert])
    first.start()
    run_id = first.run_task_now("ask")
    assert (await first.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
    await first.stop()
    with sqlite3.connect(tmp_path / "scheduler.db") as db:
        db.execute("UPDATE scheduler_runs SET answer = '{\"broken' WHERE id = ?", (run_id,))
    db.close()
    second = make_scheduler(graph=server_graphs.asker)
    second.start()
    [fallback] = await eventually(lambda: second.list_runs("alert"), message="the fallback")
    assert fallback.upstream is not None and fallback.upstream["ask"]["status"] == "failed"
    failed = second.get_run(run_id)
    assert (failed.status, failed.error_type) == (RunStatus.FAILED, "BadAnswer")
    await eventually(lambda: [r.id for _, r in callbacks.failures] == [run_id])


@pytest.mark.parametrize("restart", [False, True], ids=["while it runs", "across a restart"])
async def test_a_waiting_run_takes_an_edit_of_its_task_as_a_restart_reads_it(
    tmp_path: Path, restart: bool
) -> None:
    """Two runs wait for answers; their tasks are edited. Whether the scheduler restarts in
    between or not, each run takes the edit as a restart reads it: a waiting timeout added
    counts from when it began waiting (it times out, and calls the failure callback added),
    and the answer resumes the task as edited (its result callback added is called). The
    running scheduler kept the definitions the runs started with (no timeout: it waited
    for ever), while a restart read the edits."""
    db = tmp_path / "s.db"
    callbacks.failures.clear()
    callbacks.received.clear()
    one_time = {"run_at": "2030-01-01T00:00:01Z", "prompt": "x"}
    edits = {
        "slow": {
            "waiting_timeout_seconds": 60,
            "on_failure_callback": "tests.callbacks:on_failure",
        },
        "answered": {"result_callback": "tests.callbacks:collect"},
    }
    async with clocked_scheduler(graph=server_graphs.asker, db_path=db) as (scheduler, clock):
        scheduler.add_tasks(TaskDefinition(id=task_id, **one_time) for task_id in edits)
        await clock.advance(seconds=2)
        runs = {run.task_id: run for run in scheduler.list_runs(status="waiting")}
        assert runs.keys() == edits.keys()
        for task_id, edit in edits.items():
            scheduler.edit_task(task_id, lambda task, edit=edit: task.model_copy(update=edit))
        if not restart:
            scheduler.resume_run(runs["answered"].id, "yes")
            await clock.advance(seconds=120)
            ended = {task_id: scheduler.get_run(run.id) for task_id, run in runs.items()}
    if restart:
        later = "2030-01-01T00:00:02Z"  # (when the first stopped)
        async with clocked_scheduler(graph=server_graphs.asker, db_path=db, start=later) as (
            scheduler,
            clock,
        ):
            scheduler.resume_run(runs["answered"].id, "yes")
            await clock.advance(seconds=120)
            ended = {task_id: scheduler.get_run(run.id) for task_id, run in runs.items()}
    slow, answered = ended["slow"], ended["answered"]
    assert (slow.status, slow.error_type) == (RunStatus.TIMED_OUT, "WaitingTimeout")
    assert slow.finished_at is not None and slow.waiting_since is not None
    assert (slow.finished_at - slow.waiting_since).total_seconds() == pytest.approx(60, abs=1)
    assert [(task_id, run.id) for task_id, run in callbacks.failures] == [("slow", slow.id)]
    assert (answered.status, answered.output) == (RunStatus.SUCCEEDED, "the answer was yes")
    assert [task_id for task_id, _ in callbacks.received] == ["answered"]


@pytest.mark.parametrize("added_again", ["after-the-poll", "before-the-poll"])
async def test_a_waiting_run_of_a_task_removed_elsewhere_is_let_go_at_the_next_poll(
    make_scheduler: SchedulerFactory, added_again: str
) -> None:
    """Another process removes the task (its waiting run ends ``cancelled`` there); the
    active one lets go of the run at its next poll, told as any end, so a task added again
    under the id runs (before, the run was held until its waiting timeout: with none, for
    ever, and it counted as in flight: every occurrence of the new task was skipped). The
    same when the task is added again before that poll (a script's ``remove`` then
    ``add``): the task is there, but the run its removal ended is let go of all the same."""
    active = make_scheduler(graph=server_graphs.asker, poll_interval_seconds=0.1)
    active.add_task(TaskDefinition(id="ask", interval_seconds=3600, prompt="x"))
    heard: list[tuple[str, str, RunStatus]] = []
    active.subscribe(lambda event: heard.append((event.kind, event.run.id, event.run.status)))
    active.start()
    run_id = active.run_task_now("ask")
    assert (await active.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
    elsewhere = make_scheduler(graph=server_graphs.asker)  # another process's API
    elsewhere.remove_task("ask")
    if added_again == "after-the-poll":
        await eventually(lambda: ("finished", run_id, RunStatus.CANCELLED) in heard)
    soon = datetime.fromtimestamp(time.time() + 0.5, UTC)  # its one occurrence
    elsewhere.add_task(TaskDefinition(id="ask", run_at=soon, prompt="x"))
    await eventually(lambda: ("finished", run_id, RunStatus.CANCELLED) in heard)
    [again] = await eventually(lambda: active.list_runs("ask", status="waiting"))
    assert again.id != run_id
    assert active.list_runs("ask", status="skipped") == []


def _times(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.id, run.status, run.queued_at, run.started_at, run.finished_at, run.waiting_since,
        run.thread_id, run.error_type, run.interrupts,
    )  # fmt: skip


async def test_a_waiting_runs_events_and_callbacks_carry_its_record_as_stored(
    make_scheduler: SchedulerFactory,
) -> None:
    """The ``waiting`` event and ``on_waiting_callback`` get the record as stored then (its
    start, no end yet, ``waiting_since``); the end by its waiting timeout, its ``finished``
    event and ``on_failure_callback``, the record as stored then. Before: the moment it
    stopped to wait as its start and end (a webhook showed a run that took no time)."""
    callbacks.failures.clear()
    callbacks.waited.clear()
    active = make_scheduler(graph=server_graphs.asker)
    active.add_task(
        TaskDefinition(
            id="ask",
            interval_seconds=3600,
            prompt="x",
            waiting_timeout_seconds=0.6,
            on_failure_callback="tests.callbacks:on_failure",
            on_waiting_callback="tests.callbacks:on_waiting",
        )
    )
    heard: list[tuple[str, RunRecord]] = []
    active.subscribe(lambda event: heard.append((event.kind, event.run)))
    active.start()
    run_id = active.run_task_now("ask")
    assert (await active.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
    waiting = active.get_run(run_id)
    assert waiting.started_at is not None and waiting.finished_at is None
    [(_, waited)] = await eventually(lambda: callbacks.waited)
    [told] = [run for kind, run in heard if kind == "waiting"]
    assert _times(told) == _times(waited) == _times(waiting)
    await eventually(lambda: callbacks.failures)
    ended = active.get_run(run_id)
    assert ended.status is RunStatus.TIMED_OUT and ended.started_at == waiting.started_at
    [(_, failed)] = callbacks.failures
    [told] = [run for kind, run in heard if kind == "finished"]
    assert _times(told) == _times(failed) == _times(ended)


async def test_a_waiting_run_ended_elsewhere_is_told_as_that_process_recorded_it(
    make_scheduler: SchedulerFactory,
) -> None:
    """Another process removes the task (the run ends ``cancelled`` there); this one lets
    go of it at its next poll, and its listeners get the record that process wrote (before:
    no start, and this process's time as its end)."""
    active = make_scheduler(graph=server_graphs.asker, poll_interval_seconds=0.1)
    active.add_task(TaskDefinition(id="ask", interval_seconds=3600, prompt="x"))
    heard: list[tuple[str, RunRecord]] = []
    active.subscribe(lambda event: heard.append((event.kind, event.run)))
    active.start()
    run_id = active.run_task_now("ask")
    assert (await active.wait_for_run(run_id, timeout=10)).status is RunStatus.WAITING
    elsewhere = make_scheduler(graph=server_graphs.asker)  # another process's API
    elsewhere.remove_task("ask")
    [told] = await eventually(lambda: [run for kind, run in heard if kind == "finished"])
    stored = elsewhere.get_run(run_id)
    assert stored.status is RunStatus.CANCELLED and stored.started_at is not None
    assert _times(told) == _times(stored)
