"""The run log's fence (the active scheduler's epoch, on PostgreSQL): a write it refuses is
dropped, and a run's start waiting for that write is never told it was made, also by a later
flush with nothing to write; letting go of the run cancels the wait."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import pytest

from scheduler.enums import RunStatus
from scheduler.exceptions import LeadershipLostError
from scheduler.rows import queued_run
from scheduler.runlog import RunLog
from scheduler.storage import Store, Transaction


async def test_a_start_the_fence_refused_is_never_told_it_was_made() -> None:
    store = Store("sqlite://")
    store.setup()
    with store.transaction() as tx:
        tx.insert_runs([queued_run("r" * 24, "t", scheduled_for=1.0, queued_at=1.0)])
    log = RunLog(store, interval=0.01)
    refusing = True

    def fence() -> Callable[[Transaction], None]:
        def check(_: Transaction) -> None:
            if refusing:
                raise LeadershipLostError("another scheduler process became active")

        return check

    log.fence = fence
    log.start()
    start = asyncio.ensure_future(log.commit("r" * 24, status=RunStatus.RUNNING, started_at=2.0))
    await asyncio.sleep(0.3)  # refused, then background flushes with nothing to write
    log.flush()  # as a read through the API does
    await asyncio.sleep(0.05)
    assert not start.done(), "a start the fence refused was told it was made"
    [run] = store.list_runs(task_id="t")
    assert run.status == "queued"  # nothing written
    refusing = False
    log.flush()  # the refused write is not made later either: it was dropped
    await asyncio.sleep(0.05)
    assert not start.done() and store.list_runs(task_id="t")[0].status == "queued"
    log.abandon({"r" * 24})  # the supervisor lets go of the run
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(start, timeout=1)
    await log.close()


async def test_a_refusal_after_the_runs_were_let_go_of_cancels_at_once() -> None:
    # a flush in flight when the supervisor let go of the runs is refused after that: its
    # starts are not kept for a let-go that has passed (they waited for ever); and a
    # refused start left at close is cancelled
    store = Store("sqlite://")
    store.setup()
    log = RunLog(store)
    entered, release = threading.Event(), threading.Event()

    def fence() -> Callable[[Transaction], None]:
        def check(_: Transaction) -> None:
            entered.set()
            release.wait(5)
            raise LeadershipLostError("another scheduler process became active")

        return check

    log.fence = fence
    log.start()
    start = asyncio.ensure_future(log.commit("r" * 24, status=RunStatus.RUNNING, started_at=2.0))
    await asyncio.to_thread(entered.wait, 5)  # the flush holds the batch, in its transaction
    log.abandon({"r" * 24})  # let go of meanwhile
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(start, timeout=2)

    entered.clear()
    later = asyncio.ensure_future(log.commit("s" * 24, status=RunStatus.RUNNING, started_at=3.0))
    await asyncio.to_thread(entered.wait, 5)
    await asyncio.sleep(0.1)  # refused, kept for a let-go to come
    assert not later.done()
    with contextlib.suppress(LeadershipLostError):
        await log.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(later, timeout=2)
