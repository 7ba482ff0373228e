"""This project's side: ``TaskScheduler`` on a SQLite file, used through its public API.

Every function measures one scenario in the calling process (a fresh worker) and returns its
figures; anything it cannot measure raises :class:`~bench.measure.MeasurementError`. Times
come from the run records (``scheduled_for``, ``queued_at``, ``started_at``,
``finished_at``), which the scheduler stamps with ``time.time()``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.measure import (
    MeasurementError,
    Result,
    due_count,
    lateness,
    peak_rss_mb,
    sleep_until,
    spread,
    wait_for,
)
from scheduler import RunRecord, RunStatus, Settings, TaskDefinition, TaskScheduler, TaskType

__all__ = ["adds", "api_load", "arm", "burst", "chain", "persisted", "sdk", "seed", "steady"]

PROMPT = "hi"
STARTED = (RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED)


def _settings(*, inject: bool = False, **values: Any) -> Settings:
    """Defaults, apart from ``values``: no ``.env``, no tasks file, and (unless ``inject``)
    no checkpointer or store injected into the graph, so that every side runs the same
    graph (the bare calls and the recipe's jobs have neither); scenario 7 measures the
    injected checkpointer against bare calls on a graph compiled with the same one."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        tasks_file=None,
        inject_checkpointer=inject,
        inject_store=inject,
        **values,
    )


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _graph(name: str) -> Any:
    from bench.workloads import graph_named

    return graph_named(name)


def _check_setup(due: float, what: str) -> None:
    spare = due - time.time()
    if spare < 0.05:
        raise MeasurementError(
            f"set-up of {what} ended {-spare:.2f} s after the first due time; the measurement "
            "would start late (raise the margin)"
        )


def _records(scheduler: TaskScheduler) -> list[RunRecord]:
    return scheduler.list_runs(limit=None)


def _ts(moment: datetime | None) -> float:
    if moment is None:
        raise MeasurementError("a run record lacks a time it should have")
    return moment.timestamp()


async def burst(
    workdir: Path,
    *,
    n: int,
    graph: str = "trivial",
    max_concurrent_runs: int = 100,
    margin: float = 2.0,
    gc_freeze: bool = True,
    inject: bool = False,
) -> Result:
    """``n`` one-time tasks due at the same moment; wait until every one has a final record.

    ``gc_freeze=False`` measures with ``SCHEDULER_GC_FREEZE`` off (for ``bench/PROFILE.md``).

    Returns ran / missed / dropped counts, dispatch lateness (``queued_at - scheduled_for``),
    ``finished`` (due time to the last ``finished_at``) and ``rate`` (runs per second).
    """
    scheduler = TaskScheduler(
        db_path=workdir / "ours.db",
        graph=_graph(graph),
        settings=_settings(
            max_concurrent_runs=max_concurrent_runs, gc_freeze=gc_freeze, inject=inject
        ),
    )
    due = time.time() + margin
    scheduler.add_tasks(
        [
            TaskDefinition(id=f"t{i}", task_type=TaskType.ONE_TIME, run_at=_at(due), prompt=PROMPT)
            for i in range(n)
        ]
    )
    scheduler.start()
    _check_setup(due, f"{n} tasks")
    await sleep_until(due)
    counts: dict[str, int] = {}
    limit = 60 + n * 0.02

    async def all_final() -> bool:
        # Read the records only when nothing is in flight: a poll while runs go would be
        # work the bare side does not do.
        await asyncio.wait_for(scheduler.wait_idle(), timeout=limit)
        counts.update(await asyncio.to_thread(scheduler.count_runs))
        return sum(v for k, v in counts.items() if RunStatus(k).is_final) >= n

    await wait_for(
        all_final, timeout=limit, what=f"{n} final run records", progress=counts.__repr__
    )
    await scheduler.wait_idle()
    await scheduler.stop()
    runs = _records(scheduler)
    scheduler.close()
    return _burst_figures(runs, n=n, due=due)


