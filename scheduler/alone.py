"""One run in this process, with no scheduler started: ``run --wait`` and ``answer
--wait`` when nothing else runs on the database (:meth:`~scheduler.TaskScheduler.run_task_here`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from scheduler.events import EventBus
from scheduler.exceptions import SchedulerError
from scheduler.leader import leader_lock_for
from scheduler.pending import PendingRun
from scheduler.runlog import Follow, RunLog
from scheduler.runner import Runner
from scheduler.settings import Settings
from scheduler.storage import Store

__all__ = ["run_alone"]


async def run_alone(
    *,
    store: Store,
    settings: Settings,
    graph: Callable[[], Any],
    prepare: Callable[[], PendingRun],
    timeout: float | None,
    clock: Callable[[], float] = time.time,
    events: EventBus | None = None,
    follow: Follow | None = None,
) -> None:
    """Run what ``prepare`` records (a queued run, an answer) and returns (and its retries)
    in this process without dispatching anything else, holding the leader lock meanwhile so
    that no scheduler starts dispatching beside it. ``prepare`` is called once the lock is
    held: refused, nothing is written (a run queued or an answer recorded before would be
    taken up by the other scheduler while the caller is told it was refused).
    ``follow`` queues, with its final outcome, the runs of the tasks that run after it
    (recorded ``queued``: the scheduler starts them, as it does any queued run).

    Raises:
        SchedulerError: Another scheduler is active on the database; ``prepare`` was not
            called.
        TimeoutError: The run (with its retries) took longer than ``timeout``; it was
            cancelled (recorded ``cancelled``).
    """
    lock = leader_lock_for(store)
    if not lock.try_acquire():
        raise SchedulerError(
            f"another scheduler ({lock.holder()}) is active on {store.display_url}; "
            "nothing was queued or answered; do it there (run_task_now, resume_run) instead"
        )
    try:
        pending = prepare()
    except BaseException:
        lock.release()
        raise
    run_log = RunLog(store)
    run_log.follow = follow
    runner = Runner(settings=settings, run_log=run_log, graph=graph, clock=clock, events=events)
    try:
        run_log.start()
        runner.submit(pending)
        async with asyncio.timeout(timeout):
            await runner.wait_idle()
    finally:
        await runner.stop(0)
        await run_log.close()
        lock.release()
