"""A task without a thread runs on a fresh thread each time; the checkpoints of that
thread go when the run's record is pruned, and no other thread's do (a real compiled graph
with the checkpointer the scheduler injects, on a real SQLite file)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduler import TaskDefinition, TaskScheduler
from scheduler.checkpoint import SqliteCheckpointer
from scheduler.fresh_threads import fresh_thread
from scheduler.settings import sqlite_url
from tests import prompt_graphs
from tests.conftest import make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def on_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Callable[..., TaskScheduler], str]]:
    """A scheduler factory and its database's URL: a SQLite file, or a PostgreSQL schema."""
    url = (
        sqlite_url(tmp_path / "scheduler.db")
        if request.param == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    made: list[TaskScheduler] = []

    def make(**settings: Any) -> TaskScheduler:
        scheduler = TaskScheduler(
            database_url=url, graph=prompt_graphs.graph, settings=make_settings(**settings)
        )
        made.append(scheduler)
        return scheduler

    yield make, url
    for scheduler in made:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


def threads_in(url: str) -> Callable[[], set[str]]:
    engine = create_engine(url, poolclass=NullPool)

    def read() -> set[str]:
        with engine.connect() as conn:
            query = text("SELECT DISTINCT thread_id FROM checkpoints")
            return {row[0] for row in conn.execute(query)}

    return read


async def test_pruned_runs_take_their_fresh_threads_checkpoints_along(
    on_database: tuple[Callable[..., TaskScheduler], str],
) -> None:
    make, url = on_database
    checkpointed = threads_in(url)
    scheduler = make(history_max_runs=2)
    scheduler.start()
    named = str(uuid.uuid4()).upper()  # a thread the user names, UUID-like as fresh ones are
    scheduler.add_task(TaskDefinition(id="fresh", interval_seconds=3600, prompt="p"))
    scheduler.add_task(
        TaskDefinition(id="named", interval_seconds=3600, prompt="p", thread_id=named)
    )
    fresh = [
        await scheduler.wait_for_run(scheduler.run_task_now("fresh"), timeout=10) for _ in range(5)
    ]
    for _ in range(4):
        await scheduler.wait_for_run(scheduler.run_task_now("named"), timeout=10)
    # what was checkpointed: one fresh thread per run, named after the run, and the named one
    threads = [run.thread_id for run in fresh]
    assert threads == [fresh_thread(run.id) for run in fresh]
    assert len(set(threads)) == 5
    assert {*threads, named} <= checkpointed()

    assert scheduler.prune_history() == 3 + 2

    after = checkpointed()
    assert not set(threads[:3]) & after  # the pruned runs' own threads are gone
    assert set(threads[3:]) <= after  # the kept records' threads stay
    assert named in after  # a thread a task names stays, with none of its records pruned

    # a thread given to the task later, that once was a fresh one, is not the run's own:
    scheduler.add_task(
        TaskDefinition(id="adopted", interval_seconds=3600, prompt="p", thread_id=threads[4])
    )
    for _ in range(3):
        await scheduler.wait_for_run(scheduler.run_task_now("adopted"), timeout=10)
    scheduler.prune_history()
    assert threads[4] in checkpointed()


async def test_a_fresh_thread_a_task_adopted_stays_when_its_first_run_is_pruned(
    on_database: tuple[Callable[..., TaskScheduler], str],
) -> None:
    # an agent's follow-up (schedule_task from a run of a thread-less task) names the run's
    # fresh thread, as does a cron made with crons.create_for_thread on it: the conversation
    # goes on there after the run that began it is pruned
    make, url = on_database
    checkpointed = threads_in(url)
    scheduler = make(history_max_runs=1)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="fresh", interval_seconds=3600, prompt="p"))
    first = await scheduler.wait_for_run(scheduler.run_task_now("fresh"), timeout=10)
    assert first.thread_id == fresh_thread(first.id)
    scheduler.add_task(
        TaskDefinition(id="follow-up", interval_seconds=3600, prompt="p", thread_id=first.thread_id)
    )
    await scheduler.wait_for_run(scheduler.run_task_now("follow-up"), timeout=10)
    await scheduler.wait_for_run(scheduler.run_task_now("fresh"), timeout=10)

    assert scheduler.prune_history() == 1  # the first run's record
    assert first.thread_id in checkpointed()  # the follow-up's conversation is kept


