"""The baseline: the classic recipe, exactly.

A plain ``AsyncIOScheduler`` with a ``SQLAlchemyJobStore`` on a SQLite file, APScheduler's
default job settings (``misfire_grace_time`` 1 s, ``coalesce`` True, ``max_instances`` 1),
one job per task added with ``add_job(func, trigger, id=..., kwargs={"prompt": ...})``, the
job function calling the compiled graph with the prompt. Runs are counted with event
listeners: ``EVENT_JOB_SUBMITTED`` (the moment a run is handed to the executor: the
baseline's "recorded"), ``EVENT_JOB_EXECUTED`` (the job function returns its own start and
end times), ``EVENT_JOB_MISSED``, ``EVENT_JOB_ERROR`` and ``EVENT_JOB_MAX_INSTANCES``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench.jobseed import write_jobs
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
from bench.workloads import graph, sleepy_graph

__all__ = [
    "adds",
    "arm",
    "burst",
    "chain",
    "persisted",
    "run_sleepy",
    "run_trivial",
    "sdk",
    "seed",
    "steady",
]

PROMPT = "hi"
STARTED: list[float] = []  # start time of every job function call in this process


async def run_trivial(prompt: str) -> tuple[float, float]:
    """The job function: invoke the trivial graph with the prompt; return start and end."""
    started = time.time()
    STARTED.append(started)
    await graph.ainvoke({"messages": [{"role": "user", "content": prompt}]})
    return started, time.time()


async def run_sleepy(prompt: str) -> tuple[float, float]:
    """The job function of scenario 6: the same with the graph that awaits first."""
    started = time.time()
    STARTED.append(started)
    await sleepy_graph.ainvoke({"messages": [{"role": "user", "content": prompt}]})
    return started, time.time()


JOB_FUNCTIONS = {"trivial": run_trivial, "sleepy": run_sleepy}


@dataclass
class Tally:
    """Collects the scheduler's job events (a listener; called on the event loop)."""

    submitted: list[tuple[float, float]] = field(default_factory=list)  # (when, scheduled)
    executed: list[tuple[float, float, float]] = field(default_factory=list)  # sched, start, end
    missed: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    max_instances: int = 0

    def __call__(self, event: JobEvent) -> None:
        now = time.time()
        if event.code == EVENT_JOB_SUBMITTED:
            self.submitted.extend((now, t.timestamp()) for t in event.scheduled_run_times)
        elif event.code == EVENT_JOB_EXECUTED:
            started, finished = event.retval
            self.executed.append((event.scheduled_run_time.timestamp(), started, finished))
        elif event.code == EVENT_JOB_MISSED:
            self.missed.append(event.scheduled_run_time.timestamp())
        elif event.code == EVENT_JOB_ERROR:
            self.errors.append(repr(event.exception))
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.max_instances += len(event.scheduled_run_times)

    @property
    def settled(self) -> int:
        return len(self.executed) + len(self.missed) + len(self.errors)

    def progress(self) -> str:
        return (
            f"submitted {len(self.submitted)}, executed {len(self.executed)}, missed "
            f"{len(self.missed)}, errors {len(self.errors)}, max_instances {self.max_instances}"
        )


def _start(db: Path | str) -> tuple[AsyncIOScheduler, SQLAlchemyJobStore, Tally]:
    """The classic recipe, started, with a :class:`Tally` listening."""
    store = SQLAlchemyJobStore(url=f"sqlite:///{db}")
    scheduler = AsyncIOScheduler(jobstores={"default": store})
    tally = Tally()
    scheduler.add_listener(
        tally,
        EVENT_JOB_SUBMITTED
        | EVENT_JOB_EXECUTED
        | EVENT_JOB_MISSED
        | EVENT_JOB_ERROR
        | EVENT_JOB_MAX_INSTANCES,
    )
    scheduler.start()
    return scheduler, store, tally


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _check_setup(due: float, what: str) -> None:
    spare = due - time.time()
    if spare < 0.05:
        raise MeasurementError(
            f"set-up of {what} ended {-spare:.2f} s after the first due time (raise the margin)"
        )


def _check_errors(tally: Tally) -> None:
    if tally.errors:
        raise MeasurementError(f"runs of the graph failed: {tally.errors[0]}")


async def burst(workdir: Path, *, n: int, graph: str = "trivial", margin: float = 2.0) -> Result:
    """``n`` one-time (date) jobs due at the same moment; wait until every submitted run has
    ended (executed or missed) and no job is left in the store."""
    db = workdir / "baseline.db"
    due = time.time() + margin
    func = JOB_FUNCTIONS[graph]
    write_jobs(db, [(f"t{i}", func, "date", {"run_date": _at(due)}) for i in range(n)])
    scheduler, store, tally = _start(db)
    _check_setup(due, f"{n} jobs")
    await sleep_until(due)

    async def settled() -> bool:
        if tally.settled < len(tally.submitted):
            return False
        return await asyncio.to_thread(store.get_next_run_time) is None

    await wait_for(
        settled, timeout=60 + n * 0.02, what=f"{n} jobs to settle", progress=tally.progress
    )
    scheduler.shutdown(wait=False)
    _check_errors(tally)
    ran = len(tally.executed)
    figures: Result = {
        "n": n,
        "ran": ran,
        "missed": len(tally.missed),
        "dropped": n - ran - len(tally.missed),
        "notes": {},
        "partial": [],
    }
    if tally.submitted:
        figures.update(lateness([when - sched for when, sched in tally.submitted], "dispatch"))
    else:
        figures.update(dispatch_p50=None, dispatch_p99=None, dispatch_max=None)
    if len(tally.submitted) < n:
        note = f"{len(tally.submitted)}/{n} submitted"
        for key in ("dispatch_p50", "dispatch_p99", "dispatch_max"):
            figures["notes"][key] = note
            figures["partial"].append(key)
    if ran:
        finished = max(end for _, _, end in tally.executed) - due
        figures.update(finished=finished, rate=ran / finished)
        figures.update(lateness([start - sched for sched, start, _ in tally.executed], "start"))
    else:
        figures.update(finished=None, rate=None)
    if ran < n:
        note = f"{ran}/{n} ran"
        figures["notes"].update(
            finished=note, rate=note, start_p50=note, start_p99=note, start_max=note
        )
        figures["partial"] += ["finished", "rate", "start_p50", "start_p99", "start_max"]
    return figures


