"""Worker processes on PostgreSQL: a scheduling leader (``SCHEDULER_ROLE=scheduler``) and
``python -m scheduler worker`` processes, all real subprocesses on a real PostgreSQL schema.
The graph (``tests.prompt_graphs``) appends each call to a log file, so "exactly once" is
counted on the graph's side, not read back from the scheduler's own records."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from scheduler import TaskDefinition, TaskScheduler
from scheduler.leader import _ADVISORY_NAME
from tests.conftest import PYTHON, ROOT
from tests.test_reliability import assert_every_occurrence_once, wait_until

# serial: a worker stops when its 3 s lease is not renewed for 1.5 s, and a queued occurrence
# must start within 1.5 s; beside the parallel tests loading both cores, those failed (the
# serial phase runs two at a time: a fleet uses about a third of the machine)
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial]

LEASE = 3.0


class Fleet:
    """Leaders and workers on one database; every process is killed at the end."""

    def __init__(self, url: str, directory: Path, *, worker_lease: float = LEASE) -> None:
        self.url = url
        self.directory = directory
        self.worker_lease = worker_lease  # the workers' (the leader's is LEASE)
        self.log = directory / "calls.log"
        self.engine: Engine = create_engine(url, poolclass=NullPool)
        self.processes: list[subprocess.Popen[str]] = []
        self.log_of: dict[int, Path] = {}
        self._count = 0

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEDULER_DATABASE_URL": self.url,
            "SCHEDULER_GRAPH": "tests.prompt_graphs:graph",
            "SCHEDULER_POLL_INTERVAL_SECONDS": "0.1",
            "SCHEDULER_STOP_GRACE_SECONDS": "1",
            "SCHEDULER_WORKER_LEASE_SECONDS": str(LEASE),
            "SCHEDULER_LOG_LEVEL": "WARNING",
            **extra,
        }

    def _spawn(self, args: list[str], **extra: str) -> subprocess.Popen[str]:
        self._count += 1
        path = self.directory / f"process-{self._count}.log"
        stderr = path.open("w")
        process = subprocess.Popen(
            [PYTHON, *args],
            cwd=self.directory,
            env=self.env(**extra),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        stderr.close()
        self.processes.append(process)
        self.log_of[process.pid] = path
        return process

    def leader(self) -> subprocess.Popen[str]:
        return self._spawn(
            ["-m", "scheduler", "serve"], SCHEDULER_ROLE="scheduler", SCHEDULER_LOG_LEVEL="INFO"
        )

    def active_leader(self, leaders: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
        """The live leader that became active (it says so in its log)."""

        def find() -> subprocess.Popen[str] | None:
            for process in leaders:
                said = self.log_of[process.pid].read_text()
                if process.poll() is None and (
                    "scheduler active on" in said or "taking over" in said
                ):
                    return process
            return None

        found = wait_until(find, timeout=30, message="an active leader")
        assert isinstance(found, subprocess.Popen)
        return found

    def cli(self, *args: str) -> str:
        """``python -m scheduler ARGS`` on this database; it must succeed. Its output."""
        done = subprocess.run(
            [PYTHON, "-m", "scheduler", *args], cwd=self.directory, env=self.env(),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def worker(self, **extra: str) -> subprocess.Popen[str]:
        lease = {"SCHEDULER_WORKER_LEASE_SECONDS": str(self.worker_lease)}
        return self._spawn(["-m", "scheduler", "worker"], **{**lease, **extra})

    def add(self, tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            task.setdefault("metadata", {})["log"] = str(self.log)
        scheduler = TaskScheduler(database_url=self.url, graph=object())
        try:
            scheduler.add_tasks(TaskDefinition.model_validate(task) for task in tasks)
        finally:
            scheduler.close()

    def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query), params)]

    def count(self, where: str) -> int:
        return int(self.rows(f"SELECT count(*) AS n FROM scheduler_runs WHERE {where}")[0]["n"])

    def workers_registered(self, n: int) -> None:
        def ready() -> bool:
            try:
                return len(self.rows("SELECT id FROM scheduler_workers")) >= n
            except Exception:
                return False  # the tables are not there yet

        wait_until(ready, timeout=60, message=f"{n} workers registered")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines() if line]

    def stop(self, *processes: subprocess.Popen[str]) -> int:
        """SIGTERM to each of ``processes`` at once, then wait for them all (each one's
        stop and exit overlap the others'); the highest exit status (0: every one was)."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return max(process.wait(timeout=60) for process in processes)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.directory.glob("process-*")))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        self.engine.dispose()


@pytest.fixture
def fleet(pg_schema_url: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(pg_schema_url, tmp_path)
    try:
        yield made
    finally:
        made.close()


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])


# -- many workers -----------------------------------------------------------------------------


def test_three_workers_and_a_leader_run_2000_runs_exactly_once(fleet: Fleet) -> None:
    fleet.add([{"id": f"burst-{i:04}", "run_at": at(8), "prompt": "record"} for i in range(2000)])
    # a lease of 15 s, not 3: on a slow 2-core machine, a worker's 3 s lease lapsed now and
    # then in the burst (leader, three workers and PostgreSQL on two cores), and its runs
    # were settled as a dead worker's (interrupted, none run twice); lapses are the
    # business of the lease tests, this one is about the burst (the default lease: 30 s)
    fleet.worker_lease = 15
    leader = fleet.leader()
    workers = [fleet.worker() for _ in range(3)]
    fleet.workers_registered(3)
    try:
        wait_until(
            lambda: fleet.count("status = 'succeeded'") == 2000,
            timeout=120,
            message="2000 runs succeeded",
        )
    except AssertionError:
        found = fleet.rows("SELECT status, count(*) AS n FROM scheduler_runs GROUP BY status")
        raise AssertionError(f"runs by status: {found}; {len(fleet.calls())} graph calls\n"
                             f"{fleet.logs()}") from None  # fmt: skip
    calls = fleet.calls()
    assert len(calls) == 2000, "each run reached the graph exactly once"
    assert len({run_id for run_id, _ in calls}) == 2000
    runs = fleet.rows("SELECT id, worker, status FROM scheduler_runs")
    assert Counter(r["status"] for r in runs) == {"succeeded": 2000}
    by_run = {run_id: int(pid) for run_id, pid in calls}
    assert {r["id"] for r in runs} == set(by_run)
    assert all(pid_of(r["worker"]) == by_run[r["id"]] for r in runs), "recorded where it ran"
    worker_pids = {w.pid for w in workers}
    assert set(by_run.values()) <= worker_pids and leader.pid not in by_run.values()
    assert len(set(by_run.values())) >= 2, "the work was spread over the workers"
    assert fleet.stop(leader, *workers) == 0, fleet.logs()
    assert fleet.rows("SELECT id FROM scheduler_workers") == []  # each one signed off


def test_overlap_holds_across_workers(fleet: Fleet) -> None:
    fleet.add(
        [
            {"id": "skip", "interval_seconds": 0.5, "prompt": "record-sleep:1.6"},
            {
                "id": "allow",
                "interval_seconds": 0.5,
                "prompt": "record-sleep:1.6",
                "overlap": "allow",
                "max_instances": 2,
            },
        ]
    )
    runs = _run_for(fleet, seconds=7, workers=3, drain_timeout=30)
    spans = _spans(fleet, runs)
    for task_id, most in (("skip", 1), ("allow", 2)):
        edges = sorted(
            [(s, 1) for s, _, _ in spans[task_id]] + [(e, -1) for _, e, _ in spans[task_id]]
        )
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        assert peak == most, f"{task_id}: {peak} at once, expected {most}"
        statuses = Counter(r["status"] for r in runs.values() if r["task_id"] == task_id)
        assert statuses["skipped"] > 0 and statuses["succeeded"] >= 3, statuses
    pids = {pid for task_id in ("skip", "allow") for _, _, pid in spans[task_id]}
    assert len(pids) >= 2, "ran on one worker only"