async def test_checkpoints_that_could_not_be_deleted_are_deleted_at_the_next_prune(
    make_scheduler: Callable[..., TaskScheduler], tmp_path: Path
) -> None:
    # the graph's own checkpointer, on a file another connection holds locked while the
    # first prune deletes: the records of the runs whose checkpoints stay are kept for the
    # next prune (deleted first, the checkpoints would stay for ever)
    path = tmp_path / "checkpoints.db"
    saver = SqliteCheckpointer(path)
    saver.conn.execute("PRAGMA busy_timeout = 200")
    graph = prompt_graphs.build(saver)
    scheduler = make_scheduler(graph=graph, history_max_runs=1)
    scheduler._background_prune = False  # (as on a test clock) pruned when the test says
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="fresh", interval_seconds=3600, prompt="p"))
    runs = [
        await scheduler.wait_for_run(scheduler.run_task_now("fresh"), timeout=10) for _ in range(3)
    ]
    checkpointed = threads_in(sqlite_url(path))
    assert {run.thread_id for run in runs} <= checkpointed()

    locker = sqlite3.connect(str(path), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        assert scheduler.prune_history() == 0  # nothing could go: the records stay
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert len(scheduler.list_runs("fresh", limit=None)) == 3
    assert scheduler.prune_history() == 2
    assert checkpointed() == {runs[2].thread_id}


async def test_stop_waits_for_a_background_prune_which_stops_between_threads(
    make_scheduler: Callable[..., TaskScheduler],
) -> None:
    # the background prune deletes checkpoints through the checkpointer close() closes: a
    # stop() that did not wait for it left it to use a closed connection (or cut off between
    # a thread's checkpoints and its record); cut short, the next prune does the rest
    scheduler = make_scheduler(history_max_runs=1)
    scheduler._background_prune = False  # (the runs first)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="fresh", interval_seconds=3600, prompt="p"))
    runs = [
        await scheduler.wait_for_run(scheduler.run_task_now("fresh"), timeout=10) for _ in range(4)
    ]
    await scheduler.stop(grace_seconds=0)
    saver = scheduler.graph().checkpointer  # the SqliteCheckpointer injected on the file
    deleting, release = threading.Event(), threading.Event()
    calls: list[tuple[str, bool]] = []
    closed = False
    original = saver.delete_thread

    def delete_thread(thread_id: str) -> None:
        calls.append((thread_id, closed))
        deleting.set()
        release.wait(10)
        original(thread_id)

    saver.delete_thread = delete_thread
    scheduler._background_prune = True
    scheduler.start()  # its first poll prunes, in the background
    try:
        assert await asyncio.to_thread(deleting.wait, 10)
        stopping = asyncio.create_task(scheduler.stop(grace_seconds=0))
        done, _ = await asyncio.wait({stopping}, timeout=0.5)
        assert not done  # the prune is deleting a thread's checkpoints: stop() waits
    finally:
        release.set()
    await stopping
    scheduler.close()
    closed = True
    assert scheduler._persistence is None  # nothing reopened the graph's connections
    [(first, during_close)] = calls  # one thread deleted, before close; then it stopped
    assert not during_close
    kept = {run.thread_id for run in scheduler.list_runs("fresh", limit=None)}
    assert first not in kept and len(kept) == 3  # its record went with its checkpoints

    again = make_scheduler(history_max_runs=1)  # the next prune does the rest
    assert again.prune_history() == 2
    checkpointed = threads_in(again.store.url)
    assert {run.thread_id for run in again.list_runs("fresh", limit=None)} == {runs[3].thread_id}
    assert checkpointed() == {runs[3].thread_id}


def test_a_fresh_thread_is_the_uuid5_of_its_run_id() -> None:
    """Made without ``uuid.UUID``: the same text, for run ids and any other text."""
    from scheduler.fresh_threads import _NAMESPACE
    from scheduler.pending import new_run_id

    rng = random.Random(5)
    names = [new_run_id() for _ in range(2000)]
    names += ["", "é", "\x00", "😀" * 3] + [
        "".join(rng.choices("ab\u00e9\U0001f600", k=rng.randrange(40))) for _ in range(2000)
    ]
    for name in names:
        assert fresh_thread(name) == str(uuid.uuid5(_NAMESPACE, name))
