"""Invariants under stress and faults: bursts, kill -9, unloadable rows, database errors,
several processes on one file, several threads. Real SQLite files, real subprocesses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduler import RunStatus, TaskDefinition, TaskNotFoundError, TaskScheduler, TaskState
from tests.conftest import PYTHON, ROOT, SchedulerFactory, eventually, loop_gaps

pytestmark = pytest.mark.slow


def rows(db: Path, query: str, *args: Any) -> list[dict[str, Any]]:
    connection = sqlite3.connect(db, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in connection.execute(query, args)]
    finally:
        connection.close()


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEDULER_POLL_INTERVAL_SECONDS": "0.1",
        "SCHEDULER_STOP_GRACE_SECONDS": "1",
    }


def child(db: Path | str, *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "tests.child", str(db), *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Child:
    """A ``tests.child serve`` process whose stdout lines can be awaited."""

    def __init__(
        self, db: Path | str, seconds: float = 60, env: dict[str, str] | None = None
    ) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "tests.child", str(db), "serve", str(seconds)],
            cwd=ROOT,
            env={**child_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def wait_for(self, word: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while word not in self.lines:
            if time.monotonic() > deadline or self.process.poll() is not None:
                log = self.kill()
                raise AssertionError(f"no {word!r} from child; lines={self.lines}\n{log}")
            time.sleep(0.05)

    def stop(self) -> str:
        """SIGTERM (a graceful stop), wait, and return what it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self._finish()

    def kill(self) -> str:
        """SIGKILL: no clean-up at all."""
        self.process.kill()
        return self._finish()

    def _finish(self) -> str:
        self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        assert self.process.stdout is not None and self.process.stderr is not None
        log = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return log


