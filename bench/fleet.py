"""Scenarios 13 and 14: a scheduling leader and worker processes on PostgreSQL.

Each measurement starts real processes (``python -m scheduler serve`` with
``SCHEDULER_ROLE=scheduler``, and ``python -m scheduler worker``) on a fresh schema, waits
until the workers have registered, adds one-time tasks due a moment later, waits until
every run has a final record, and reads the figures from the run records. Graphs get no
injected checkpointer or store, so what is measured is the scheduler and the graph.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.measure import MeasurementError, Result, lateness
from bench.pg import fresh_schema, postgres_url

__all__ = ["burst_on_postgres", "cpu_workers"]

_ROOT = Path(__file__).resolve().parent.parent
_SCHEMA = "bench_fleet"


class _Fleet:
    def __init__(self, workdir: Path, graph: str, **env: str) -> None:
        self.url = fresh_schema(postgres_url(), _SCHEMA)
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PYTHONPATH": str(_ROOT),
            "SCHEDULER_DATABASE_URL": self.url,
            "SCHEDULER_GRAPH": graph,
            "SCHEDULER_INJECT_CHECKPOINTER": "false",
            "SCHEDULER_INJECT_STORE": "false",
            "SCHEDULER_LOG_LEVEL": "WARNING",
            "SCHEDULER_STOP_GRACE_SECONDS": "5",
            **env,
        }
        self.engine = create_engine(self.url, poolclass=NullPool)
        self.processes: list[subprocess.Popen[bytes]] = []
        from scheduler import TaskScheduler

        TaskScheduler(database_url=self.url, graph=object()).store.setup()

    def spawn(self, command: str, **env: str) -> None:
        log = (self.workdir / f"{command}-{len(self.processes)}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "scheduler", command],
                cwd=self.workdir,
                env={**self.env, **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        )
        log.close()

    def scalar(self, query: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(query)).scalar()

    def wait(self, query: str, goal: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while int(self.scalar(query) or 0) < goal:
            for process in self.processes:
                if process.poll() is not None:
                    raise MeasurementError(f"a process exited early ({process.returncode}); {what}")
            if time.monotonic() > deadline:
                raise MeasurementError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)

    def add(self, n: int, due: float) -> None:
        from scheduler import TaskDefinition, TaskScheduler

        scheduler = TaskScheduler(database_url=self.url, graph=object())
        at = datetime.fromtimestamp(due, UTC)
        scheduler.add_tasks(TaskDefinition(id=f"t{i:05}", run_at=at, prompt="go") for i in range(n))
        scheduler.close()

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT status, scheduled_for, queued_at, started_at, finished_at, worker "
                    "FROM scheduler_runs"
                )
            )
            return [dict(r._mapping) for r in rows]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.engine.dispose()


def _run(
    workdir: Path, *, workers: int, n: int, graph: str, margin: float, **env: str
) -> list[dict[str, Any]]:
    fleet = _Fleet(workdir, graph, **env)
    try:
        fleet.spawn("serve", SCHEDULER_ROLE="scheduler")
        for _ in range(workers):
            fleet.spawn("worker")
        fleet.wait("SELECT count(*) FROM scheduler_workers", workers, 120, "the workers")
        time.sleep(0.5)  # the leader is up too (it started first)
        fleet.add(n, time.time() + margin)
        final = "SELECT count(*) FROM scheduler_runs WHERE status NOT IN ('queued', 'running')"
        fleet.wait(final, n, 600, f"{n} runs to end")
        return fleet.runs()
    finally:
        fleet.close()


def cpu_workers(workdir: Path, *, n: int, cpu_ms: float, concurrency: int) -> Result:
    """13: throughput of a graph burning ``cpu_ms`` of CPU per run, 1 worker then 2, each
    with ``concurrency`` runs in flight at most (a CPU-bound graph gains nothing from more:
    it holds the GIL)."""
    os.environ["BENCH_CPU_MS"] = str(cpu_ms)
    figures: Result = {"n": n}
    for workers, key in ((1, "one"), (2, "two")):
        runs = _run(
            workdir,
            workers=workers,
            n=n,
            graph="bench.workloads:cpu_graph",
            margin=1.5,
            SCHEDULER_MAX_CONCURRENT_RUNS=str(concurrency),
        )
        done = [r for r in runs if r["status"] == "succeeded"]
        if len(done) != n:
            raise MeasurementError(f"{workers} worker(s): {Counter(r['status'] for r in runs)}")
        span = max(r["finished_at"] for r in done) - min(r["started_at"] for r in done)
        figures[f"{key}_rate"] = n / span
        figures[f"{key}_workers_used"] = len({r["worker"] for r in done})
    figures["speedup"] = figures["two_rate"] / figures["one_rate"]
    return figures


def burst_on_postgres(workdir: Path, *, n: int, workers: int) -> Result:
    """14: ``n`` one-time tasks due at once, a leader and ``workers`` workers."""
    margin = 2.0 + n * 0.0002
    runs = _run(workdir, workers=workers, n=n, graph="bench.workloads:graph", margin=margin)
    status = Counter(r["status"] for r in runs)
    ran = [r for r in runs if r["status"] == "succeeded"]
    if not ran:
        raise MeasurementError(f"no run succeeded: {dict(status)}")
    due = min(r["scheduled_for"] for r in runs)
    figures: Result = {
        "n": n,
        "ran": len(ran),
        "missed": n - len(ran),
        "finished": max(r["finished_at"] for r in ran) - due,
        "workers_used": len({r["worker"] for r in ran}),
    }
    figures.update(lateness([r["queued_at"] - r["scheduled_for"] for r in runs], "dispatch"))
    figures.update(lateness([r["started_at"] - r["scheduled_for"] for r in ran], "start"))
    return figures
