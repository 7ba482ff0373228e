"""One contract suite for every store: a SQLite file, in-memory SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduler.exceptions import StorageError
from scheduler.leader import leader_lock_for
from scheduler.storage import DEFINITION_FORMAT, RunRow, Store, TaskRow
from scheduler.task_scheduler import TaskScheduler
from tests.conftest import eventually, make_settings


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    elif request.param == "sqlite-memory":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("pg_schema_url")
    instance = Store(url)
    instance.setup()
    yield instance
    instance.close()


def task_row(task_id: str, next_run: float | None, **changes: object) -> TaskRow:
    now = time.time()
    row = TaskRow(
        id=task_id,
        definition=f'{{"id": "{task_id}"}}',
        format=DEFINITION_FORMAT,
        next_run_time=next_run,
        paused=False,
        anchor=now,
        source="api",
        created_at=now,
        updated_at=now,
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def run_row(run_id: str, task_id: str, status: str = "queued", queued_at: float = 0.0) -> RunRow:
    return RunRow(
        id=run_id,
        task_id=task_id,
        scheduled_for=queued_at or time.time(),
        queued_at=queued_at or time.time(),
        status=status,
        trigger="schedule",
    )


def test_setup_is_idempotent(store: Store) -> None:
    store.setup()
    if not store.is_memory:
        again = Store(store.url)
        again.setup()
        again.close()
    assert store.revision() == 0


def test_tasks_insert_update_delete_and_revision(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_tasks([task_row("a", 100.0), task_row("b", None, paused=True)])
        tx.bump_revision()
    assert [r.id for r in store.list_tasks()] == ["a", "b"]
    assert store.get_task("b") is not None and store.get_task("b").paused  # type: ignore[union-attr]
    assert store.revision() == 1
    with store.transaction() as tx:
        changed = tx.get_task("a")
        assert changed is not None
        changed.next_run_time = 50.0
        tx.update_tasks([changed])
        assert tx.delete_tasks(["b", "missing"]) == 1
    assert store.get_task("a").next_run_time == 50.0  # type: ignore[union-attr]
    assert store.get_task("b") is None


def test_a_source_filter_keeps_its_letter_case_and_its_sources_under_it(store: Store) -> None:
    """SQLite's ``LIKE`` ignores case: ``remove --source FILE --yes`` removed the tasks of
    ``file:tasks.yaml`` (and ``HTTP`` found ``http:crons``'s, but not ``http``'s)."""
    sources = {"f": "file:tasks.yaml", "h": "http", "c": "http:crons", "p": "50%_x:y", "q": "50"}
    with store.transaction() as tx:
        tx.insert_tasks([task_row(i, None, source=source) for i, source in sources.items()])

    def ids(source: str) -> list[str]:
        return [row.id for row in store.iter_tasks(source=source)]

    assert ids("file") == ["f"]
    assert ids("FILE") == ids("File") == ids("HTTP") == ids("HTTP:CRONS") == []
    assert ids("http") == ["c", "h"]
    assert ids("http:crons") == ["c"]
    assert ids("50%_x") == ["p"]  # (wildcards of LIKE are letters here)
    assert ids("50") == ["q"]
    assert ids("file:tasks") == ids("fil") == []


def test_due_tasks_in_order_with_limit_and_exclusions(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_tasks(
            [task_row(f"t{i}", float(i)) for i in range(1, 6)] + [task_row("later", 99.0)]
        )
    with store.transaction() as tx:
        assert [r.id for r in tx.due_tasks(10.0, limit=3)] == ["t1", "t2", "t3"]
        assert [r.id for r in tx.due_tasks(10.0, limit=10, exclude={"t2", "t4"})] == [
            "t1",
            "t3",
            "t5",
        ]
        tx.set_next_run_times([("t1", 20.0), ("t2", None)])
    assert store.next_run_time() == 3.0
    assert store.next_run_time(exclude={"t3", "t4", "t5"}) == 20.0


def test_runs_insert_update_list_and_stats(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_tasks([task_row("a", None)])
        tx.insert_runs([run_row("r1", "a"), run_row("r2", "a"), run_row("r3", "b")])
    store.update_runs(
        [
            {"id": "r1", "status": "succeeded", "finished_at": 5.0},
            {"id": "r2", "status": "failed", "error_message": "boom"},
        ]
    )
    assert [r.id for r in store.list_runs()] == ["r3", "r2", "r1"]
    assert [r.id for r in store.list_runs(task_id="a", statuses=["failed"])] == ["r2"]
    assert store.get_run("r1").status == "succeeded"  # type: ignore[union-attr]
    stats = store.task_stats()
    assert (stats["a"].run_count, stats["a"].last_status, stats["a"].last_error) == (
        2,
        "failed",
        "boom",
    )
    assert store.count_runs() == {"succeeded": 1, "failed": 1, "queued": 1}
    # whether a run is not final yet, by every way of asking
    assert (stats["a"].open_runs, stats["b"].open_runs) == (False, True)
    assert store.task_stats("b")["b"].open_runs and not store.task_stats("a")["a"].open_runs
    assert {k: v.open_runs for k, v in store.task_stats(["a", "b"]).items()} == {
        "a": False,
        "b": True,
    }


def test_a_nul_character_in_a_runs_text_is_written_as_a_replacement(store: Store) -> None:
    """A graph's output or an error message may hold NUL; PostgreSQL refuses it in a text
    column, and the run log's whole write failed with it, every run's record, at every
    retry. Every store now keeps U+FFFD in its place."""
    with store.transaction() as tx:
        row = run_row("r1", "a")
        row.output = "out\x00put"
        tx.insert_runs([row, run_row("r2", "a")])
        tx.update_runs([{"id": "r2", "status": "failed", "error_message": "bad\x00byte"}])
    assert store.get_run("r1").output == "out\ufffdput"  # type: ignore[union-attr]
    assert store.get_run("r2").error_message == "bad\ufffdbyte"  # type: ignore[union-attr]


def test_hundreds_of_runs_and_next_run_times_written_at_once(store: Store) -> None:
    """Many rows at once take other statements on PostgreSQL (``COPY``, one ``UPDATE`` of
    arrays): every value comes back as written, NUL replaced and None kept."""
    from scheduler.enums import RunStatus

    with store.transaction() as tx:
        tx.insert_tasks([task_row(f"t{i:03}", 1000.0 + i) for i in range(300)])
    runs = [run_row(f"r{i:03}", f"t{i:03}") for i in range(300)]
    runs[7].status = RunStatus.QUEUED  # (an enum, as the dispatcher writes it)
    runs[8].output, runs[8].thread_id, runs[8].attempt = "a\x00b", "th-8", 3
    with store.transaction() as tx:
        tx.insert_runs(runs)
        tx.set_next_run_times([(f"t{i:03}", None if i % 2 else 5000.0 + i) for i in range(300)])
    seven, eight = store.get_run("r007"), store.get_run("r008")
    assert seven is not None and seven.status == "queued"
    assert eight is not None and (eight.output, eight.thread_id, eight.attempt) == (
        "a\ufffdb",
        "th-8",
        3,
    )
    assert store.count_runs() == {"queued": 300}
    with store.transaction() as tx:
        stored = tx.get_tasks([f"t{i:03}" for i in range(300)])
    assert [stored[f"t{i:03}"].next_run_time for i in (0, 1, 2, 299)] == [
        5000.0, None, 5002.0, None
    ]  # fmt: skip


def test_prune_keeps_the_newest_and_unfinished(store: Store) -> None:
    old = time.time() - 10 * 86400
    with store.transaction() as tx:
        tx.insert_runs([run_row(f"r{i}", "a", "succeeded", old + i) for i in range(6)])
        tx.insert_runs([run_row("r9", "a", "queued", old), run_row("r8", "a", "waiting", old)])
    with store.transaction() as tx:
        assert tx.prune_runs(keep_per_task=3, older_than=None)[0] == 3
    assert [r.id for r in store.list_runs(limit=None)] == ["r9", "r8", "r5", "r4", "r3"]
    with store.transaction() as tx:
        assert tx.prune_runs(keep_per_task=0, older_than=time.time() - 86400)[0] == 3
    # queued runs, and runs waiting for an answer, are never pruned
    assert [r.id for r in store.list_runs(limit=None)] == ["r9", "r8"]


def test_a_failed_transaction_changes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_tasks([task_row("a", 1.0)])

    def insert_b_then_a_again() -> None:
        with store.transaction() as tx:
            tx.insert_tasks([task_row("b", 1.0)])
            tx.insert_tasks([task_row("a", 1.0)])  # duplicate key: the whole transaction fails

    with pytest.raises(StorageError):
        insert_b_then_a_again()
    assert [r.id for r in store.list_tasks()] == ["a"]


def test_driver_errors_become_storage_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"directory .* does not exist"):
        Store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}").setup()


# -- PostgreSQL end to end ------------------------------------------------------------------


async def test_postgres_scheduler_fires_and_a_second_one_stands_by(pg_schema_url: str) -> None:
    from scheduler import RunStatus, TaskDefinition
    from tests import prompt_graphs

    first = TaskScheduler(
        database_url=pg_schema_url, graph=prompt_graphs.graph, settings=make_settings()
    )
    second = TaskScheduler(
        database_url=pg_schema_url, graph=prompt_graphs.graph, settings=make_settings()
    )
    try:
        first.start()
        second.start()
        assert first.active and not second.active  # advisory lock: one active per database
        second.add_task(TaskDefinition(id="pg", interval_seconds=0.3, prompt="p"))
        await eventually(lambda: len(first.list_runs("pg", status="succeeded")) >= 3)
        await first.stop()
        await eventually(lambda: second.active, message="the standby takes over")
        count = len(second.list_runs("pg", limit=None))
        await eventually(lambda: len(second.list_runs("pg", limit=None)) > count + 2)
        runs = second.list_runs("pg", limit=None)
        assert len({r.scheduled_for for r in runs}) == len(runs)
        # (a run of a 0.3 s interval still going at its next occurrence, on a loaded machine:
        # that occurrence is skipped by the overlap policy, and recorded so)
        assert {(r.status, r.error_type) for r in runs} <= {
            (RunStatus.SUCCEEDED, None),
            (RunStatus.QUEUED, None),
            (RunStatus.RUNNING, None),
            (RunStatus.SKIPPED, "Overlap"),
        }
    finally:
        await first.stop()
        await second.stop()
        first.close()
        second.close()


async def test_postgres_dropped_connections_do_not_stop_the_scheduler(
    pg_schema_url: str, postgres_url: str
) -> None:
    from scheduler import TaskDefinition
    from tests import prompt_graphs

    # every connection the scheduler opens carries this name, so that only they are dropped:
    # other tests (pytest-xdist workers) use the same database at the same time
    name = f"dropped-{uuid.uuid4().hex[:10]}"
    scheduler = TaskScheduler(
        database_url=f"{pg_schema_url}&application_name={name}",
        graph=prompt_graphs.graph,
        settings=make_settings(),
    )
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        scheduler.start()
        scheduler.add_task(TaskDefinition(id="tick", interval_seconds=0.2, prompt="p"))
        await eventually(lambda: scheduler.list_runs("tick", status="succeeded"))
        with admin.begin() as conn:  # drop every connection of the scheduler
            dropped = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": name},
            ).scalars()
            assert any(dropped), "no connection of the scheduler was found to drop"
        count = len(scheduler.list_runs("tick", limit=None))
        await eventually(
            lambda: len(scheduler.list_runs("tick", limit=None)) > count + 3,
            timeout=20,
            message="firing after the connections were dropped",
        )
    finally:
        await scheduler.stop()
        scheduler.close()
        admin.dispose()


def test_leader_lock_per_store_kind(tmp_path: Path) -> None:
    file_store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    lock, other = leader_lock_for(file_store), leader_lock_for(file_store)
    assert lock.try_acquire()
    assert not other.try_acquire()
    assert "pid" in other.holder()
    lock.release()
    assert other.try_acquire()
    other.release()
    memory = leader_lock_for(Store("sqlite://"))
    assert memory.try_acquire() and memory.is_held()


def test_a_bulk_add_on_postgresql_leaves_the_task_table_analyzed(pg_schema_url: str) -> None:
    """Without statistics PostgreSQL kept planning id lookups on a table it believed empty
    (sequential scans: a second bulk add of 100,000 tasks took minutes instead of seconds)."""
    from scheduler import TaskDefinition

    scheduler = TaskScheduler(database_url=pg_schema_url, settings=make_settings())
    try:
        scheduler.add_tasks(
            [TaskDefinition(id=f"t{i}", interval_seconds=3600, prompt="p") for i in range(10_000)]
        )
        engine = create_engine(pg_schema_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                estimate = conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = 'scheduler_tasks'::regclass")
                ).scalar()
        finally:
            engine.dispose()
        assert estimate is not None and estimate >= 9_000  # -1: never analyzed
        scheduler.add_tasks([TaskDefinition(id="late", interval_seconds=60, prompt="p")])
        assert scheduler.count_tasks() == 10_001
    finally:
        scheduler.close()


def test_a_bump_gives_the_revision_the_transaction_sees(store: Store) -> None:
    for expected in (1, 2):
        with store.transaction() as tx:
            tx.bump_revision()
            assert tx.revision() == expected
    assert store.revision() == 2


def test_writes_go_on_after_a_driver_error_on_the_kept_connection(tmp_path: Path) -> None:
    """A SQLite file's writes share one kept connection; a driver error (here the database
    locked by another process's writer) is a StorageError, and the next write starts on a
    fresh connection."""
    path = tmp_path / "locked.db"
    store = Store(f"sqlite:///{path}", busy_timeout=0.05)
    store.setup()
    with store.transaction() as tx:
        tx.insert_tasks([task_row("a", 1.0)])
    other = create_engine(f"sqlite:///{path}", poolclass=NullPool).connect()
    other.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="locked"), store.transaction() as tx:
            tx.insert_tasks([task_row("b", 1.0)])
    finally:
        other.exec_driver_sql("ROLLBACK")
        other.close()
    with store.transaction() as tx:
        tx.insert_tasks([task_row("c", 1.0)])
        tx.bump_revision()
    assert [r.id for r in store.list_tasks()] == ["a", "c"] and store.revision() == 1
    store.close()


def test_a_transaction_inside_another_on_one_thread_is_refused_and_the_outer_commits(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested.db'}")
    with store.transaction() as tx:
        tx.insert_tasks([task_row("a", 1.0)])
        with pytest.raises(RuntimeError, match="inside another"), store.transaction():
            pass
    assert [r.id for r in store.list_tasks()] == ["a"]
    store.close()