def _burst_figures(runs: Sequence[RunRecord], *, n: int, due: float) -> Result:
    status = Counter(run.status for run in runs)
    if status[RunStatus.FAILED] or status[RunStatus.TIMED_OUT]:
        failed = next(r for r in runs if r.status in (RunStatus.FAILED, RunStatus.TIMED_OUT))
        raise MeasurementError(f"runs of the graph failed: {failed.error_message}")
    ran = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    recorded = len({r.task_id for r in runs})
    if not ran:
        raise MeasurementError(f"none of {n} runs succeeded: {dict(status)}")
    others = {s: c for s, c in status.items() if s not in (RunStatus.SUCCEEDED, RunStatus.MISSED)}
    if others:
        raise MeasurementError(f"unexpected run statuses in a burst: {dict(others)}")
    finished = max(_ts(r.finished_at) for r in ran) - due
    figures: Result = {
        "n": n,
        "ran": len(ran),
        "missed": status[RunStatus.MISSED],
        "dropped": n - recorded,
        "finished": finished,
        "rate": len(ran) / finished,
    }
    figures.update(lateness([_ts(r.queued_at) - _ts(r.scheduled_for) for r in runs], "dispatch"))
    figures.update(lateness([_ts(r.started_at) - _ts(r.scheduled_for) for r in ran], "start"))
    return figures


async def adds(workdir: Path, *, n: int) -> Result:
    """Tasks added per second to a started scheduler: ``add_task`` one by one, and
    ``add_tasks`` in one batch (each on its own new database). Building each
    ``TaskDefinition`` (validation) is part of adding it."""
    at = datetime.now(UTC) + timedelta(hours=2)
    rates: Result = {}
    for mode in ("one_by_one", "batch"):
        scheduler = TaskScheduler(
            db_path=workdir / f"{mode}.db", graph=_graph("trivial"), settings=_settings()
        )
        scheduler.start()
        began = time.perf_counter()
        if mode == "batch":
            scheduler.add_tasks(
                [
                    TaskDefinition(
                        id=f"t{i}", task_type=TaskType.ONE_TIME, run_at=at, prompt=PROMPT
                    )
                    for i in range(n)
                ]
            )
        else:
            for i in range(n):
                scheduler.add_task(
                    TaskDefinition(
                        id=f"t{i}", task_type=TaskType.ONE_TIME, run_at=at, prompt=PROMPT
                    )
                )
        await asyncio.sleep(0)  # let the wake-ups the adds queued on the loop run
        rates[mode] = n / (time.perf_counter() - began)
        stored = scheduler.count_tasks()
        await scheduler.stop()
        scheduler.close()
        if stored != n:
            raise MeasurementError(f"{mode}: added {n} tasks, the database holds {stored}")
    return rates


async def steady(
    workdir: Path, *, n: int, interval: float, duration: float, margin: float = 1.5
) -> Result:
    """``n`` interval tasks (every ``interval`` s, first times spread over one interval) for
    ``duration`` s: runs due in the window, runs done, and start lateness
    (``started_at - scheduled_for``) of the runs done."""
    scheduler = TaskScheduler(
        db_path=workdir / "ours.db", graph=_graph("trivial"), settings=_settings()
    )
    scheduler.start()
    window = round(time.time() + margin, 3)
    offsets = spread(n, interval)
    scheduler.add_tasks(
        [
            TaskDefinition(
                id=f"s{i}",
                task_type=TaskType.INTERVAL,
                interval_seconds=interval,
                start_date=_at(window + offset),
                prompt=PROMPT,
            )
            for i, offset in enumerate(offsets)
        ]
    )
    _check_setup(window, f"{n} interval tasks")
    tolerance = interval / n / 2
    end = window + duration
    await sleep_until(end)
    await asyncio.sleep(0.5)  # runs due just before the end finish
    await scheduler.stop(grace_seconds=5)
    runs = [
        r
        for r in _records(scheduler)
        if window - tolerance <= _ts(r.scheduled_for) < end - tolerance
    ]
    scheduler.close()
    done = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    if not done:
        raise MeasurementError("no run succeeded in the steady-state window")
    figures: Result = {
        "due": due_count(offsets, interval=interval, duration=duration),
        "done": sum(r.occurrences for r in done),
    }
    figures.update(lateness([_ts(r.started_at) - _ts(r.scheduled_for) for r in done], "start"))
    figures.update(lateness([_ts(r.queued_at) - _ts(r.scheduled_for) for r in runs], "dispatch"))
    return figures


def _open(db: str, *, graph: Any = None) -> TaskScheduler:
    """A scheduler on ``db``: a SQLite file, or a database URL (``postgresql+psycopg://``)."""
    if "://" in db:
        return TaskScheduler(database_url=db, graph=graph, settings=_settings())
    return TaskScheduler(db_path=db, graph=graph, settings=_settings())


def seed(workdir: Path, *, db: str, n: int) -> Result:
    """Fill ``db`` with ``n`` interval tasks (hourly, first due in 2 to 3 hours), 100,000
    at a time."""
    base = time.time() + 7200
    scheduler = _open(db)
    for start in range(0, n, 100_000):
        scheduler.add_tasks(
            [
                TaskDefinition(
                    id=f"p{i:07d}",
                    task_type=TaskType.INTERVAL,
                    interval_seconds=3600,
                    start_date=_at(base + i * 3600 / n),
                    prompt=PROMPT,
                )
                for i in range(start, min(n, start + 100_000))
            ]
        )
    scheduler.close()
    return {"seeded": n}