def _run_for(
    fleet: Fleet, *, seconds: float, workers: int, drain_timeout: float
) -> dict[str, dict[str, Any]]:
    """A leader and ``workers`` workers on the fleet's tasks for ``seconds``; then the
    leader stops, the workers drain the queue and stop. The runs, by id."""
    leader = fleet.leader()
    started = [fleet.worker() for _ in range(workers)]
    fleet.workers_registered(workers)
    time.sleep(seconds)
    fleet.stop(leader)
    wait_until(lambda: fleet.count("status IN ('queued', 'running')") == 0, timeout=drain_timeout)
    fleet.stop(*started)
    return {r["id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")}


def _spans(
    fleet: Fleet, runs: dict[str, dict[str, Any]]
) -> dict[str, list[tuple[float, float, str]]]:
    """Per task: (start, end, pid) of each run that recorded both (``record-sleep``)."""
    starts: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run_id, kind, moment, pid in fleet.calls():
        if kind == "start":
            starts[run_id] = float(moment)
        else:
            spans[runs[run_id]["task_id"]].append((starts[run_id], float(moment), pid))
    return spans


# -- kill -9 ------------------------------------------------------------------------------------


def test_kill_9_of_a_worker_mid_run_interrupts_it_and_retries_it_once(fleet: Fleet) -> None:
    fleet.add(
        [
            {
                "id": "long",
                "run_at": at(0),
                "prompt": "record-sleep-first:2",  # (its retry does not sleep)
                "max_retries": 1,
                "retry_delay_seconds": 0.1,
            }
        ]
    )
    leader = fleet.leader()
    workers = {w.pid: w for w in (fleet.worker(), fleet.worker())}
    wait_until(lambda: fleet.calls(), timeout=60, message="the run started")
    [[first_run, _, _, pid]] = fleet.calls()
    killed_at = time.time()
    workers[int(pid)].kill()
    wait_until(
        lambda: fleet.count("status = 'succeeded'") == 1, timeout=30, message="the retry ran"
    )
    runs = fleet.rows("SELECT * FROM scheduler_runs ORDER BY attempt")
    assert [(r["attempt"], r["status"], r["trigger"]) for r in runs] == [
        (1, "interrupted", "schedule"),
        (2, "succeeded", "retry"),
    ]
    first, retry = runs
    assert first["id"] == first_run and "stopped renewing its lease" in first["error_message"]
    assert first["finished_at"] - killed_at < LEASE + 5, "the dead worker was noticed in time"
    calls = fleet.calls()
    retry_start = next(float(c[2]) for c in calls if c[0] == retry["id"] and c[1] == "start")
    assert retry_start > killed_at, "never both at once"
    assert pid_of(retry["worker"]) != int(pid)
    assert Counter(c[0] for c in calls if c[1] == "start") == {first_run: 1, retry["id"]: 1}
    fleet.stop(leader)


def test_a_stopped_worker_keeps_its_lease_while_its_runs_finish(fleet: Fleet) -> None:
    """SIGTERM during a run longer than the lease, with a grace longer still: the run
    finishes there and is recorded once; it is never declared interrupted and retried on
    another worker while it still runs (the heartbeat went on through the grace)."""
    fleet.add([{"id": "long", "run_at": at(0), "prompt": f"record-sleep:{LEASE * 2}",
                "max_retries": 1, "retry_delay_seconds": 0.1}])  # fmt: skip
    leader = fleet.leader()
    workers = {
        w.pid: w for w in (fleet.worker(SCHEDULER_STOP_GRACE_SECONDS="30") for _ in range(2))
    }
    wait_until(lambda: fleet.calls(), timeout=60, message="the run started")
    [[run_id, _, _, pid]] = fleet.calls()
    stopped = workers.pop(int(pid))
    assert fleet.stop(stopped) == 0, fleet.logs()
    runs = fleet.rows("SELECT * FROM scheduler_runs")
    assert [(r["id"], r["attempt"], r["status"]) for r in runs] == [(run_id, 1, "succeeded")]
    assert [c[:2] for c in fleet.calls()] == [[run_id, "start"], [run_id, "end"]]
    time.sleep(LEASE + 2)  # the leader's reaper has had its chance since
    assert fleet.count("true") == 1, fleet.logs()
    fleet.stop(leader)


def test_a_worker_that_cannot_renew_its_lease_leaves_its_run_to_be_retried(
    fleet: Fleet,
) -> None:
    """Its heartbeat blocked (the database otherwise answering) past half the lease: it
    lets go of its run and exits 1, and the run is interrupted and retried elsewhere; were
    it recorded cancelled there, it would never be retried."""
    # (the retry does not sleep: it only has to run, on the other worker)
    fleet.add([{"id": "long", "run_at": at(0), "prompt": "record-sleep-first:8",
                "max_retries": 1, "retry_delay_seconds": 0.1}])  # fmt: skip
    leader = fleet.leader()
    workers = {w.pid: w for w in (fleet.worker(), fleet.worker())}
    wait_until(lambda: fleet.calls(), timeout=60, message="the run started")
    [[run_id, _, _, pid]] = fleet.calls()
    [first] = fleet.rows("SELECT worker FROM scheduler_runs WHERE id = :id", id=run_id)
    with fleet.engine.connect() as conn, conn.begin():
        conn.execute(
            text("SELECT * FROM scheduler_workers WHERE id = :id FOR UPDATE"),
            {"id": first["worker"]},
        )
        wait_until(
            lambda: "could not renew its lease for" in fleet.logs(),
            timeout=30,
            message="the worker gave up on its lease",
        )  # (its last writes wait for the row too: they are fenced by it)
    assert workers[int(pid)].wait(timeout=30) == 1, fleet.logs()
    wait_until(
        lambda: fleet.count("status = 'succeeded'") == 1, timeout=60, message="the retry ran"
    )
    runs = fleet.rows("SELECT * FROM scheduler_runs ORDER BY attempt")
    assert [(r["attempt"], r["status"], r["trigger"]) for r in runs] == [
        (1, "interrupted", "schedule"),
        (2, "succeeded", "retry"),
    ], fleet.logs()
    assert pid_of(runs[1]["worker"]) != int(pid)
    fleet.stop(leader)


def _steady_tasks(count: int, interval: float, prompt: str) -> list[dict[str, Any]]:
    return [
        {"id": f"steady-{i:02}", "interval_seconds": interval, "prompt": prompt}
        for i in range(count)
    ]


def _check_steady(fleet: Fleet, interval: float) -> None:
    """Every occurrence has one record; no run reached the graph twice; no task ran twice
    at once (a run's span ends when it ended or was found interrupted)."""
    runs = {r["id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")}
    starts = Counter(c[0] for c in fleet.calls() if c[1] == "start")
    assert not [run_id for run_id, n in starts.items() if n > 1], "a run reached the graph twice"
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs.values():
        by_task[run["task_id"]].append(run)
    for task_id, task_runs in by_task.items():
        assert_every_occurrence_once(task_runs, interval=interval)
        spans = sorted(
            (r["started_at"], r["finished_at"]) for r in task_runs if r["started_at"] is not None
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is not None and start >= end, f"{task_id} ran twice at once"
    assert all(r["status"] not in ("queued", "running") for r in runs.values())


def _drain(fleet: Fleet, leaders: list[subprocess.Popen[str]]) -> None:
    for leader in leaders:  # one at a time: a standby stopping never takes over meanwhile
        fleet.stop(leader)
    wait_until(
        lambda: fleet.count("status IN ('queued', 'running')") == 0,
        timeout=60,
        message="the workers drained the queue",
    )


def test_kill_9_of_the_leader_during_a_burst_misses_and_repeats_nothing(fleet: Fleet) -> None:
    fleet.add(_steady_tasks(40, 0.5, "record"))
    first, standby = fleet.leader(), fleet.leader()
    workers = [fleet.worker() for _ in range(2)]
    fleet.workers_registered(2)
    time.sleep(3)
    # both workers have runs before the kill (on a loaded machine one may start late)
    wait_until(
        lambda: len({pid for *_, pid in fleet.calls()}) == 2,
        timeout=30,
        message="runs in both workers",
    )
    fleet.active_leader([first, standby]).kill()
    time.sleep(3)
    _drain(fleet, [first, standby])
    fleet.stop(*workers)
    _check_steady(fleet, 0.5)


def _busy(
    fleet: Fleet, workers: list[subprocess.Popen[str]], *, within: float
) -> list[subprocess.Popen[str]]:
    """The workers with a run going, waiting up to ``within`` seconds for one (so that a
    kill interrupts a run even when a slow machine leaves the workers idle at times)."""
    deadline = time.monotonic() + within
    while True:
        rows = fleet.rows(
            "SELECT w.pid FROM scheduler_runs r JOIN scheduler_workers w ON r.worker = w.id "
            "WHERE r.status = 'running'"
        )
        pids = {row["pid"] for row in rows}
        busy = [w for w in workers if w.pid in pids]
        if busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.02)


