"""Scenario 8, workflows: a chain (each step after the one before) and a fan-out (many
tasks after one), on both sides.

Ours: tasks with ``after``; the root is a one-time task. The baseline is the hand-rolled
recipe: an ``EVENT_JOB_EXECUTED`` listener on the classic ``AsyncIOScheduler`` +
``SQLAlchemyJobStore`` that ``add_job``-s each dependant as a date job due now (APScheduler's
default job settings, so a dependant that waits more than the 1 s misfire grace is missed).
The figure is the hand-off: an upstream run's end to its downstream run's start (ours: the
run records' ``finished_at`` / ``started_at``; the baseline: the job function's own clock).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.measure import MeasurementError, Result, lateness, sleep_until, wait_for

__all__ = ["baseline_chain", "ours_chain", "plan_links"]


def plan_links(length: int, fanout: int) -> dict[str, str]:
    """downstream -> upstream: ``s1 .. s{length-1}`` in a line after ``root``, or
    ``f0 .. f{fanout-1}`` all after ``root``."""
    if length:
        return {f"s{i}": "root" if i == 1 else f"s{i - 1}" for i in range(1, length)}
    return {f"f{i}": "root" for i in range(fanout)}


def _figures(
    expected: int, ran: int, handoffs: list[float], *, other: Counter[str] | None = None
) -> Result:
    figures: Result = {"expected": expected, "ran": ran, "missed": expected - ran}
    if handoffs:
        figures.update(lateness(handoffs, "handoff"))
    else:  # the recipe missed every one: no hand-off to time
        figures.update(handoff_p50=None, handoff_p99=None, handoff_max=None)
    if ran < expected:
        note = f"{ran}/{expected} ran" + (f" ({dict(other)})" if other else "")
        figures["notes"] = {k: note for k in ("handoff_p50", "handoff_p99", "handoff_max")}
        figures["partial"] = list(figures["notes"])
    return figures


async def ours_chain(
    workdir: Path, *, length: int = 0, fanout: int = 0, margin: float = 1.0
) -> Result:
    """This project: ``root`` (one-time, due after ``margin``), then the tasks after it."""
    from bench.ours import PROMPT, _at, _graph, _settings, _ts
    from scheduler import RunStatus, TaskDefinition, TaskScheduler

    links = plan_links(length, fanout)
    scheduler = TaskScheduler(
        db_path=workdir / "ours.db",
        graph=_graph("trivial"),
        settings=_settings(max_concurrent_runs=max(100, fanout)),
    )
    due = time.time() + margin
    tasks = [TaskDefinition(id="root", run_at=_at(due), prompt=PROMPT)]
    tasks += [TaskDefinition(id=d, after=u, prompt=PROMPT) for d, u in links.items()]
    scheduler.add_tasks(tasks)
    scheduler.start()
    await sleep_until(due)
    counts: dict[str, int] = {}

    async def all_final() -> bool:
        counts.update(await asyncio.to_thread(scheduler.count_runs))
        return sum(v for k, v in counts.items() if RunStatus(k).is_final) >= len(tasks)

    await wait_for(
        all_final, timeout=60 + len(tasks) * 0.05, what="every step", progress=counts.__repr__
    )
    await scheduler.stop()
    runs = scheduler.list_runs(limit=None)
    scheduler.close()
    ended = {r.id: _ts(r.finished_at) for r in runs if r.status is RunStatus.SUCCEEDED}
    handoffs = [
        _ts(r.started_at) - ended[next(iter(r.upstream.values()))["run_id"]]
        for r in runs
        if r.upstream and r.status is RunStatus.SUCCEEDED
    ]
    other = Counter(r.status.value for r in runs if r.status is not RunStatus.SUCCEEDED)
    if other:
        raise MeasurementError(f"runs that did not succeed: {dict(other)}")
    ran = sum(1 for r in runs if r.task_id != "root" and r.status is RunStatus.SUCCEEDED)
    return _figures(len(links), ran, handoffs, other=other)


# -- the hand-rolled recipe -----------------------------------------------------------------

_DEPENDANTS: dict[str, list[str]] = {}
_TIMES: dict[str, tuple[float, float]] = {}  # task id -> (start, end) of its job call


async def run_step(task_id: str) -> tuple[str, float, float]:
    """The job function: call the trivial graph; return the task id, start and end."""
    from bench.workloads import graph

    started = time.time()
    await graph.ainvoke({"messages": [{"role": "user", "content": "hi"}]})
    return task_id, started, time.time()


async def baseline_chain(
    workdir: Path, *, length: int = 0, fanout: int = 0, margin: float = 1.0
) -> Result:
    """The recipe: each executed job's listener adds its dependants as date jobs due now."""
    import logging

    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bench.baseline import _at

    logging.getLogger("apscheduler.executors.default").setLevel(logging.ERROR)  # missed runs
    links = plan_links(length, fanout)
    _DEPENDANTS.clear()
    _TIMES.clear()
    for downstream, upstream in links.items():
        _DEPENDANTS.setdefault(upstream, []).append(downstream)
    store = SQLAlchemyJobStore(url=f"sqlite:///{workdir / 'baseline.db'}")
    scheduler = AsyncIOScheduler(jobstores={"default": store})
    missed: list[str] = []
    errors: list[str] = []
    added = [1]  # the root

    def listener(event: Any) -> None:
        if event.code == EVENT_JOB_MISSED:
            missed.append(event.job_id)
            return
        if event.code == EVENT_JOB_ERROR:
            errors.append(repr(event.exception))
            return
        task_id, started, ended = event.retval
        _TIMES[task_id] = (started, ended)
        for downstream in _DEPENDANTS.get(task_id, []):
            added[0] += 1
            scheduler.add_job(
                run_step, "date", run_date=_at(time.time()), id=downstream, args=[downstream]
            )

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    scheduler.start()
    due = time.time() + margin
    scheduler.add_job(run_step, "date", run_date=_at(due), id="root", args=["root"])
    await sleep_until(due)

    async def settled() -> bool:  # every job added has ended (ran or missed), none is left
        if len(_TIMES) + len(missed) + len(errors) < added[0]:
            return False
        return await asyncio.to_thread(store.get_next_run_time) is None

    await wait_for(settled, timeout=60 + len(links) * 0.05, what="every step")
    scheduler.shutdown(wait=False)
    if errors:
        raise MeasurementError(f"runs of the graph failed: {errors[0]}")
    handoffs = [
        _TIMES[d][0] - _TIMES[u][1] for d, u in links.items() if d in _TIMES and u in _TIMES
    ]
    ran = sum(1 for d in links if d in _TIMES)
    return _figures(
        len(links), ran, handoffs, other=Counter(missed=len(missed)) if missed else None
    )