def arm(workdir: Path, *, db: str, due: int, step: float) -> Result:
    """Add ``due`` one-time tasks due from now on, ``step`` s apart (the first firings)."""
    now = time.time()
    scheduler = _open(db)
    scheduler.add_tasks(
        [
            TaskDefinition(
                id=f"due{k:04d}",
                task_type=TaskType.ONE_TIME,
                run_at=_at(now + k * step),
                prompt=PROMPT,
            )
            for k in range(due)
        ]
    )
    scheduler.close()
    return {"armed_at": now}


async def persisted(
    workdir: Path,
    *,
    db: str,
    spawned_at: float,
    expected: int,
    listing: bool = True,
    armed: int = 0,
) -> Result:
    """Start on a database of ``expected`` tasks: seconds from the parent spawning this process
    (interpreter start-up and imports included) to the first run's ``started_at``, the time
    ``list_tasks()`` takes, and the peak RSS of the process. ``listing`` False: no
    ``list_tasks()``; the ``armed`` tasks run to the end and the tasks are counted instead
    (the scheduler's own memory, not that of a list of every task)."""
    scheduler = _open(db, graph=_graph("trivial"))
    scheduler.start()
    if not listing:
        return await _run_on(scheduler, spawned_at=spawned_at, expected=expected, armed=armed)
    fired: list[RunRecord] = []

    async def first_run() -> bool:
        fired.extend(scheduler.list_runs(status=STARTED, limit=1))
        return bool(fired)

    await wait_for(first_run, timeout=120, what="the first run to start", interval=0.01)
    first = min(_ts(r.started_at) for r in scheduler.list_runs(status=STARTED, limit=None))
    began = time.perf_counter()
    tasks = scheduler.list_tasks()
    listed = time.perf_counter() - began
    if len(tasks) != expected:
        raise MeasurementError(f"list_tasks() returned {len(tasks)} tasks, expected {expected}")
    rss = peak_rss_mb()
    del tasks
    await scheduler.stop(grace_seconds=5)
    scheduler.close()
    return {"first_firing": first - spawned_at, "list": listed, "listed": expected, "rss": rss}


async def _run_on(
    scheduler: TaskScheduler, *, spawned_at: float, expected: int, armed: int
) -> Result:
    """The armed tasks run (runs of earlier repetitions on a reused database left out);
    the tasks are counted; the peak RSS of the running scheduler."""

    def started() -> list[RunRecord]:
        runs = scheduler.list_runs(status=STARTED, limit=None)
        return [r for r in runs if r.started_at is not None and _ts(r.started_at) >= spawned_at]

    async def any_started() -> bool:
        return bool(started())

    await wait_for(any_started, timeout=120, what="the first run", interval=0.01)
    first = min(_ts(r.started_at) for r in started())

    async def all_started() -> bool:
        return len(started()) >= armed

    await wait_for(all_started, timeout=60, what=f"{armed} armed runs", interval=0.05)
    ran = len(started())
    count = scheduler.count_tasks()
    rss = peak_rss_mb()
    await scheduler.stop(grace_seconds=5)
    scheduler.close()
    if count != expected:
        raise MeasurementError(f"count_tasks() is {count}, expected {expected}")
    return {"first_firing": first - spawned_at, "ran": ran, "rss": rss, "listed": count}


# scenario 8 (bench/chains.py measures both sides)
from bench.chains import ours_chain as chain  # noqa: E402

# scenarios 9 and 10 (bench/server_bench.py)
from bench.server_bench import api_load  # noqa: E402
from bench.server_bench import langgraph_sdk as sdk  # noqa: E402


def workers_cpu(workdir: Path, *, n: int, cpu_ms: float, concurrency: int) -> Result:
    """13: a CPU-bound graph on 1 worker, then on 2 (see :mod:`bench.fleet`)."""
    from bench.fleet import cpu_workers

    return cpu_workers(workdir, n=n, cpu_ms=cpu_ms, concurrency=concurrency)


def workers_burst(workdir: Path, *, n: int, workers: int) -> Result:
    """14: a burst of one-time tasks on PostgreSQL with workers (see :mod:`bench.fleet`)."""
    from bench.fleet import burst_on_postgres

    return burst_on_postgres(workdir, n=n, workers=workers)