def test_20_rounds_of_kill_9_of_workers_and_leaders(fleet: Fleet) -> None:
    interval = 0.5
    fleet.add(_steady_tasks(10, interval, "record-sleep:0.3"))
    leaders = [fleet.leader(), fleet.leader()]
    workers = [fleet.worker() for _ in range(3)]
    fleet.workers_registered(3)
    rng = random.Random(17)
    for round_ in range(20):
        time.sleep(rng.uniform(0.8, 1.6))
        if round_ % 2 == 0:
            alive = [w for w in workers if w.poll() is None]
            victim = rng.choice(_busy(fleet, alive, within=2.0) or alive)
            victim.kill()
            workers.append(fleet.worker())
        else:
            fleet.active_leader(leaders).kill()
            leaders.append(fleet.leader())
    time.sleep(LEASE + 2)  # the last killed worker's runs are reaped
    _drain(fleet, [p for p in leaders if p.poll() is None])
    fleet.stop(*workers)
    _check_steady(fleet, interval)
    statuses = Counter(r["status"] for r in fleet.rows("SELECT status FROM scheduler_runs"))
    # real work got done between the kills (each killed worker's tasks skip their firings
    # until its lease runs out: on a slow machine that is most of them), and kills did hit
    # runs that were going
    assert statuses["succeeded"] >= 20 and statuses["interrupted"] >= 1, statuses


def test_sync_nodes_filling_the_default_executor_do_not_lapse_the_lease(fleet: Fleet) -> None:
    # 8 runs of a sync node, each holding a thread for longer than the lease: the loop's
    # default executor (6 threads on 2 cores) is full, and the lease is renewed anyway
    fleet.add([{"id": "sync", "run_at": "2099-01-01T00:00:00Z", "prompt": "block:4",
                "overlap": "allow", "max_instances": 10}])  # fmt: skip
    leader = fleet.leader()
    worker = fleet.worker(
        SCHEDULER_GRAPH="tests.prompt_graphs:blocking_graph", SCHEDULER_MAX_CONCURRENT_RUNS="10"
    )
    fleet.workers_registered(1)
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        for _ in range(8):
            scheduler.run_task_now("sync")
    finally:
        scheduler.close()
    wait_until(lambda: fleet.count("status IN ('queued', 'running')") == 0, 60, "all 8 ended")
    statuses = Counter(r["status"] for r in fleet.rows("SELECT status FROM scheduler_runs"))
    assert statuses == {"succeeded": 8}, fleet.logs()
    assert worker.poll() is None, "the worker is still up"
    assert "could not renew its lease" not in fleet.logs()
    fleet.stop(leader, worker)


_SKEWED = (  # a worker on a machine whose clock is a minute ahead
    "import runpy, sys, time; machine = time.time; time.time = lambda: machine() + 60; "
    "sys.argv = ['scheduler', 'worker']; runpy.run_module('scheduler', run_name='__main__')"
)


def test_a_worker_whose_clock_is_off_keeps_the_databases_time(fleet: Fleet) -> None:
    leader = fleet.leader()
    worker = fleet._spawn(["-c", _SKEWED], SCHEDULER_LOG_LEVEL="INFO")
    fleet.active_leader([leader])
    fleet.workers_registered(1)
    # added once both are up: a start slower than the window (a loaded machine) recorded
    # the occurrences before it missed, rightly
    fleet.add([{"id": "tick", "interval_seconds": 1, "prompt": "record",
                "misfire_grace_seconds": 5}])  # fmt: skip
    wait_until(lambda: fleet.count("status = 'succeeded'") >= 3, 60, "three runs done")
    fleet.stop(worker, leader)
    runs = fleet.rows("SELECT status, scheduled_for, started_at FROM scheduler_runs")
    assert not [r for r in runs if r["status"] == "missed"], "judged late by its own clock"
    started = [r for r in runs if r["started_at"] is not None]
    assert all(abs(r["started_at"] - r["scheduled_for"]) < 5 for r in started)
    assert "clock is +60" in fleet.log_of[worker.pid].read_text()


_LATE_LEADER = (  # a leader on a machine whose clock is a minute behind
    "import runpy, sys, time; machine = time.time; time.time = lambda: machine() - 60; "
    "sys.argv = ['scheduler', 'serve']; runpy.run_module('scheduler', run_name='__main__')"
)


def test_a_leader_whose_clock_is_off_fires_by_the_databases_time(fleet: Fleet) -> None:
    leader = fleet._spawn(["-c", _LATE_LEADER], SCHEDULER_ROLE="scheduler",
                          SCHEDULER_LOG_LEVEL="INFO")  # fmt: skip
    worker = fleet.worker()
    fleet.active_leader([leader])
    fleet.workers_registered(1)
    due = datetime.now(UTC) + timedelta(seconds=8)  # (added once both are up, as above)
    fleet.add([{"id": "once", "run_at": due.isoformat(), "prompt": "record"},
               {"id": "tick", "interval_seconds": 1, "prompt": "record",
                "misfire_grace_seconds": 5}])  # fmt: skip
    wait_until(lambda: fleet.count("task_id = 'once' AND status = 'succeeded'"), 40,
               f"the one-off run, due at {due}")  # fmt: skip
    wait_until(lambda: fleet.count("task_id = 'tick' AND status = 'succeeded'") >= 3, 30, "ticks")
    fleet.stop(worker, leader)
    [once] = fleet.rows("SELECT scheduled_for, started_at FROM scheduler_runs "
                        "WHERE task_id = 'once'")  # fmt: skip
    assert abs(once["scheduled_for"] - due.timestamp()) < 0.01
    assert 0 <= once["started_at"] - due.timestamp() < 5  # not a minute late
    runs = fleet.rows("SELECT status, scheduled_for, started_at FROM scheduler_runs")
    assert not [r for r in runs if r["status"] == "missed"], "stamped by the leader's clock"
    assert all(abs(r["started_at"] - r["scheduled_for"]) < 5 for r in runs if r["started_at"])
    assert "clock is -60" in fleet.log_of[leader.pid].read_text()


def test_a_queued_occurrence_waits_for_the_run_before_it_not_past_its_window(
    fleet: Fleet,
) -> None:
    # overlap: queue keeps one occurrence while a run goes; it starts when that one ends,
    # its catch-up window counted from then (one process's buffer does the same)
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.active_leader([leader])
    fleet.workers_registered(1)
    # added once both are up: a start slower than the window (a loaded machine) would
    # rightly have the first occurrences missed
    fleet.add([{"id": "q", "interval_seconds": 1, "prompt": "record-sleep:3",
                "overlap": "queue", "misfire_grace_seconds": 1.5}])  # fmt: skip
    wait_until(lambda: fleet.count("status = 'succeeded'") >= 2, 60, "two runs done")
    fleet.stop(leader, worker)
    statuses = Counter(r["status"] for r in fleet.rows("SELECT status FROM scheduler_runs"))
    assert statuses["missed"] == 0, statuses
    assert statuses["skipped"] > 0  # the occurrences beyond the one kept


