"""Small measuring helpers shared by every side: percentiles, peak RSS, waiting, errors.

Kept free of heavy imports: the workers import it before the side they measure, and start-up
time is part of what scenario 5 measures.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = [
    "MeasurementError",
    "Result",
    "due_count",
    "lateness",
    "peak_rss_mb",
    "percentile",
    "sleep_until",
    "spread",
    "wait_for",
]

Result = dict[str, Any]
"""What a measurement returns: figures by key (JSON-ready), plus ``notes`` by key."""


class MeasurementError(RuntimeError):
    """A figure could not be measured (a timeout, runs not all recorded, a set-up overrun).

    The bench stops with this message instead of printing a number it did not measure.
    """


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile ``pct`` (0-100] of ``values``.

    Raises:
        MeasurementError: ``values`` is empty.
    """
    if not values:
        raise MeasurementError(f"no values to take the p{pct:g} of")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def lateness(delays: Sequence[float], prefix: str) -> Result:
    """p50, p99 and max of ``delays`` (seconds) as ``<prefix>_p50`` etc."""
    return {
        f"{prefix}_p50": percentile(delays, 50),
        f"{prefix}_p99": percentile(delays, 99),
        f"{prefix}_max": max(delays),
    }


def spread(n: int, interval: float) -> list[float]:
    """Offsets of ``n`` first fire times spread evenly over one ``interval``."""
    return [i * interval / n for i in range(n)]


def due_count(offsets: Sequence[float], *, interval: float, duration: float) -> int:
    """Occurrences due in ``[0, duration)`` of interval schedules first due at ``offsets``.

    Fire times on the window's end belong to the next window (half a spacing of tolerance
    absorbs float and microsecond rounding).
    """
    tolerance = interval / max(1, len(offsets)) / 2
    return sum(max(0, math.ceil((duration - tolerance - offset) / interval)) for offset in offsets)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def sleep_until(moment: float) -> None:
    """Sleep until UNIX time ``moment`` (at once if it has passed)."""
    delay = moment - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    progress: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` until it returns True.

    Raises:
        MeasurementError: Still False after ``timeout`` seconds (with ``progress()``).
    """
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            state = f" ({progress()})" if progress is not None else ""
            raise MeasurementError(f"timed out after {timeout:g} s waiting for {what}{state}")
        await asyncio.sleep(interval)