def wait_until(check: Any, timeout: float = 30, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


def assert_every_occurrence_once(runs: list[dict[str, Any]], *, interval: float) -> None:
    """Each occurrence of an interval schedule, from the first to the last, is covered by
    exactly one run record. A record covers ``occurrences`` grid points: ending at its
    ``scheduled_for`` (a coalesced run) or starting there (a ``missed`` record)."""
    covered: list[int] = []
    for run in runs:
        n = run["occurrences"]
        start = (
            run["scheduled_for"]
            if run["status"] == "missed"
            else (run["scheduled_for"] - (n - 1) * interval)
        )
        covered.extend(round((start + k * interval) * 1000) for k in range(n))
    counts = Counter(covered)
    twice = [t for t, c in counts.items() if c > 1]
    assert not twice, f"occurrences covered twice: {twice}"
    step = round(interval * 1000)
    grid = list(range(min(covered), max(covered) + 1, step))
    missing = sorted(set(grid) - set(covered))
    assert not missing, f"occurrences without a record: {missing}"


# -- bursts ---------------------------------------------------------------------------------


@pytest.mark.serial  # it loads both cores for a while
async def test_burst_of_2000_one_time_tasks_all_run_none_missed(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(max_concurrent_runs=200)
    scheduler.start()
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    scheduler.add_tasks(
        TaskDefinition(id=f"burst-{i:04}", run_at=at, prompt=f"task {i}") for i in range(2000)
    )
    await eventually(
        lambda: scheduler.count_runs().get(RunStatus.SUCCEEDED, 0) == 2000,
        timeout=120,
        message="2000 succeeded runs",
    )
    await scheduler.wait_idle()
    assert scheduler.count_runs() == {RunStatus.SUCCEEDED: 2000}
    runs = scheduler.list_runs(limit=None)
    assert Counter(r.task_id for r in runs) == {f"burst-{i:04}": 1 for i in range(2000)}
    lateness = max((r.queued_at - r.scheduled_for).total_seconds() for r in runs)
    assert lateness < 10  # generous: the figure that matters is in the benchmark
    assert all(t.state is TaskState.COMPLETED for t in scheduler.list_tasks())


# -- crashes ---------------------------------------------------------------------------------


def test_kill_9_with_runs_in_flight_then_restart(tmp_path: Path) -> None:
    db = tmp_path / "scheduler.db"
    now = datetime.now(UTC)
    child(
        db,
        "add",
        json.dumps(
            [
                {"id": "stuck", "run_at": now.isoformat(), "prompt": "hang"},
                {"id": "hourly", "interval_seconds": 3600, "prompt": "p"},
            ]
        ),
    )
    before = {t["id"]: t for t in json.loads(child(db, "list"))}
    process = Child(db)
    process.wait_for("active")
    wait_until(
        lambda: rows(db, "SELECT * FROM scheduler_runs WHERE status='running'"),
        message="a run in flight",
    )
    process.kill()
    [in_flight] = rows(db, "SELECT * FROM scheduler_runs")
    assert in_flight["status"] == "running"
    restarted = Child(db, seconds=1.5)
    restarted.wait_for("stopped")
    log = restarted.stop()
    [settled] = rows(db, "SELECT * FROM scheduler_runs")
    assert settled["id"] == in_flight["id"]
    assert settled["status"] == "interrupted"
    assert "process ended while this run was in flight" in settled["error_message"]
    assert "1 interrupted" in log
    assert rows(db, "SELECT * FROM scheduler_runs WHERE status IN ('running', 'queued')") == []
    after = {t["id"]: t for t in json.loads(child(db, "list"))}
    assert after["hourly"]["next_run"] == before["hourly"]["next_run"]
    assert after["hourly"]["state"] == "active"
    assert after["stuck"]["state"] == "completed"
    reader = TaskScheduler(db_path=db, graph=object())
    try:  # when it stopped is not known: its finished_at is when the restart found it
        [record] = reader.list_runs("stuck")
        assert record.finished_at is not None and record.duration_seconds is None
    finally:
        reader.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_right_after_the_graph_call_never_runs_a_run_twice(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """20 processes in a row, each killed (SIGKILL, from inside the graph) right after its
    first graph call, with several runs in flight: no run id reaches the graph twice, every
    run that reached it is recorded ``interrupted``, and a task with ``max_retries=1`` gets
    its interrupted attempt retried as a new, recorded attempt."""
    if backend == "sqlite":
        db: Path | str = tmp_path / "scheduler.db"
        url = f"sqlite:///{db}"
    else:
        db = url = request.getfixturevalue("pg_schema_url")
    calls = tmp_path / "calls.log"
    common = {"prompt": "record", "metadata": {"log": str(calls)}, "overlap": "allow"}
    tasks = [
        {"id": "plain-a", "interval_seconds": 0.2, **common},
        {"id": "plain-b", "interval_seconds": 0.3, **common},
        {"id": "retried", "interval_seconds": 0.25, "max_retries": 1, **common},
        {"id": "retried-slow", "interval_seconds": 0.5, "max_retries": 1, **common},
    ]
    child(db, "add", json.dumps(tasks))
    killed_pids = set()
    for _ in range(20):
        process = Child(db, env={"TEST_KILL_AFTER_RECORD": "1"})
        code = process.process.wait(timeout=60)
        log = process._finish()
        assert code == -signal.SIGKILL, log
        killed_pids.add(process.process.pid)
    final = Child(db, seconds=2)
    final.wait_for("stopped", timeout=60)
    final.stop()

    reached = [line.split() for line in calls.read_text().splitlines()]
    run_ids = Counter(run_id for run_id, _ in reached)
    assert run_ids, "no run reached the graph"
    twice = [run_id for run_id, n in run_ids.items() if n > 1]
    assert not twice, f"runs that reached the graph twice: {twice}"
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        runs = {
            r["id"]: dict(r) for r in conn.execute(text("SELECT * FROM scheduler_runs")).mappings()
        }
    engine.dispose()
    for run_id, pid in reached:
        status = runs[run_id]["status"]
        expected = "interrupted" if int(pid) in killed_pids else "succeeded"
        assert status == expected, (run_id, pid, runs[run_id])
    in_killed = {run_id for run_id, pid in reached if int(pid) in killed_pids}
    assert len(in_killed) >= 20  # at least the run that each process died in
    assert not [r for r in runs.values() if r["status"] == "running"]
    interrupted = [r for r in runs.values() if r["status"] == "interrupted"]
    retried_first_attempts = [
        r for r in interrupted if r["task_id"].startswith("retried") and r["attempt"] == 1
    ]
    retries = [r for r in runs.values() if r["trigger"] == "retry"]
    assert retried_first_attempts, "no interrupted run of a task with retries"
    assert len(retries) == len(retried_first_attempts)
    assert all(r["attempt"] == 2 and r["task_id"].startswith("retried") for r in retries)
    assert not [r for r in interrupted if r["attempt"] > 2]


# -- stored state that cannot be loaded --------------------------------------------------------


async def test_unloadable_rows_are_kept_reported_and_the_rest_go_on(
    make_scheduler: SchedulerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(TaskDefinition(id="good", interval_seconds=0.2, prompt="p"))
    db = tmp_path / "scheduler.db"
    good_row = rows(db, "SELECT * FROM scheduler_tasks")[0]
    newer = json.dumps({"id": "newer", "interval_seconds": 1, "prompt": "p", "frobnicate": True})
    broken = [
        ("from-the-future", good_row["definition"].replace('"good"', '"from-the-future"'), 99),
        ("corrupted", '{"id": "corrupted", "interval_sec', 1),
        ("newer", newer, 1),
    ]
    connection = sqlite3.connect(db)
    with connection:
        for task_id, definition, fmt in broken:
            connection.execute(
                "INSERT INTO scheduler_tasks VALUES (?, ?, ?, ?, 0, ?, 'api', ?, ?)",
                (task_id, definition, fmt, time.time() - 5, time.time(), time.time(), time.time()),
            )
    connection.close()
    stored = sorted(tuple(r.values()) for r in rows(db, "SELECT * FROM scheduler_tasks"))
    with caplog.at_level(logging.ERROR):
        scheduler.start()
        await eventually(lambda: len(scheduler.list_runs("good", status="succeeded")) >= 3)
    tasks = {t.id: t for t in scheduler.list_tasks()}
    for task_id, _, _ in broken:
        assert tasks[task_id].state is TaskState.ERROR
        assert tasks[task_id].definition is None
        assert scheduler.list_runs(task_id) == []
    assert "newer version" in (tasks["from-the-future"].error or "")
    assert "frobnicate" in (tasks["newer"].error or "")
    assert "does not load" in (tasks["corrupted"].error or "")
    logged = [r.getMessage() for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert len(logged) == 3  # once each, not once per pass
    await scheduler.stop()
    kept = {r["id"]: r for r in rows(db, "SELECT * FROM scheduler_tasks")}
    for task_id, definition, fmt in broken:
        assert (kept[task_id]["definition"], kept[task_id]["format"]) == (definition, fmt)
    assert len(stored) == len(kept)


# -- database errors while dispatching ------------------------------------------------------


async def test_a_locked_database_stalls_dispatch_then_it_recovers(
    make_scheduler: SchedulerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make_scheduler(sqlite_busy_timeout_seconds=0.1)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="tick", interval_seconds=0.3, prompt="p"))
    await eventually(lambda: scheduler.list_runs("tick", status="succeeded"))
    blocker = sqlite3.connect(tmp_path / "scheduler.db", isolation_level=None)
    with caplog.at_level(logging.INFO):
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        locked_at = datetime.now(UTC)
        await asyncio.sleep(2.0)
        blocker.execute("COMMIT")
        blocker.close()
        released_at = datetime.now(UTC)
        await eventually(
            lambda: any(r.scheduled_for > released_at for r in scheduler.list_runs("tick")),
            message="runs after the lock is released",
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any("database error while dispatching due tasks" in m for m in messages)
    assert any("dispatching resumed" in m for m in messages)

    # The occurrences due while locked are accounted for: run late, coalesced (and its
    # final status written once the history flush, backing off after the lock, goes again).
    def caught_up() -> list[Any]:
        return [
            r
            for r in scheduler.list_runs("tick", limit=None)
            if r.scheduled_for > locked_at and r.occurrences > 1
        ]

    assert caught_up(), "occurrences due during the stall are coalesced into one run"
    await eventually(
        lambda: caught_up()[0].status is RunStatus.SUCCEEDED, message="the caught-up run to end"
    )


async def test_the_event_loop_does_not_wait_for_a_write_lock_held_elsewhere(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """While another process holds the SQLite write lock, due tasks wait for it and the
    event loop does not: the dispatcher's claim waited on the loop, up to the busy timeout
    (5 s by default) an attempt, and HTTP, running graphs and timers stalled with it; so
    did a claim behind a write of this process's own waiting for that lock. Once the lock
    is released, the due task runs and the waiting write goes through."""
    scheduler = make_scheduler()  # the default busy timeout, 5 s
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="tick", interval_seconds=0.2, prompt="p"))
    await eventually(lambda: scheduler.list_runs("tick", status="succeeded"))
    held, released = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # as another process would: not on this event loop
        blocker = sqlite3.connect(tmp_path / "scheduler.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(1.5)
        blocker.execute("COMMIT")
        blocker.close()
        released.set()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait()
    async with loop_gaps(every=0.01) as gaps:
        await asyncio.sleep(0.5)
        # a write of this process (the HTTP API's, through the async API) waits for the lock
        adding = asyncio.create_task(
            scheduler.aadd_task(TaskDefinition(id="later", interval_seconds=3600, prompt="p"))
        )
        await asyncio.to_thread(released.wait)
        released_at = datetime.now(UTC)
        holder.join()
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.2f} s"
    await asyncio.wait_for(adding, 5)
    await eventually(
        lambda: any(r.queued_at > released_at for r in scheduler.list_runs("tick")),
        timeout=3,
        message="a run claimed after the lock is released",
    )
    assert scheduler.get_task("later").definition is not None


async def test_a_run_asked_for_elsewhere_starts_once_a_lock_held_at_the_poll_is_released(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """A run asked for by another process (the CLI's ``run``) is picked up at the next poll
    that sees the change. If the write lock is held elsewhere then, the pick-up does not
    wait for it on the event loop, and the next poll tries again. It waited the busy
    timeout on the loop, failed, and the change counted as seen: the run stayed
    ``queued`` until some other change came."""
    scheduler = make_scheduler(sqlite_busy_timeout_seconds=0.2)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="a", interval_seconds=3600, prompt="hi"))
    other = TaskScheduler(True, tmp_path / "scheduler.db", settings=scheduler.settings)
    run_id = other.run_task_now("a")  # (no await until the lock is held: no poll between)
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        blocker = sqlite3.connect(tmp_path / "scheduler.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(10)
        blocker.execute("COMMIT")
        blocker.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait()
    await asyncio.sleep(1.0)  # polls every 0.1 s meanwhile
    assert scheduler.get_run(run_id).status is RunStatus.QUEUED
    release.set()
    await asyncio.to_thread(holder.join)
    await eventually(lambda: scheduler.get_run(run_id).status is RunStatus.SUCCEEDED, timeout=5)
    other.close()


@pytest.mark.parametrize("resumed", [False, True], ids=["a-start", "a-resume"])
async def test_a_run_stopped_while_its_start_commits_runs_at_the_next_start(
    make_scheduler: SchedulerFactory, tmp_path: Path, resumed: bool
) -> None:
    """A stop that cancels a run while its ``running`` record is being committed (here the
    write lock is held by another process), before its graph is called, puts it back: the
    next start runs it once, and the task that runs after it runs once, after that. It
    was recorded ``cancelled`` ("the scheduler stopped before the run started"): the
    occurrence never ran, and set off the task after it on ``finished``; a resumed run
    lost its answer (and, put back, kept the start of the resume it never made)."""
    from tests import prompt_graphs, server_graphs

    graph = server_graphs.asker if resumed else prompt_graphs.graph
    # (a busy timeout longer than the lock is held after the stop's cancel, so the stop's
    # last flush writes what it recorded)
    first = make_scheduler(graph=graph, sqlite_busy_timeout_seconds=1.5)
    first.start()
    # (no history prune at the first poll: the stop would wait for it, and it for the
    # lock, so the stop would come after the start's commit, not during it)
    assert first._supervisor is not None
    first._supervisor.background_prune = False
    first.add_task(TaskDefinition(id="a", interval_seconds=3600, prompt="hi"))
    then = {"tasks": ["a"], "on": "finished"}
    first.add_task(TaskDefinition(id="b", task_type="after", after=then, prompt="next"))
    run_id = first.run_task_now("a")
    asked = None
    if resumed:
        await eventually(lambda: first.get_run(run_id).status is RunStatus.WAITING)
        await asyncio.sleep(0.1)  # (recorded, then held: the answer goes straight to it)
        asked = first.get_run(run_id)
        first.resume_run(run_id, "yes")
    blocker = sqlite3.connect(tmp_path / "scheduler.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the start's commit waits for it
    await asyncio.sleep(0.2)
    asyncio.get_running_loop().call_later(0.3, blocker.execute, "COMMIT")
    await first.stop(grace_seconds=0)
    blocker.close()
    kept = first.get_run(run_id)
    assert kept.status is (RunStatus.WAITING if resumed else RunStatus.QUEUED), kept.error_message
    assert kept.answered if resumed else kept.started_at is None
    if asked is not None:  # as it was when it stopped to wait, not the attempted resume's
        assert (kept.started_at, kept.waiting_since) == (asked.started_at, asked.waiting_since)
    assert first.list_runs("b") == []
    first.close()

    second = make_scheduler(graph=graph, poll_interval_seconds=0.2)
    second.start()
    ended = {RunStatus.SUCCEEDED, RunStatus.WAITING}  # (b asks too, on the asker graph)
    await eventually(lambda: [r for r in second.list_runs("b") if r.status in ended])
    [ran] = second.list_runs("a", limit=None)
    assert (ran.id, ran.status) == (run_id, RunStatus.SUCCEEDED)
    if resumed:
        assert ran.output == "the answer was yes"
    assert len(second.list_runs("b", limit=None)) == 1


# -- several processes ----------------------------------------------------------------------


def test_two_processes_on_one_file_fire_each_occurrence_once(tmp_path: Path) -> None:
    db = tmp_path / "scheduler.db"
    child(db, "add", json.dumps([{"id": "tick", "interval_seconds": 0.5, "prompt": "p"}]))
    first = Child(db)
    first.wait_for("active")
    second = Child(db)
    second.wait_for("standby")

    def succeeded() -> list[dict[str, Any]]:
        return rows(db, "SELECT * FROM scheduler_runs WHERE status='succeeded'")

    wait_until(lambda: len(succeeded()) >= 4, message="runs by the first process")
    first.kill()
    second.wait_for("active", timeout=15)  # the standby takes over
    count = len(succeeded())
    wait_until(lambda: len(succeeded()) >= count + 4, message="runs by the second process")
    second.stop()
    assert_every_occurrence_once(rows(db, "SELECT * FROM scheduler_runs"), interval=0.5)


def test_a_run_is_cancelled_from_another_process(tmp_path: Path) -> None:
    """cancel_run in a process that does not run the run (here: one not started, as the CLI
    or a standby's HTTP API) asks through the database; the active process cancels it."""
    db = tmp_path / "scheduler.db"
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    long = {"id": "long", "run_at": soon, "prompt": "sleep:60"}
    child(db, "add", json.dumps([long]))
    active = Child(db)
    active.wait_for("active")
    running = wait_until(
        lambda: rows(db, "SELECT id FROM scheduler_runs WHERE status='running'"),
        message="the run to start",
    )
    elsewhere = TaskScheduler(db_path=db, graph=object())
    try:
        assert not elsewhere.cancel_run("no-such-run")
        asked = time.monotonic()
        assert elsewhere.cancel_run(running[0]["id"])
        wait_until(
            lambda: rows(db, "SELECT id FROM scheduler_runs WHERE status='cancelled'"),
            timeout=15,
            message="the active process to cancel the run",
        )
        assert time.monotonic() - asked < 10  # the poll interval, not the 60 s sleep
        assert not elsewhere.cancel_run(running[0]["id"])  # over: nothing left to cancel
    finally:
        elsewhere.close()
        active.stop()


# -- threads ----------------------------------------------------------------------------------


async def test_api_calls_from_many_threads_while_tasks_fire(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        TaskDefinition(id=f"base-{i}", interval_seconds=0.1, prompt="p") for i in range(5)
    )
    errors: list[BaseException] = []
    expected: dict[str, str] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(15):
                task_id = f"w{n}-{i}"
                scheduler.add_task(TaskDefinition(id=task_id, interval_seconds=0.2, prompt="p"))
                scheduler.run_task_now(task_id)
                if i % 3 == 0:
                    scheduler.pause_task(task_id)
                    final = "paused"
                elif i % 3 == 1:
                    scheduler.pause_task(task_id)
                    scheduler.resume_task(task_id)
                    final = "active"
                else:
                    scheduler.remove_task(task_id)
                    final = "removed"
                scheduler.list_tasks()
                scheduler.list_runs(limit=5)
                with lock:
                    expected[task_id] = final
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join(timeout=120) for t in threads])
    assert errors == []
    assert len(expected) == 90
    await asyncio.sleep(0.5)
    listed = {t.id: t for t in scheduler.list_tasks()}
    for task_id, final in expected.items():
        if final == "removed":
            assert task_id not in listed
            with pytest.raises(TaskNotFoundError):
                scheduler.get_task(task_id)
        else:
            assert listed[task_id].state.value == final
            assert (listed[task_id].next_run is None) == (final == "paused")
    # The base tasks kept firing through it (how many times depends on the machine's load).
    await eventually(
        lambda: all(
            len(scheduler.list_runs(f"base-{i}", status="succeeded", limit=None)) >= 5
            for i in range(5)
        ),
        message="five runs of every base task",
    )
    assert not scheduler.list_runs(status="failed")
