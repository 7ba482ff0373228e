"""Time, as the scheduler reads it: a clock gives the current UNIX time and runs a callback
at a given time. :class:`SystemClock` is the wall clock and the event loop's timers;
:class:`scheduler.testing.TestClock` is one a test moves by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

__all__ = ["Clock", "SystemClock", "Timer", "call_at"]


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


def call_at(clock: Any, when: float, callback: Any, *args: Any) -> Timer:
    """``clock.call_at(...)`` for a clock that has it; the event loop's timer for a plain
    time function (such as ``time.time``)."""
    schedule = getattr(clock, "call_at", None)
    if schedule is not None:
        timer: Timer = schedule(when, callback, *args)
        return timer
    delay = max(0.0, when - clock())
    return asyncio.get_running_loop().call_later(delay, callback, *args)
