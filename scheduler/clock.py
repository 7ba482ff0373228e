"""Time, as the scheduler reads it: a clock gives the current UNIX time and runs a callback
at a given time. :class:`SystemClock` is the wall clock and the event loop's timers;
:class:`scheduler.testing.TestClock` is one a test moves by hand."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "DatabaseClock", "SystemClock", "Timer", "call_at"]

logger = logging.getLogger(__name__)


class Timer(Protocol):
    """What :meth:`Clock.call_at` returns."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """``clock()`` is the current UNIX time; ``call_at`` runs a callback at a UNIX time."""

    def __call__(self) -> float: ...

    def call_at(self, when: float, callback: Any, *args: Any) -> Timer: ...


class SystemClock:
    """The wall clock (``time.time``), with the running event loop's timers."""

    def __call__(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Any, *args: Any) -> Timer:
        delay = max(0.0, when - time.time())
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class DatabaseClock:
    """The database's time: this machine's clock plus its offset from the database server's,
    measured at first use and then now and then (:meth:`measure`), so that every process of
    a PostgreSQL fleet (the leader, a standby, workers, the CLI) stamps and judges times
    alike whatever its machine's clock says. While the database cannot be read the offset
    is the last one measured (0 at first).

    Args:
        read: The database's UNIX time (one query).
        machine: This machine's clock.
    """

    EVERY = 10.0  # seconds between measures that the supervisor's poll asks for
    _NOISE = 0.01  # a smaller change is the round trip's noise: the clock does not move
    SLOW = 0.5  # a reading with a longer round trip is not trusted (see take)

    def __init__(self, read: Callable[[], float], machine: Callable[[], float] = time.time):
        self._read = read
        self._machine = machine
        self.offset = 0.0
        self.measured_at: float | None = None  # machine time of the last measure
        self._taken = False  # an offset was measured

    def __call__(self) -> float:
        if self.measured_at is None:
            try:
                self.measure()
            except Exception as exc:  # the next measure the supervisor asks for retries
                logger.debug("cannot read the database's time: %s", exc)
        return self._machine() + self.offset

    def due(self) -> bool:
        """It is time to measure again."""
        at = self.measured_at
        return at is None or abs(self._machine() - at) >= self.EVERY

    def measure(self) -> None:
        """Read the database's time twice and keep the offset of the read with the shorter
        round trip (the first may include opening a connection: half of that would be
        taken for the offset). A failed read keeps the last offset; the error is the
        caller's."""
        self.measured_at = self._machine()  # a failing database is not asked again at once
        samples: list[tuple[float, float, float]] = []
        try:
            for _ in range(2):
                before = self._machine()
                database_now = self._read()
                samples.append((before, database_now, self._machine()))
        finally:  # a second read that fails leaves the first
            if samples:
                self.take(*min(samples, key=lambda sample: sample[2] - sample[0]))

    def take(self, before: float, database_now: float, after: float) -> None:
        """Keep the offset of one reading of the database's time, made between ``before``
        and ``after`` (machine time): a measure's, or one a query brought anyway (a
        worker's heartbeat). One whose round trip took over :attr:`SLOW` seconds is
        ignored once an offset is known: it may be off by half of it (a heartbeat that
        waited a few seconds for a lock moved the clock seconds ahead)."""
        if after - before > self.SLOW and self._taken:
            return
        self._taken = True
        offset = database_now - (before + after) / 2
        if abs(offset - self.offset) > 1.0:
            logger.warning(
                "this machine's clock is %+.1f s off the database's; the scheduler keeps "
                "the database's time",
                -offset,
            )
        if abs(offset - self.offset) > self._NOISE:
            self.offset = offset
        self.measured_at = self._machine()


def call_at(clock: Any, when: float, callback: Any, *args: Any) -> Timer:
    """``clock.call_at(...)`` for a clock that has it; the event loop's timer for a plain
    time function (such as ``time.time``)."""
    schedule = getattr(clock, "call_at", None)
    if schedule is not None:
        timer: Timer = schedule(when, callback, *args)
        return timer
    delay = max(0.0, when - clock())
    return asyncio.get_running_loop().call_later(delay, callback, *args)