def test_runs_waiting_for_their_tasks_limit_do_not_hold_up_the_others(fleet: Fleet) -> None:
    # 21 tasks each with a run going and one queued behind it: the queued ones fill more
    # than a claim's scan, and a run of another task behind them is still taken at once
    fleet.add([{"id": f"busy-{i:02}", "interval_seconds": 1, "prompt": "record-sleep:30",
                "overlap": "queue"} for i in range(21)]
              + [{"id": "x", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"}])  # fmt: skip
    leader = fleet.leader()
    worker = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="22")
    wait_until(lambda: fleet.count("status = 'running'") == 21, 60, "21 runs going")
    wait_until(lambda: fleet.count("status = 'queued' AND max_running IS NOT NULL") >= 21, 60,
               "one queued behind each")  # fmt: skip
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        asked = time.time()
        run_id = scheduler.run_task_now("x")
    finally:
        scheduler.close()
    wait_until(lambda: fleet.count(f"id = '{run_id}' AND status = 'succeeded'"), 20, "x done")
    [x] = fleet.rows("SELECT started_at FROM scheduler_runs WHERE id = :id", id=run_id)
    assert x["started_at"] - asked < 10
    fleet.stop(leader, worker)


def test_a_worker_is_judged_by_its_own_lease_not_the_leaders(fleet: Fleet) -> None:
    # the leader's lease is 3 s; this worker's 30 s (it renews every 5 s): a run of 8 s on
    # it is fine, and the leader must not declare the worker dead after 3 s
    fleet.add([{"id": "long", "run_at": "2099-01-01T00:00:00Z", "prompt": "record-sleep:8",
                "max_retries": 1}])  # fmt: skip
    leader = fleet.leader()
    worker = fleet.worker(SCHEDULER_WORKER_LEASE_SECONDS="30")
    fleet.workers_registered(1)
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        scheduler.run_task_now("long")
    finally:
        scheduler.close()
    wait_until(lambda: fleet.count("status IN ('queued', 'running')") == 0, 60, "the run over")
    runs = fleet.rows("SELECT status, attempt FROM scheduler_runs")
    assert [(r["status"], r["attempt"]) for r in runs] == [("succeeded", 1)], fleet.logs()
    assert worker.poll() is None
    fleet.stop(leader, worker)


def test_cancelling_from_another_process_reaches_the_worker_running_it(fleet: Fleet) -> None:
    fleet.add([{"id": "long", "run_at": at(1), "prompt": "sleep:60"}])
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.active_leader([leader])
    wait_until(lambda: fleet.count("status = 'running'"), timeout=30, message="the run to start")
    [run] = fleet.rows("SELECT id, worker FROM scheduler_runs WHERE status = 'running'")
    assert pid_of(run["worker"]) == worker.pid
    [listed] = json.loads(fleet.cli("workers", "--json"))  # (no test listed them before)
    assert (listed["id"], listed["pid"], listed["running"]) == (run["worker"], worker.pid, 1)
    api = TaskScheduler(database_url=fleet.url, graph=object())  # as the CLI or HTTP API
    try:
        asked = time.monotonic()
        assert api.cancel_run(run["id"])
        wait_until(
            lambda: fleet.count(f"id = '{run['id']}' AND status = 'cancelled'"),
            timeout=15,
            message=f"the worker to cancel it: {fleet.logs()}",
        )
        assert time.monotonic() - asked < 10  # the worker's poll, not the 60 s sleep
        assert not api.cancel_run(run["id"])
    finally:
        api.close()
    assert worker.poll() is None  # the worker runs on
    fleet.stop(worker, leader)


def test_a_run_asked_to_cancel_whose_worker_dies_is_cancelled_not_retried(fleet: Fleet) -> None:
    """The cancel reached the database, not the worker (frozen): once it was declared dead,
    the run was recorded interrupted, retried (the graph ran again) and, with no retry
    left, its on_failure_callback called; a cancel is the user's own end."""
    fleet.add([{"id": "long", "run_at": at(1), "prompt": "record-sleep:60", "max_retries": 1}])
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    wait_until(lambda: fleet.count("status = 'running'"), timeout=30, message="the run to start")
    [run] = fleet.rows("SELECT id FROM scheduler_runs WHERE status = 'running'")
    worker.send_signal(signal.SIGSTOP)
    api = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        assert api.cancel_run(run["id"])  # (asked through the database: nobody acts on it)
    finally:
        api.close()
    wait_until(lambda: fleet.count("status IN ('queued', 'running')") == 0, 30, "it settled")
    [ended] = fleet.rows("SELECT status, error_type, error_message FROM scheduler_runs")
    assert (ended["status"], ended["error_type"]) == ("cancelled", "Cancelled"), ended
    assert ended["error_message"].startswith("cancelled as asked (worker ")
    worker.kill()
    fleet.stop(leader)


@pytest.mark.parametrize(
    ("prompt", "field", "callback"),
    [
        ("record-sleep:2", "result_callback", "tests.callbacks:record_result"),
        ("record-sleep-fail:2", "on_failure_callback", "tests.callbacks:record_failure"),
    ],
)
def test_a_worker_frozen_past_its_lease_calls_no_callback_when_it_thaws(
    fleet: Fleet, prompt: str, field: str, callback: str
) -> None:
    """Frozen (SIGSTOP) past its lease, the worker was declared dead and its run recorded
    interrupted; thawed, its graph's step ended and the task's result (or failure) callback
    was called for a run recorded interrupted (and retried elsewhere: two results of one
    occurrence) before its heartbeat learned it was dead."""
    failures = fleet.directory / "failures.log"
    fleet.add(
        [
            {
                "id": "long", "run_at": at(1), "prompt": prompt, "max_retries": 0,
                field: callback, "metadata": {"failures": str(failures)},
            }
        ]
    )  # fmt: skip
    leader = fleet.leader()
    worker = fleet.worker(SCHEDULER_CALLBACK_MODULES="tests")
    fleet.workers_registered(1)
    wait_until(lambda: fleet.calls(), timeout=30, message="the graph to start")
    worker.send_signal(signal.SIGSTOP)  # in the graph's 2 s sleep
    wait_until(
        lambda: fleet.count("status = 'interrupted'"),
        timeout=30,
        message=f"the reaper to declare the worker dead: {fleet.logs()}",
    )
    time.sleep(1)  # the graph's sleep is over: its step ends as soon as the worker thaws
    # the heartbeat's renewal waits (writes to the workers' table wait for this lock; reads
    # do not), as when the database answers slowly: the thawed worker's graph goes on first
    with fleet.engine.connect() as holder:
        holder.execute(text("LOCK TABLE scheduler_workers IN EXCLUSIVE MODE"))
        worker.send_signal(signal.SIGCONT)
        wait_until(
            lambda: (
                "stopping (its runs" in fleet.log_of[worker.pid].read_text()
                or any(c[1] == "result" for c in fleet.calls())
                or failures.exists()
            ),
            timeout=30,
            message="the thawed worker to stop or call the callback",
        )
        time.sleep(1)
        holder.rollback()
    assert worker.wait(timeout=30) != 0  # it stops by itself, declared dead
    assert [c for c in fleet.calls() if c[1] == "result"] == [], fleet.logs()
    assert not failures.exists(), failures.read_text()
    [run] = fleet.rows("SELECT status FROM scheduler_runs")
    assert run["status"] == "interrupted"
    fleet.stop(leader)


def test_a_catch_up_after_the_leader_and_its_workers_died_together_runs(fleet: Fleet) -> None:
    """Everything killed mid-run, started again after the workers' leases ran out: the
    occurrence due meanwhile was recorded skipped (overlap=skip: the run the dead worker
    held counted as going), and that run was reaped a moment later."""
    fleet.add(
        [{"id": "tick", "interval_seconds": 4, "prompt": "record-sleep:3", "overlap": "skip"}]
    )
    leader, worker = fleet.leader(), fleet.worker()
    fleet.workers_registered(1)
    wait_until(lambda: fleet.count("status = 'running'"), timeout=30, message="a run going")
    for process in (leader, worker):
        process.kill()
        process.wait(timeout=30)
    down = time.time()
    time.sleep(LEASE + 4)  # the worker's lease runs out; an occurrence falls due
    leader, worker = fleet.leader(), fleet.worker()
    wait_until(
        lambda: fleet.count(f"status = 'succeeded' AND scheduled_for > {down}"),
        timeout=30,
        message=f"the catch-up run: {fleet.logs()}",
    )
    # Later occurrences may be skipped on a loaded machine (a worker slow to boot holds
    # the catch-up queued past the next tick); the catch-up itself must run.
    [first, *_] = fleet.rows(
        f"SELECT status FROM scheduler_runs WHERE scheduled_for > {down} ORDER BY scheduled_for"
    )
    before = fleet.rows(f"SELECT status FROM scheduler_runs WHERE scheduled_for <= {down}")
    assert first["status"] == "succeeded", fleet.rows("SELECT * FROM scheduler_runs")
    before_statuses = Counter(r["status"] for r in before)  # (a tick may have been skipped)
    assert before_statuses["interrupted"] == 1, before
    assert set(before_statuses) <= {"interrupted", "skipped", "succeeded"}, before
    fleet.stop(leader, worker)


def test_a_process_of_role_all_active_beside_workers_says_they_idle(fleet: Fleet) -> None:
    """An all-role standby taking over from a leader of role scheduler ran every run itself,
    the workers idle, with no turn on a thread with theirs, and said nothing."""
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.active_leader([leader])
    standby = fleet._spawn(["-m", "scheduler", "serve"], SCHEDULER_LOG_LEVEL="INFO")
    time.sleep(1)
    leader.kill()
    said = fleet.log_of[standby.pid]
    wait_until(lambda: "scheduler active on" in said.read_text(), 30, "the standby takes over")
    wait_until(lambda: "runs every run itself" in said.read_text(), 10, "the warning")
    assert "SCHEDULER_ROLE=scheduler" in said.read_text()
    fleet.stop(standby, worker)


# -- the leader lock's connection dropped (processes of role all: they dispatch and run) -------
# The lock's connection is cut with pg_terminate_backend (a PostgreSQL restart, a network
# blip, an idle timeout): each run still reaches the graph once.


def _serve(fleet: Fleet, poll: float, concurrency: int = 1) -> subprocess.Popen[str]:
    return fleet._spawn(
        ["-m", "scheduler", "serve"],
        SCHEDULER_ROLE="all",
        SCHEDULER_LOG_LEVEL="INFO",
        SCHEDULER_MAX_CONCURRENT_RUNS=str(concurrency),
        SCHEDULER_POLL_INTERVAL_SECONDS=str(poll),
    )


def _said(fleet: Fleet, process: subprocess.Popen[str], text: str) -> bool:
    return text in fleet.log_of[process.pid].read_text()


def _queue_two_runs(fleet: Fleet) -> None:
    fleet.add(
        [
            {
                "id": "slow",
                "run_at": "2099-01-01T00:00:00Z",
                "prompt": "record-sleep:3",
                "max_retries": 1,
                "retry_delay_seconds": 0.1,
            }
        ]
    )
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        scheduler.run_task_now("slow")
        scheduler.run_task_now("slow")
    finally:
        scheduler.close()


def _cut_the_lock_connection(fleet: Fleet) -> None:
    """Terminate the session that holds the leader's advisory lock: the lock of this fleet's
    schema (its key as in scheduler.storage.locks), not those of tests running beside."""
    cut = fleet.rows(
        "SELECT pg_terminate_backend(l.pid) AS done FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid() "
        "AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = "
        "hashtext(:name || '/' || current_database() || '/' || current_schema())::bigint",
        name=_ADVISORY_NAME,
    )
    assert [row["done"] for row in cut] == [True]


def _starts(fleet: Fleet) -> Counter[str]:
    return Counter(call[0] for call in fleet.calls() if call[1] == "start")


def _all_final(fleet: Fleet) -> bool:
    return fleet.count("status IN ('queued', 'running')") == 0


def test_one_process_takes_its_lock_back_and_runs_nothing_twice(fleet: Fleet) -> None:
    server = _serve(fleet, poll=0.1)
    wait_until(lambda: _said(fleet, server, "scheduler active on"), 60, "the scheduler active")
    _queue_two_runs(fleet)
    wait_until(lambda: fleet.count("status = 'running'") == 1, 30, "the first run going")
    _cut_the_lock_connection(fleet)
    wait_until(lambda: _all_final(fleet), 60, "every run settled")
    runs = fleet.rows("SELECT id, status, attempt FROM scheduler_runs")
    # nothing was recovered from itself: no run interrupted, no retry beside the run
    assert sorted((r["status"], r["attempt"]) for r in runs) == [("succeeded", 1)] * 2
    assert _starts(fleet) == {r["id"]: 1 for r in runs}, "a run reached the graph twice"
    assert _said(fleet, server, "taken back") and not _said(fleet, server, "recovered runs")
    fleet.stop(server)


def test_a_process_that_lost_its_lock_to_another_lets_go_of_its_runs(fleet: Fleet) -> None:
    first = _serve(fleet, poll=1.5)  # notices the loss late: the other takes over first
    wait_until(lambda: _said(fleet, first, "scheduler active on"), 60, "the first active")
    second = _serve(fleet, poll=0.1)
    wait_until(lambda: _said(fleet, second, "stands by"), 60, "the second standing by")
    _queue_two_runs(fleet)
    wait_until(lambda: fleet.count("status = 'running'") == 1, 30, "the first run going")
    [going] = fleet.rows("SELECT id FROM scheduler_runs WHERE status = 'running'")
    _cut_the_lock_connection(fleet)
    wait_until(lambda: _said(fleet, second, "taking over"), 30, "the second taking over")
    wait_until(lambda: _all_final(fleet), 60, "every run settled")
    runs = {r["id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")}
    starts = _starts(fleet)
    assert not [run for run, n in starts.items() if n > 1], "a run reached the graph twice"
    # the run that was going is the dead process's: interrupted, then retried as a new
    # attempt; the other (queued) ran once, in the process that took over
    assert runs[going["id"]]["status"] == "interrupted"
    assert sorted((r["status"], r["attempt"]) for r in runs.values()) == [
        ("interrupted", 1),
        ("succeeded", 1),
        ("succeeded", 2),
    ]
    assert set(starts) == set(runs)
    assert _said(fleet, first, "to another process")
    fleet.stop(first, second)


def test_a_process_that_has_not_yet_noticed_its_lock_is_gone_writes_nothing(fleet: Fleet) -> None:
    # The first notices the loss up to 4 s late; meanwhile the other has taken over. The
    # first must neither dispatch an occurrence nor start a run in that time: the other
    # would never learn of them (it recovered the database as it was when it took over),
    # and the first lets go of them without a word once it notices (they stayed "running"
    # for ever), or both ran the same queued run.
    fleet.add([{"id": "tick", "interval_seconds": 0.5, "prompt": "record-sleep:3",
                "max_retries": 0, "overlap": "allow"}])  # fmt: skip
    first = _serve(fleet, poll=4, concurrency=20)
    wait_until(lambda: _said(fleet, first, "scheduler active on"), 60, "the first active")
    second = _serve(fleet, poll=0.1, concurrency=20)
    wait_until(lambda: _said(fleet, second, "stands by"), 60, "the second standing by")
    wait_until(lambda: fleet.count("status = 'running'") >= 2, 30, "runs going")
    _cut_the_lock_connection(fleet)
    wait_until(lambda: _said(fleet, second, "taking over"), 30, "the second taking over")
    wait_until(lambda: _said(fleet, first, "to another process"), 30, "the first letting go")
    time.sleep(4)  # every run started before that has ended
    fleet.stop(first)
    fleet.stop(second)  # its runs in flight are cancelled (recorded)
    runs = fleet.rows("SELECT id, status, scheduled_for, attempt FROM scheduler_runs")
    assert not [r for r in runs if r["status"] in ("queued", "running")], runs
    starts = _starts(fleet)
    assert not [run for run, n in starts.items() if n > 1], "a run reached the graph twice"
    occurrences = Counter(r["scheduled_for"] for r in runs)
    assert not [when for when, n in occurrences.items() if n > 1], "an occurrence twice"
    assert len(runs) >= 8


def test_a_process_whose_writes_are_refused_with_its_lock_held_starts_over(fleet: Fleet) -> None:
    # The leader epoch moved on while this process kept its lock (a hand edit, a restore of
    # the database): its writes are refused; rather than wait for ever it lets go of its
    # runs and starts over under a new epoch, and firing goes on.
    fleet.add([{"id": "tick", "interval_seconds": 1, "prompt": "record", "max_retries": 0}])
    server = _serve(fleet, poll=0.1)
    wait_until(lambda: fleet.count("status = 'succeeded'") >= 2, 60, "ticks")
    with fleet.engine.begin() as conn:
        conn.execute(text("UPDATE scheduler_meta SET value = value + 5 WHERE key = 'leader_epoch'"))
    edited = time.time()
    wait_until(
        lambda: fleet.count(f"status = 'succeeded' AND started_at > {edited + 1}") >= 3,
        30,
        "ticks after the edit",
    )
    assert _said(fleet, server, "to another process")  # it let go, then started over
    fleet.stop(server)
    runs = fleet.rows("SELECT id, status, scheduled_for FROM scheduler_runs")
    assert not [r for r in runs if r["status"] in ("queued", "running")], runs
    occurrences = Counter(r["scheduled_for"] for r in runs)
    assert not [when for when, n in occurrences.items() if n > 1], "an occurrence twice"


def test_a_start_refused_by_the_fence_never_reaches_the_graph(fleet: Fleet) -> None:
    # One slot: "a" runs, "b" waits for the slot. The epoch moves on (another process took
    # over, played here by hand): when "a" ends, "b"'s start is refused and must stay so
    # (a later flush with nothing to write told it that it was made). "b" runs once, after
    # this process has let go and started over; "a", going at the change, is retried.
    fleet.add([{"id": "a", "run_at": "2099-01-01T00:00:00Z", "prompt": "record-sleep:2",
                "max_retries": 1, "retry_delay_seconds": 0.1},
               {"id": "b", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"}])  # fmt: skip
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        scheduler.run_task_now("a")
        b_run = scheduler.run_task_now("b")
    finally:
        scheduler.close()
    server = _serve(fleet, poll=5)
    wait_until(lambda: fleet.count("task_id = 'a' AND status = 'running'") == 1, 30, "a going")
    with fleet.engine.begin() as conn:
        conn.execute(text("UPDATE scheduler_meta SET value = value + 1 WHERE key = 'leader_epoch'"))
    wait_until(lambda: _all_final(fleet), 60, "every run settled")
    fleet.stop(server)
    b_calls = [call for call in fleet.calls() if call[0] == b_run]
    assert len(b_calls) == 1, f"b reached the graph {len(b_calls)} times"
    runs = fleet.rows("SELECT task_id, status, attempt FROM scheduler_runs ORDER BY task_id")
    assert [(r["task_id"], r["status"]) for r in runs if r["task_id"] == "b"] == [
        ("b", "succeeded")
    ]


def test_taking_over_waits_a_bounded_time_for_a_frozen_leaders_write(fleet: Fleet) -> None:
    # The old leader froze inside a fenced write (its FOR SHARE on the epoch held open, as
    # here by hand): the process taking over must wait for it to know what it wrote, but
    # not for ever with its event loop stuck: it gives up after 5 s and tries again.
    first = _serve(fleet, poll=0.1)
    wait_until(lambda: _said(fleet, first, "scheduler active on"), 60, "the first active")
    second = _serve(fleet, poll=0.1)
    wait_until(lambda: _said(fleet, second, "stands by"), 60, "the second standing by")
    with fleet.engine.connect() as frozen:
        frozen.execute(
            text("SELECT value FROM scheduler_meta WHERE key = 'leader_epoch' FOR SHARE")
        )
        fleet.stop(first)  # (its lock goes with it; the frozen write stays open)
        wait_until(lambda: _said(fleet, second, "lock timeout"), 30, "the wait bounded")
        assert second.poll() is None and not _said(fleet, second, "scheduler active on")
        frozen.rollback()  # the frozen write ends
    wait_until(lambda: _said(fleet, second, "scheduler active on"), 30, "the second active")
    fleet.stop(second)


def test_a_retry_held_by_a_worker_runs_its_task_as_edited(fleet: Fleet) -> None:
    task = {"id": "flaky", "run_at": at(1), "max_retries": 1, "retry_delay_seconds": 3}
    fleet.add([{**task, "prompt": "fail"}])
    leader = fleet.leader()
    worker = fleet.worker()
    wait_until(lambda: fleet.count("status = 'failed'"), timeout=30, message="the first attempt")
    fleet.add([{**task, "prompt": "record"}])  # before the retry is due
    wait_until(lambda: fleet.count("status = 'succeeded'"), timeout=30, message="the retry")
    runs = fleet.rows("SELECT attempt, status, worker FROM scheduler_runs ORDER BY attempt")
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "succeeded")]
    assert {pid_of(r["worker"]) for r in runs} == {worker.pid}
    fleet.stop(worker, leader)


def test_a_run_queued_for_workers_before_its_task_was_paused_or_edited_does_not_start(
    fleet: Fleet,
) -> None:
    """Runs the leader queued in the database for any worker, then their task paused (or
    edited to allow fewer retries) before a worker claimed them: the worker records them
    skipped, as a process holding them would have (it ran them); one asked for by hand
    still runs, as ``run`` runs a paused task. A one-time task's run too: its one
    occurrence had fired, and the pause did nothing (the task counted as completed)."""
    hourly = {"interval_seconds": 3600, "start_date": at(1), "prompt": "record"}
    fleet.add([{"id": t, **hourly} for t in ("paused", "kept")])
    fleet.add([{"id": "once", "run_at": at(1), "prompt": "record"}])
    leader = fleet.leader()
    wait_until(lambda: fleet.count("status = 'queued'") == 3, timeout=30, message="queued")
    fleet.cli("pause", "paused")
    fleet.cli("pause", "once")
    fleet.cli("run", "paused")  # by hand: runs all the same
    retried = {"id": "retried", "prompt": "fail", "retry_delay_seconds": 5}
    fleet.add([{**retried, "run_at": at(0.5), "max_retries": 2}])
    worker = fleet.worker()
    wait_until(lambda: fleet.count("task_id = 'retried'") == 2, timeout=30, message="a retry")
    fleet.stop(worker)  # the retry is left queued in the database (due in 5 s)
    fleet.add([{**retried, "run_at": at(60), "max_retries": 0}])
    worker = fleet.worker()
    final = "status NOT IN ('queued', 'running')"
    wait_until(lambda: fleet.count(final) == 6, timeout=60, message="every run final")
    runs = fleet.rows("SELECT task_id, trigger, status, error_type FROM scheduler_runs")
    assert sorted((r["task_id"], r["trigger"], r["status"], r["error_type"]) for r in runs) == [
        ("kept", "schedule", "succeeded", None),
        ("once", "schedule", "skipped", "Paused"),
        ("paused", "manual", "succeeded", None),
        ("paused", "schedule", "skipped", "Paused"),
        ("retried", "retry", "skipped", "RetryWithdrawn"),
        ("retried", "schedule", "failed", "CommandError"),
    ]
    assert len(fleet.calls()) == 2  # kept's run and the one asked for by hand
    assert fleet.stop(worker, leader) == 0, fleet.logs()


def test_runs_on_one_thread_take_turns_across_workers(fleet: Fleet) -> None:
    """Two workers, runs of two tasks on one ``thread_id`` (one of them with overlap
    ``allow``): never two at once on that thread (they read one checkpoint, and the later
    write dropped the other's turn), as in one process; a task on its own thread is not
    held back by them."""
    fleet.add(
        [
            {"id": "a", "interval_seconds": 0.5, "prompt": "record-sleep:0.8",
             "thread_id": "shared", "overlap": "allow", "max_instances": 3},
            {"id": "b", "interval_seconds": 0.7, "prompt": "record-sleep:0.8",
             "thread_id": "shared", "overlap": "allow", "max_instances": 3},
            {"id": "free", "interval_seconds": 0.5, "prompt": "record-sleep:0.8",
             "overlap": "allow", "max_instances": 3},
        ]
    )  # fmt: skip
    spans = _spans(fleet, _run_for(fleet, seconds=6, workers=2, drain_timeout=60))
    assert len(_one_at_a_time(fleet, ("a", "b"))) >= 4
    free = sorted((start, end) for start, end, _ in spans["free"])
    assert any(s < e for (_, e), (s, _) in itertools.pairwise(free)), "free was held back"


def _start_of(fleet: Fleet, task_id: str) -> tuple[str, str]:
    """(run id, pid) of the first run of ``task_id`` that recorded its start."""
    runs = {
        r["id"] for r in fleet.rows(f"SELECT id FROM scheduler_runs WHERE task_id = '{task_id}'")
    }
    for run_id, kind, _, pid in fleet.calls():
        if run_id in runs and kind == "start":
            return run_id, pid
    raise AssertionError(f"{task_id} has not started")


def _one_at_a_time(fleet: Fleet, task_ids: tuple[str, ...]) -> list[tuple[float, float, str]]:
    """The spans of ``task_ids``' runs, checked never to overlap."""
    spans = _spans(fleet, {r["id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")})
    shared = sorted(span for task_id in task_ids for span in spans[task_id])
    for (_, end, _), (start, _, _) in itertools.pairwise(shared):
        assert start >= end, f"two runs on one thread at once: {shared}"
    return shared


def test_a_workers_retry_takes_its_threads_turn_on_any_worker(fleet: Fleet) -> None:
    """A run on a thread fails in one worker, whose only slot is then busy for a long time.
    Its retry stayed in that worker, without the thread (first: it started there beside a
    run of its thread another worker was running), then holding the thread's turn (the
    thread's other runs waited for that slot, past their catch-up window). A worker's retry
    is queued for any worker now: the idle one runs it once due, then the thread's next run."""
    leader = fleet.leader()
    first = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="1")
    fleet.workers_registered(1)
    fleet.add(
        [
            {"id": "flaky", "run_at": at(0), "prompt": "record-sleep-fail:0.3",
             "thread_id": "shared", "max_retries": 1, "retry_delay_seconds": 2},
            {"id": "filler", "run_at": at(0.5), "prompt": "record-sleep:8"},
        ]
    )  # fmt: skip
    wait_until(lambda: fleet.count("task_id = 'filler' AND status = 'running'"), timeout=30)
    second = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="1")
    fleet.workers_registered(2)
    [retry] = wait_until(lambda: fleet.rows("SELECT * FROM scheduler_runs WHERE attempt = 2"))
    time.sleep(max(0.0, retry["not_before"] + 0.5 - time.time()))  # the retry is due
    fleet.add(
        [{"id": "other", "run_at": at(0), "prompt": "record-sleep:7", "thread_id": "shared",
          "misfire_grace_seconds": 4}]
    )  # fmt: skip
    wait_until(
        lambda: (
            fleet.count("status IN ('queued', 'running')") == 0
            and fleet.count("task_id = 'other'") == 1
        ),
        timeout=60,
        message=f"every run to end: {fleet.rows('SELECT * FROM scheduler_runs')}",
    )
    runs = fleet.rows("SELECT task_id, attempt, status, worker FROM scheduler_runs")
    assert sorted((r["task_id"], r["attempt"], r["status"]) for r in runs) == [
        ("filler", 1, "succeeded"), ("flaky", 1, "failed"), ("flaky", 2, "failed"),
        ("other", 1, "succeeded"),
    ], runs  # fmt: skip
    retry = next(r for r in runs if r["attempt"] == 2)
    assert pid_of(retry["worker"]) == second.pid, "the retry waited for its worker's slot"
    assert len(_one_at_a_time(fleet, ("flaky", "other"))) == 3
    fleet.stop(first, second, leader)


def test_an_answered_run_waits_for_its_threads_turn_across_workers(fleet: Fleet) -> None:
    """Two runs wait for answers in one worker; another run of the first one's thread goes
    on in another worker meanwhile (a waiting run holds no turn, as in one process).
    Answered, the first resumed at once where it waited, beside that run. An answered run is
    queued for any worker now: the first starts once its thread's run has ended (and finds
    its question gone: that run went on from the thread), the second resumes at once."""
    leader = fleet.leader()
    first = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="1")
    fleet.workers_registered(1)
    fleet.add(
        [
            {"id": "asker", "run_at": at(0), "prompt": "ask-record-sleep:0.5", "thread_id": "t"},
            {"id": "alone", "run_at": at(0), "prompt": "ask-record-sleep:0.5", "thread_id": "u"},
        ]
    )
    wait_until(lambda: fleet.count("status = 'waiting'") == 2, timeout=30, message="questions")
    fleet.add([{"id": "filler", "run_at": at(0), "prompt": "sleep:60"}])  # fills first
    wait_until(lambda: fleet.count("task_id = 'filler' AND status = 'running'"), timeout=30)
    second = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="1")
    fleet.workers_registered(2)
    fleet.add([{"id": "other", "run_at": at(0), "prompt": "record-sleep:4", "thread_id": "t"}])
    wait_until(lambda: fleet.calls(), timeout=30, message="the other run to start")
    assert _start_of(fleet, "other")[1] == str(second.pid)  # (the first has no free slot)
    ids = {r["task_id"]: r["id"] for r in fleet.rows("SELECT id, task_id FROM scheduler_runs")}
    api = TaskScheduler(database_url=fleet.url, graph=object())  # as the CLI or HTTP API
    try:
        assert api.cancel_run(ids["filler"])  # the first worker's slot is free again
        wait_until(lambda: fleet.count("task_id = 'filler' AND status = 'cancelled'"), 15)
        api.resume_run(ids["asker"], "yes")
        api.resume_run(ids["alone"], "yes")
    finally:
        api.close()
    wait_until(
        lambda: fleet.count("status IN ('queued', 'running', 'waiting')") == 0,
        timeout=30,
        message="every run to end",
    )
    runs = {r["task_id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")}
    spans = _spans(fleet, {r["id"]: r for r in runs.values()})
    [(_, other_end, _)] = spans["other"]
    assert (runs["asker"]["status"], runs["asker"]["error_type"]) == (
        "cancelled", "AnswerNotApplied",
    ), runs["asker"]  # fmt: skip
    assert runs["asker"]["finished_at"] >= other_end, "resumed beside its thread's run"
    assert runs["alone"]["status"] == "succeeded" and len(spans["alone"]) == 1
    assert spans["alone"][0][0] < other_end, "the run of another thread waited too"
    fleet.stop(first, second, leader)


