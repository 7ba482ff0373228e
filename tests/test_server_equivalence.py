"""A scheduled run behaves like a run on the LangGraph server: the context comes from the
graph's ``context_schema`` defaults, a graph without a checkpointer or a store gets them
(on the scheduler's own database, SQLite and PostgreSQL), ``langgraph.json``'s ``env`` and
``store`` are honoured, and ``interrupt()`` makes a run ``waiting`` until it is answered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler import RunStatus, TaskDefinition, TaskScheduler
from scheduler.exceptions import RunNotWaitingError
from scheduler.storage.schema import SCHEMA_VERSION
from tests import server_graphs
from tests.conftest import eventually, make_settings
from tests.test_cli import Cli

pytestmark = pytest.mark.slow

Factory = Callable[..., TaskScheduler]


@pytest.fixture(params=["sqlite", "postgresql"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Schedulers on one database of each kind (a SQLite file, a PostgreSQL schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    made: list[TaskScheduler] = []

    def factory(graph: Any, **overrides: Any) -> TaskScheduler:
        scheduler = TaskScheduler(
            database_url=url, graph=graph, settings=make_settings(**overrides)
        )
        made.append(scheduler)
        return scheduler

    yield factory
    for scheduler in made:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def run_once(scheduler: TaskScheduler, task: TaskDefinition) -> Any:
    scheduler.add_task(task)
    return await scheduler.wait_for_run(scheduler.run_task_now(task.id), timeout=30)


async def test_a_defaulted_context_schema_graph_runs_with_no_task_context(make: Factory) -> None:
    scheduler = make(server_graphs.context_agent)
    scheduler.start()
    plain = await run_once(
        scheduler, TaskDefinition(id="react", interval_seconds=3600, prompt="hi")
    )
    assert plain.status is RunStatus.SUCCEEDED, plain.error_message
    assert plain.output == (
        "echo-model says hello to default-user (prompt: You are a helpful assistant.)"
    )
    partial = TaskDefinition(
        id="alice", interval_seconds=3600, prompt="hi", context={"user_id": "alice"}
    )
    merged = await run_once(scheduler, partial)
    assert merged.output is not None and merged.output.startswith("echo-model says hello to alice")


async def test_a_store_using_graph_reads_what_an_earlier_firing_wrote(make: Factory) -> None:
    scheduler = make(server_graphs.memory_agent)
    scheduler.start()
    task = TaskDefinition(id="memo", interval_seconds=3600, prompt="buy milk")
    first = await run_once(scheduler, task)
    assert first.output == "remembered 0 before: nothing", first.error_message
    await scheduler.stop()
    scheduler.close()
    again = make(server_graphs.memory_agent)  # a new process, as it were: the store persists
    again.start()
    second = await again.wait_for_run(again.run_task_now("memo"), timeout=30)
    assert second.output == "remembered 1 before: buy milk", second.error_message


async def test_a_graph_without_a_checkpointer_keeps_its_thread_across_firings(
    make: Factory,
) -> None:
    scheduler = make(server_graphs.counter)
    scheduler.start()
    task = TaskDefinition(
        id="chat", interval_seconds=3600, prompt="again", thread_id="conversation"
    )
    outputs = [(await run_once(scheduler, task)).output for _ in range(3)]
    assert [o.split(" (")[0] for o in outputs if o] == ["turn 1", "turn 2", "turn 3"]
    fresh = TaskDefinition(id="fresh", interval_seconds=3600, prompt="again")  # a thread a run
    assert [(await run_once(scheduler, fresh)).output for _ in range(2)][-1].startswith("turn 1")


async def test_the_injection_can_be_turned_off(make: Factory) -> None:
    scheduler = make(server_graphs.counter, inject_checkpointer=False, inject_store=False)
    scheduler.start()
    task = TaskDefinition(id="chat", interval_seconds=3600, prompt="again", thread_id="same")
    outputs = [(await run_once(scheduler, task)).output for _ in range(2)]
    assert [o.split(" (")[0] for o in outputs if o] == ["turn 1", "turn 1"]
    await scheduler.stop()  # one active scheduler per database
    memory = make(server_graphs.memory_agent, inject_store=False)
    memory.start()
    failed = await run_once(memory, TaskDefinition(id="m", interval_seconds=3600, prompt="x"))
    assert failed.status is RunStatus.FAILED and "no store" in (failed.error_message or "")


async def test_a_graph_that_brings_its_own_checkpointer_keeps_it(make: Factory) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    own = server_graphs._counter.compile(checkpointer=InMemorySaver())
    scheduler = make(own)
    assert scheduler.graph().checkpointer is own.checkpointer


# -- human in the loop -------------------------------------------------------------------------


async def test_an_interrupt_makes_the_run_wait_and_an_answer_resumes_it(make: Factory) -> None:
    scheduler = make(server_graphs.asker)
    scheduler.start()
    task = TaskDefinition(id="approve", interval_seconds=3600, prompt="the deploy")
    waiting = await run_once(scheduler, task)
    assert waiting.status is RunStatus.WAITING
    assert waiting.interrupts is not None
    assert [i["value"] for i in waiting.interrupts] == [{"question": "approve the deploy?"}]
    assert waiting.thread_id and waiting.waiting_since is not None
    scheduler.resume_run(waiting.id, "yes, go ahead")
    with pytest.raises(RunNotWaitingError, match=r"answered already|not waiting"):
        scheduler.resume_run(waiting.id, "again")
    done = await eventually(
        lambda: (r := scheduler.get_run(waiting.id)).status.is_final and r, timeout=30
    )
    assert done.status is RunStatus.SUCCEEDED
    assert done.output == "the answer was yes, go ahead"
    assert done.id == waiting.id and done.thread_id == waiting.thread_id  # the same run
    with pytest.raises(RunNotWaitingError, match="not waiting for an answer"):
        scheduler.resume_run(waiting.id, "too late")


async def test_a_waiting_run_survives_a_restart_and_is_resumed_after_it(make: Factory) -> None:
    first = make(server_graphs.asker)
    first.start()
    waiting = await run_once(first, TaskDefinition(id="a", interval_seconds=3600, prompt="x"))
    assert waiting.status is RunStatus.WAITING
    await first.stop()
    first.close()
    second = make(server_graphs.asker)
    second.start()
    assert second.get_run(waiting.id).status is RunStatus.WAITING  # not "interrupted"
    second.resume_run(waiting.id, 42)
    done = await eventually(lambda: (r := second.get_run(waiting.id)).status.is_final and r)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was 42")


async def test_a_waiting_run_counts_as_in_flight_and_times_out(make: Factory) -> None:
    scheduler = make(server_graphs.asker)
    scheduler.add_task(
        TaskDefinition(
            id="ask", interval_seconds=0.3, prompt="x", overlap="skip", waiting_timeout_seconds=1
        )
    )
    scheduler.start()
    await eventually(lambda: scheduler.list_runs("ask", status="skipped"), timeout=10)
    timed_out = await eventually(lambda: scheduler.list_runs("ask", status="timed_out"), timeout=10)
    assert "no answer within 1 s" in (timed_out[0].error_message or "")
    assert not [r for r in scheduler.list_runs("ask", limit=None) if r.status == "succeeded"]


def test_the_cli_answers_a_waiting_run(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["SCHEDULER_GRAPH"] = "tests.server_graphs:asker"
    cli("add", "--id", "ask", "--schedule", "every 5 minutes", "--prompt", "the release")
    waited = cli("run", "ask", "--wait")
    assert "waiting" in waited.stdout and "asks:" in waited.stdout
    [run] = cli.json("runs", "--task", "ask")
    assert run["status"] == "waiting"
    assert run["interrupts"][0]["value"] == {"question": "approve the release?"}
    done = cli("answer", run["id"], json.dumps("ship it"), "--wait")
    assert "succeeded" in done.stdout
    [run] = cli.json("runs", "--task", "ask")
    assert (run["status"], run["output"]) == ("succeeded", "the answer was ship it")
    error = cli.fails("answer", run["id"], '"again"')
    assert "is not waiting for an answer (it is succeeded)" in error
    assert "VALUE: not valid JSON" in cli.fails("answer", run["id"], "{not json")


# -- langgraph.json ----------------------------------------------------------------------------


def write_langgraph_json(directory: Path) -> None:
    (directory / "graph.env").write_text("SERVER_GRAPHS_SECRET=from-the-env-file\n")
    (directory / "langgraph.json").write_text(
        json.dumps(
            {
                "env": "graph.env",
                "store": {
                    "index": {"dims": 26, "embed": "tests.server_graphs:embed"},
                    "ttl": {"default_ttl": 60, "refresh_on_read": True},
                },
            }
        )
    )


@pytest.mark.parametrize("persistent", [True, False])
async def test_langgraph_json_env_and_store_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persistent: bool
) -> None:
    write_langgraph_json(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SERVER_GRAPHS_SECRET", raising=False)
    scheduler = TaskScheduler(
        persistent,
        tmp_path / "scheduler.db",
        graph=server_graphs.counter,
        settings=make_settings(),
    )
    try:
        scheduler.start()
        run = await run_once(scheduler, TaskDefinition(id="c", interval_seconds=3600, prompt="x"))
        assert run.output == "turn 1 (secret from-the-env-file)"
        store = scheduler.graph().store
        await store.aput(("docs",), "fruit", {"text": "apples and bananas"})
        await store.aput(("docs",), "tools", {"text": "hammer, wrench"})
        found = await store.asearch(("docs",), query="banana apple")
        assert {item.key for item in found} == {"fruit", "tools"}
        if not persistent:  # the in-memory store always has the index: semantic order
            assert found[0].key == "fruit"
        else:  # SQLite: TTL honoured; the index only where sqlite3 loads extensions
            assert store.inner.ttl_config == {"default_ttl": 60, "refresh_on_read": True}
    finally:
        await scheduler.stop()
        scheduler.close()
        monkeypatch.delenv("SERVER_GRAPHS_SECRET", raising=False)


def test_rows_of_the_old_schema_are_migrated(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        """
        CREATE TABLE scheduler_meta (key VARCHAR(64) PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO scheduler_meta VALUES ('schema', 1), ('revision', 0);
        CREATE TABLE scheduler_runs (id VARCHAR(32) PRIMARY KEY, task_id VARCHAR(128) NOT NULL,
            scheduled_for FLOAT NOT NULL, queued_at FLOAT NOT NULL, started_at FLOAT,
            finished_at FLOAT, status VARCHAR(16) NOT NULL, attempt INTEGER NOT NULL,
            occurrences INTEGER NOT NULL, "trigger" VARCHAR(16) NOT NULL, not_before FLOAT,
            thread_id VARCHAR(255), error_type VARCHAR(255), error_message TEXT,
            error_traceback TEXT, output TEXT);
        INSERT INTO scheduler_runs (id, task_id, scheduled_for, queued_at, status, attempt,
            occurrences, "trigger") VALUES ('r1', 't', 1800000000, 1800000000, 'succeeded',
            1, 1, 'schedule');
        CREATE TABLE scheduler_tasks (id VARCHAR(128) PRIMARY KEY, definition TEXT NOT NULL,
            format INTEGER NOT NULL, next_run_time FLOAT, paused BOOLEAN NOT NULL,
            anchor FLOAT NOT NULL, source VARCHAR(255) NOT NULL, created_at FLOAT NOT NULL,
            updated_at FLOAT NOT NULL);
        """
    )
    connection.commit()
    connection.close()
    scheduler = TaskScheduler(db_path=db, graph=server_graphs.counter, settings=make_settings())
    try:
        assert scheduler.get_run("r1").status is RunStatus.SUCCEEDED
    finally:
        scheduler.close()
    connection = sqlite3.connect(db)
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(scheduler_runs)")}
        version = connection.execute("SELECT value FROM scheduler_meta WHERE key='schema'")
        assert {"interrupts", "answer", "waiting_since"} <= columns
        assert version.fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(scheduler_tasks)")}
        assert "ix_scheduler_tasks_source" in indexes  # listing by source (agent tools) is indexed
    finally:
        connection.close()


async def test_the_log_and_a_callback_say_a_run_waits_and_for_what(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    from tests import callbacks

    callbacks.waited.clear()
    scheduler = make(server_graphs.asker)
    scheduler.start()
    task = TaskDefinition(
        id="told",
        interval_seconds=3600,
        prompt="the budget",
        on_waiting_callback="tests.callbacks:on_waiting",
    )
    with caplog.at_level("INFO", logger="scheduler.runner"):
        run = await run_once(scheduler, task)
        await eventually(lambda: callbacks.waited, message="on_waiting_callback")
    [(task_id, record)] = callbacks.waited
    assert (task_id, record.id, record.status) == ("told", run.id, RunStatus.WAITING)
    assert record.interrupts and record.interrupts[0]["value"] == {
        "question": "approve the budget?"
    }
    [line] = [r.getMessage() for r in caplog.records if "waiting for an answer" in r.getMessage()]
    assert "approve the budget?" in line and f"python -m scheduler answer {run.id}" in line
