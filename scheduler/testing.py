"""Testing scheduled agents without sleeping: a scheduler on a clock the test moves.

    from scheduler.testing import clocked_scheduler

    async def test_standup_reminders_fire_on_weekdays() -> None:
        async with clocked_scheduler(graph=my_graph, start="2026-03-23T00:00:00+01:00") as (
            scheduler,
            clock,
        ):
            scheduler.add_task(TaskDefinition(id="standup", schedule="weekdays at 09:00",
                                              timezone="Europe/Paris", prompt="Standup!"))
            runs = await clock.advance(days=7)
            assert [run.scheduled_for for run in runs] == [...]

:class:`TestClock` is the scheduler's clock: it does not move by itself. ``await
clock.advance(...)`` moves it to each due time in the span in turn (every occurrence of
every task, every retry delay, every waiting timeout), dispatches what is due at that
moment and lets those runs finish (real graph calls, real run records: they take no
virtual time) before it moves on, so the runs happen in order, each at its own time, and
the outcome is the same every time. It returns the runs that finished during the advance.

The scheduler is a real :class:`~scheduler.TaskScheduler`, on an in-memory database by
default (``db_path=`` for a file), with the settings given as keywords.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.events import EventBus
from scheduler.records import RunRecord
from scheduler.schedules import VALIDATION_CLOCK
from scheduler.settings import Settings
from scheduler.storage import MAX_TIMESTAMP
from scheduler.task_scheduler import TaskScheduler

__all__ = ["LISTENER_WAIT", "SLOW_ADVANCE", "TestClock", "clocked_scheduler"]

logger = logging.getLogger(__name__)

#: Seconds of real time an advance waits for an async run event listener at each stop.
LISTENER_WAIT = 10.0
#: Seconds of real time after which an advance says it is still going (then twice that).
SLOW_ADVANCE = 30.0


class _Timer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Any, args: tuple[Any, ...]) -> None:
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TestClock:
    """A clock that moves only when told (see the module docstring).

    Args:
        start: The time it shows at first (aware datetime, ISO 8601 text, or UNIX seconds).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime | str | float = "2030-01-01T00:00:00Z") -> None:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("start must be timezone-aware (or end in Z / +HH:MM)")
            start = start.timestamp()
        self._now = _within_range(float(start))
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._scheduler: TaskScheduler | None = None
        self._reported: set[str] = set()  # runs an advance has returned (or found there)
        self._let_go: set[asyncio.Task[Any]] = set()  # listeners it waited for long enough

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> datetime:
        """The time it shows, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)

    def call_at(self, when: float, callback: Any, *args: Any) -> _Timer:
        """Run ``callback(*args)`` when the clock reaches ``when`` (during an advance)."""
        timer = _Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def attach(self, scheduler: TaskScheduler) -> None:
        """The scheduler whose due tasks :meth:`advance` dispatches (the runs it has
        finished already are not returned by :meth:`advance`)."""
        self._scheduler = scheduler
        self._reported = {run.id for run in scheduler.list_runs(limit=None) if run.status.is_final}

    async def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> list[RunRecord]:
        """Move the clock forward by ``delta`` (or the keywords), firing everything due on
        the way at its own time; returns the runs that finished since the last advance
        (also those that finished between the two, run_task_now's say), by time."""
        span = _span(delta, days=days, hours=hours, minutes=minutes, seconds=seconds)
        scheduler = self._require()
        target = _within_range(self._now + span.total_seconds())
        watch = asyncio.get_running_loop().create_task(self._watch(target))
        try:
            await self._move(target)
        finally:
            watch.cancel()
        finished = [
            run
            for run in scheduler.list_runs(limit=None)
            if run.status.is_final and run.id not in self._reported
        ]
        self._reported.update(run.id for run in finished)
        return sorted(finished, key=lambda run: (run.scheduled_for, run.id))

    async def _move(self, target: float) -> None:
        await self._settle()
        while True:
            upcoming = [t for t in (self._next_due(), self._next_timer()) if t is not None]
            if not upcoming or min(upcoming) > target:
                break
            self._now = max(self._now, min(upcoming))
            self._fire_timers()
            await self._settle()
        self._now = target
        self._fire_timers()
        await self._settle()

    async def _watch(self, target: float) -> None:
        """Say so, now and then, while an advance takes long (in real time)."""
        began, wait = time.monotonic(), SLOW_ADVANCE
        while True:
            await asyncio.sleep(wait)
            logger.warning(
                "clock.advance has taken %.0f s of real time so far; the clock shows %s, on "
                "its way to %s. Each due time is a real graph call: a long span of a frequent "
                "task takes long (advance in smaller spans), and runs that start runs due at "
                "once keep the clock where it is",
                time.monotonic() - began,
                self.now.isoformat(),
                datetime.fromtimestamp(target, UTC).isoformat(),
            )
            wait *= 2

    def pass_time(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> None:
        """Move the clock forward without firing anything: downtime, while the scheduler
        is stopped (``await scheduler.stop()``, ``clock.pass_time(hours=2)``,
        ``scheduler.start()``, ``await clock.advance()``: the catch-up happens then)."""
        span = _span(delta, days=days, hours=hours, minutes=minutes, seconds=seconds)
        self._now = _within_range(self._now + span.total_seconds())

    async def advance_to(self, moment: datetime) -> list[RunRecord]:
        """Move the clock to ``moment``, an aware datetime not before :attr:`now` (see
        :meth:`advance`)."""
        if moment.tzinfo is None:  # (a naive one would be read in the machine's zone)
            raise ValueError("moment must be timezone-aware")
        if moment < self.now:  # (to the microsecond: the sum of advances is a float)
            raise ValueError(f"a clock only moves forward: it shows {self.now.isoformat()}")
        return await self.advance(timedelta(seconds=max(0.0, moment.timestamp() - self._now)))

    # -- inside --------------------------------------------------------------------------

    def _require(self) -> TaskScheduler:
        if self._scheduler is None or self._scheduler._supervisor is None:
            raise RuntimeError("the clock's scheduler is not started (use clocked_scheduler())")
        return self._scheduler

    def _next_due(self) -> float | None:
        supervisor = self._require()._supervisor
        assert supervisor is not None
        if not supervisor.active:  # standing by: the active scheduler's tasks are not its own
            return None
        return supervisor.store.next_run_time(exclude=supervisor.dispatcher.broken.keys())

    def _next_timer(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _fire_timers(self) -> None:
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback(*timer.args)

    async def _settle(self) -> None:
        """Dispatch what is due now and let every run that starts finish, and what the
        async run event listeners do (an answer to a waiting run, a task added)."""
        supervisor = self._require()._supervisor
        assert supervisor is not None
        if not supervisor.active:  # standing by (another scheduler holds the database)
            return
        runner = supervisor.runner
        for _ in range(10_000):
            while supervisor.dispatcher._dispatch(wait=True):
                pass
            await asyncio.sleep(0)  # runs accepted by the dispatch start
            if runner._running or runner._expiring:
                await runner.settle()
                self._fire_timers()
                continue
            if await self._listened(supervisor.events):
                continue
            # the flush writes final outcomes and queues the runs that follow them. Its
            # thread may come back late, after runs it queued have run and ended; another
            # flush (the background one) may hold outcomes still: the round ends once none
            # is left unfollowed, nor a hand-over not yet taken by the runner, whatever
            # the threads' speed (a wait for a number of loop turns lost day 1's follow-up
            # to day 2 on a busy machine)
            await supervisor.run_log.aflush()
            if supervisor.run_log.unfollowed or supervisor.followers.delivering:
                continue
            if not runner._running and not self._listening(supervisor.events):
                break

    def _listening(self, events: EventBus) -> set[asyncio.Task[Any]]:
        if self._let_go:
            self._let_go = {task for task in self._let_go if not task.done()}
        return {task for task in events._tasks if task not in self._let_go}

    async def _listened(self, events: EventBus) -> bool:
        """Wait for the async listeners still going (up to :data:`LISTENER_WAIT` seconds
        of real time, then the clock moves on without them, and says so); False if none."""
        going = self._listening(events)
        if not going:
            return False
        _, late = await asyncio.wait(going, timeout=LISTENER_WAIT)
        if late:
            self._let_go.update(late)
            logger.warning(
                "%d async run event listener(s) still going after %g s of real time; the "
                "test clock moves on without them (at %s)",
                len(late),
                LISTENER_WAIT,
                self.now.isoformat(),
            )
        return True


def _span(delta: timedelta | None, **parts: float) -> timedelta:
    """How far to move: ``delta`` or the keywords (not both), never backwards."""
    if delta is not None and any(parts.values()):
        given = ", ".join(f"{name}={value:g}" for name, value in parts.items() if value)
        raise TypeError(f"give a timedelta or {given}, not both")
    span = timedelta(**parts) if delta is None else delta
    if span < timedelta(0):
        raise ValueError("a clock only moves forward")
    return span


def _within_range(timestamp: float) -> float:
    """``timestamp``, if it is a time the scheduler stores (1970 to 3000): a record made
    on a clock past them could not be read back."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(
            "a test clock shows times from 1970 to 3000-01-01T00:00:00Z (the times the "
            f"scheduler stores), not {timestamp:.0f} (UNIX seconds)"
        )
    return timestamp


@asynccontextmanager
async def clocked_scheduler(
    *,
    graph: Any,
    start: datetime | str | float = "2030-01-01T00:00:00Z",
    db_path: str | Path | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[TaskScheduler, TestClock]]:
    """A started :class:`~scheduler.TaskScheduler` on a :class:`TestClock` (in memory, or
    on ``db_path``), stopped and closed at the end. ``settings`` are
    :class:`~scheduler.Settings` fields (``timezone="Europe/Paris"``, ``max_retries=2``);
    nothing is read from the environment or ``.env``."""
    clock = TestClock(start)
    values: dict[str, Any] = {"tasks_file": None, "gc_freeze": False, **settings}
    options = Settings.model_validate(values)
    scheduler = TaskScheduler(
        db_path is not None,
        db_path or "scheduler.db",
        graph=graph,
        settings=options,
        clock=clock,
    )
    clock.attach(scheduler)
    # history is pruned only when the test asks (prune_history): in the background it
    # would run on the wall clock's polls, and what an advance returns would depend on
    # how fast the machine is (after a stop() and start() too)
    scheduler._background_prune = False
    # "in 30 minutes": of this clock, in the block and in the runs (which see the context
    # of the scheduler's start, whatever starts them)
    counting = VALIDATION_CLOCK.set(lambda: clock.now)
    try:
        scheduler.start()
        await clock._settle()
        yield scheduler, clock
    finally:
        with contextlib.suppress(ValueError):  # (closed from another context)
            VALIDATION_CLOCK.reset(counting)
        await scheduler.stop(grace_seconds=0)
        scheduler.close()