def test_a_worker_declared_dead_while_frozen_writes_nothing_more(fleet: Fleet) -> None:
    """A worker whose heartbeat has not come for its lease (as if frozen: its heartbeat is
    backdated, its next one is 10 s away) is declared dead while its run goes on: the run is
    ``interrupted`` and retried by another worker. When the run then fails in the first
    worker, its outcome and the retry it made were written anyway (the retry ran twice).
    Each write of a worker's run records checks that it is still registered: the first
    worker writes nothing more and stops."""
    leader = fleet.leader()  # (its own short lease: it looks for dead workers every 0.75 s)
    first = fleet.worker(SCHEDULER_WORKER_LEASE_SECONDS="60", SCHEDULER_MAX_CONCURRENT_RUNS="1")
    fleet.workers_registered(1)
    task = {"id": "long", "run_at": at(0), "prompt": "record-sleep-fail:3", "max_retries": 1}
    fleet.add([{**task, "retry_delay_seconds": 0.1}])
    wait_until(lambda: fleet.calls(), timeout=30, message="the run to start")
    with fleet.engine.begin() as conn:  # the first worker's heartbeat stopped coming
        conn.execute(text("UPDATE scheduler_workers SET heartbeat_at = heartbeat_at - 3600"))
    second = fleet.worker()
    wait_until(lambda: fleet.count("status = 'interrupted'"), timeout=15, message="the reaper")
    assert first.wait(timeout=30) == 1, "the first worker stops"
    wait_until(
        lambda: fleet.count("status IN ('queued', 'running')") == 0 and len(fleet.calls()) >= 4,
        timeout=30,
        message="the retry to end",
    )
    time.sleep(1)  # (a retry written by the first worker would be released and run by now)
    runs = fleet.rows("SELECT * FROM scheduler_runs ORDER BY attempt")
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "interrupted"), (2, "failed")]
    assert pid_of(runs[1]["worker"]) == second.pid
    starts = Counter(c[0] for c in fleet.calls() if c[1] == "start")
    assert starts == {runs[0]["id"]: 1, runs[1]["id"]: 1}, fleet.calls()
    assert "was declared dead" in fleet.log_of[first.pid].read_text()
    fleet.stop(second, leader)