async def adds(workdir: Path, *, n: int) -> Result:
    """Jobs added per second with ``add_job`` one by one on a started scheduler (each commits).
    APScheduler 3 has no batch add; ``batch`` repeats the figure with a note."""
    scheduler, store, _ = _start(workdir / "baseline.db")
    at = datetime.now(UTC) + timedelta(hours=2)
    began = time.perf_counter()
    for i in range(n):
        scheduler.add_job(run_trivial, "date", run_date=at, id=f"t{i}", kwargs={"prompt": PROMPT})
    await asyncio.sleep(0)  # let the wake-ups add_job queued on the loop run
    rate = n / (time.perf_counter() - began)
    stored = len(store.get_all_jobs())
    scheduler.shutdown(wait=False)
    if stored != n:
        raise MeasurementError(f"added {n} jobs, the job store holds {stored}")
    note = "no batch API: add_job loop"
    return {"one_by_one": rate, "batch": rate, "notes": {"batch": note}, "partial": ["batch"]}


async def steady(
    workdir: Path, *, n: int, interval: float, duration: float, margin: float = 1.5
) -> Result:
    """``n`` interval jobs (first times spread over one interval) for ``duration`` s: runs
    due in the window, runs done, start lateness of the runs done."""
    db = workdir / "baseline.db"
    window = round(time.time() + margin, 3)
    offsets = spread(n, interval)
    write_jobs(
        db,
        [
            (
                f"s{i}",
                run_trivial,
                "interval",
                {"seconds": interval, "start_date": _at(window + offset)},
            )
            for i, offset in enumerate(offsets)
        ],
    )
    scheduler, _, tally = _start(db)
    _check_setup(window, f"{n} interval jobs")
    end = window + duration
    await sleep_until(end)
    await asyncio.sleep(0.5)  # runs due just before the end finish
    scheduler.shutdown(wait=False)
    _check_errors(tally)
    tolerance = interval / n / 2

    def inside(scheduled: float) -> bool:
        return window - tolerance <= scheduled < end - tolerance

    done = [(s, start) for s, start, _ in tally.executed if inside(s)]
    if not done:
        raise MeasurementError("no run was executed in the steady-state window")
    figures: Result = {
        "due": due_count(offsets, interval=interval, duration=duration),
        "done": len(done),
        "missed": sum(1 for s in tally.missed if inside(s)),
    }
    figures.update(lateness([start - s for s, start in done], "start"))
    figures.update(lateness([w - s for w, s in tally.submitted if inside(s)], "dispatch"))
    return figures


def seed(workdir: Path, *, db: str, n: int) -> Result:
    """Fill ``db`` with ``n`` interval jobs (hourly, first due in 2 to 3 hours)."""
    base = time.time() + 7200
    write_jobs(
        Path(db),
        [
            (
                f"p{i:06d}",
                run_trivial,
                "interval",
                {"seconds": 3600, "start_date": _at(base + i * 3600 / n)},
            )
            for i in range(n)
        ],
    )
    return {"seeded": n}


def arm(workdir: Path, *, db: str, due: int, step: float) -> Result:
    """Add ``due`` date jobs due from now on, ``step`` s apart (the first firings)."""
    now = time.time()
    write_jobs(
        Path(db),
        [
            (f"due{k:04d}", run_trivial, "date", {"run_date": _at(now + k * step)})
            for k in range(due)
        ],
    )
    return {"armed_at": now}


async def persisted(workdir: Path, *, db: str, spawned_at: float, expected: int) -> Result:
    """Start on a job store of ``expected`` jobs: seconds from the parent spawning this
    process to the first job function call, the time ``get_jobs()`` takes, peak RSS."""
    scheduler, _, tally = _start(db)

    async def first_run() -> bool:
        return bool(STARTED)

    await wait_for(
        first_run, timeout=120, what="the first job to run", interval=0.01, progress=tally.progress
    )
    first = min(STARTED)
    began = time.perf_counter()
    jobs = scheduler.get_jobs()
    listed = time.perf_counter() - began
    rss = peak_rss_mb()
    count = len(jobs)
    del jobs
    missed = len(tally.missed)
    scheduler.shutdown(wait=False)
    figures: Result = {
        "first_firing": first - spawned_at,
        "missed_at_start": missed,
        "list": listed,
        "listed": count,
        "rss": rss,
        "notes": {},
    }
    if missed:
        figures["notes"]["first_firing"] = "jobs due > 1 s before it were missed"
    return figures


# scenario 8 (bench/chains.py measures both sides)
from bench.chains import baseline_chain as chain  # noqa: E402

# scenarios 9 and 10 (bench/server_bench.py)
from bench.server_bench import reference_sdk as sdk  # noqa: E402