def test_a_workers_runs_deliver_their_webhooks(fleet: Fleet) -> None:
    """A run a worker executes is delivered to its task's webhook from that worker, signed,
    retried after a 500, and each attempt is recorded, as a single process does; so is a
    run a worker records missed (no worker was free within its catch-up window)."""
    from tests.test_webhooks import Receiver

    receiver = Receiver([500])
    try:
        hooks = {
            "SCHEDULER_WEBHOOK_SECRET": "shh",
            "SCHEDULER_WEBHOOK_ALLOW_PRIVATE": "true",
            "SCHEDULER_WEBHOOK_RETRY_SECONDS": "0.05",
        }
        leader = fleet._spawn(["-m", "scheduler", "serve"], SCHEDULER_ROLE="scheduler",
                              SCHEDULER_LOG_LEVEL="INFO", **hooks)  # fmt: skip
        fleet.active_leader([leader])
        # added once the leader is up (it sees them within its 0.1 s poll): due 5 s ahead,
        # so that even a loaded machine's leader queues the late one within its window
        fleet.add(
            [
                {"id": "hooked", "run_at": at(5), "prompt": "record", "webhook": receiver.url},
                {
                    "id": "late",
                    "run_at": at(5),
                    "prompt": "record",
                    "webhook": receiver.url,
                    "misfire_grace_seconds": 1,
                },
            ]
        )
        wait_until(
            lambda: fleet.count("status = 'queued'") == 2, timeout=60, message="2 queued runs"
        )
        time.sleep(2.5)  # past the late one's catch-up window, with no worker
        worker = fleet.worker(**hooks)
        wait_until(lambda: len(receiver.received) >= 3, timeout=60, message="three attempts")
        runs = {r["task_id"]: r for r in fleet.rows("SELECT * FROM scheduler_runs")}
        assert runs["hooked"]["status"] == "succeeded" and runs["hooked"]["worker"]
        assert runs["late"]["status"] == "missed"
        sent = {}
        for headers, body in receiver.received:
            assert headers["x-scheduler-signature"].startswith("sha256=")
            run = json.loads(body)["run"]
            sent[run["task_id"]] = run["status"]
        assert sent == {"hooked": "succeeded", "late": "missed"}
        attempts: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for a in fleet.rows("SELECT * FROM scheduler_deliveries ORDER BY attempt"):
            attempts[a["run_id"]].append((a["attempt"], a["status_code"]))
        assert attempts.keys() == {runs["hooked"]["id"], runs["late"]["id"]}
        assert sorted(attempts.values()) == [[(1, 200)], [(1, 500), (2, 200)]]  # one retried
        assert fleet.stop(worker, leader) == 0
    finally:
        receiver.close()


def test_a_run_waiting_at_a_worker_takes_an_edit_of_its_task(fleet: Fleet) -> None:
    """An edit of the task of a run waiting at a worker reaches that run at the worker's
    next look, as a worker started afterwards would read it: a waiting timeout added
    counts from when it began waiting (before, it waited for ever)."""
    task = {"id": "ask", "run_at": "2099-01-01T00:00:00Z", "prompt": "ask-record-sleep:0.1"}
    fleet.add([dict(task)])
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    api = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        run_id = api.run_task_now("ask")
    finally:
        api.close()
    wait_until(lambda: fleet.count("status = 'waiting'"), 30, "the question")
    fleet.add([{**task, "waiting_timeout_seconds": 2}])
    wait_until(lambda: fleet.count("status = 'timed_out'"), 30, "the edited timeout")
    [run] = fleet.rows(f"SELECT * FROM scheduler_runs WHERE id = '{run_id}'")
    assert run["error_type"] == "WaitingTimeout"
    assert run["finished_at"] - run["waiting_since"] == pytest.approx(2, abs=1)
    fleet.stop(worker, leader)


def test_the_skipped_records_of_what_runs_after_a_workers_run_are_told(fleet: Fleet) -> None:
    """The ``skipped`` records a worker writes for the tasks that run after the one it ran
    reach their webhooks, as one process tells them to its listeners: a paused task's ("the
    task is paused; it would have run after ..."), and one the overlap policy skips across
    the workers (a second outcome while the first one's run still goes). Before, a worker
    told neither."""
    from tests.test_webhooks import Receiver

    receiver = Receiver([])
    try:
        leader = fleet._spawn(
            ["-m", "scheduler", "serve"], SCHEDULER_ROLE="scheduler", SCHEDULER_LOG_LEVEL="INFO"
        )
        fleet.active_leader([leader])
        worker = fleet.worker(SCHEDULER_WEBHOOK_ALLOW_PRIVATE="true")
        fleet.workers_registered(1)
        hook = {"webhook": receiver.url}
        fleet.add(
            [
                {"id": "up", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"},
                {"id": "down", "after": "up", "prompt": "record", **hook},
                {"id": "busy", "after": {"tasks": ["up"], "on": "finished"},
                 "prompt": "sleep:3", "overlap": "skip", **hook},
            ]
        )  # fmt: skip
        api = TaskScheduler(database_url=fleet.url, graph=object())
        try:
            api.pause_task("down")
            api.run_task_now("up")
            api.run_task_now("up")  # two outcomes: busy runs once, and is skipped once
        finally:
            api.close()
        wait_until(lambda: fleet.count("status = 'skipped'") == 3, 30, "the skipped records")

        def told() -> set[tuple[str, str, str]]:
            runs = [json.loads(body)["run"] for _, body in receiver.received]
            return {(r["task_id"], r["status"], r["error_type"]) for r in runs}

        wanted = {("down", "skipped", "Paused"), ("busy", "skipped", "Overlap")}
        wait_until(lambda: wanted <= told(), 15, "their deliveries")
        fleet.stop(worker, leader)
    finally:
        receiver.close()


def test_a_run_waiting_at_a_worker_is_let_go_once_its_task_is_removed_and_added_again(
    fleet: Fleet,
) -> None:
    """Another process removes the task and adds it again under its id between two looks
    of the worker that holds its waiting run: the worker lets go of the run the removal
    ended, and the new task's occurrence runs and asks its own question. Before, the
    worker held the ended run (with no waiting timeout, for ever), its end told to none of
    its listeners."""
    task = {"id": "ask", "run_at": "2099-01-01T00:00:00Z", "prompt": "ask-record-sleep:0.1"}
    fleet.add([dict(task)])
    leader = fleet._spawn(
        ["-m", "scheduler", "serve"], SCHEDULER_ROLE="scheduler", SCHEDULER_LOG_LEVEL="INFO"
    )
    fleet.active_leader([leader])
    worker = fleet.worker(SCHEDULER_LOG_LEVEL="INFO")
    fleet.workers_registered(1)
    api = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        run_id = api.run_task_now("ask")
        wait_until(lambda: fleet.count("status = 'waiting'"), 30, "the question")
        api.remove_task("ask")
        soon = datetime.fromtimestamp(time.time() + 1, UTC).isoformat()
        fleet.add([{**task, "run_at": soon}])
    finally:
        api.close()
    wait_until(
        lambda: fleet.count(f"status = 'waiting' AND id != '{run_id}'"), 30, "the new question"
    )
    assert fleet.count("status = 'skipped'") == 0
    said = fleet.log_of[worker.pid]
    wait_until(lambda: f"run {run_id} ended elsewhere" in said.read_text(), 10, "let go of")
    fleet.stop(worker, leader)
