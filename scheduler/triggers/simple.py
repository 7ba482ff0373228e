"""APScheduler's own interval and one-time triggers, built the way tasks need them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo
from math import ceil, floor
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["GridIntervalTrigger", "NeverTrigger", "date_trigger", "interval_trigger", "zone"]

# Seconds of rounding a fire time may carry (float timestamps, microseconds), with room: a
# grid time drawn after, read back, is not taken for the one before, nor the delay's end
# for the next one (the shortest interval is 1 ms).
_SLACK = 2e-6


class GridIntervalTrigger(IntervalTrigger):  # type: ignore[misc]
    """APScheduler's interval trigger with its jitter kept off the grid: each fire time is
    a grid time (``start_date`` plus a whole number of intervals) plus a random delay of up
    to ``jitter`` seconds. APScheduler adds the interval to the previous fire time, jitter
    included, so the delays add up: hourly runs with 15 minutes' jitter drifted by about
    7.5 minutes an hour and lost an occurrence every 8 hours. The delay ends short of the
    next grid time, so the next fire time is the grid time after the one the previous was
    drawn after: none is skipped (a task's ``jitter_seconds`` is below its interval; a
    stored one that is not gets delays of less than an interval)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if not self.jitter:
            found: Any = super().get_next_fire_time(previous_fire_time, now)
            return found  # type: ignore[no-any-return]
        start, length = self.start_date.timestamp(), self.interval_length
        if previous_fire_time is not None:  # the grid time it was drawn after, then the next
            since = previous_fire_time.timestamp() - start + _SLACK
            grid = start + (floor(since / length) + 1) * length
        elif self.start_date > now:
            grid = start
        else:
            grid = start + ceil((now.timestamp() - start) / length) * length
        # the grid time is what end_date bounds (APScheduler bounded it with the delay added,
        # and dropped the last occurrences with some probability)
        if self.end_date is not None and grid > self.end_date.timestamp():
            return None
        delay = random.uniform(0, min(self.jitter, length - 2 * _SLACK))
        return datetime.fromtimestamp(grid + delay, tz=self.timezone)


def interval_trigger(
    seconds: float,
    *,
    timezone: tzinfo,
    anchor: datetime,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    jitter: float | None = None,
) -> GridIntervalTrigger:
    """Build an interval trigger whose first fire time is ``start_date`` or ``anchor + seconds``.

    ``anchor`` is when the schedule was set (stored with the task), so that rebuilding the
    trigger after a restart keeps the same grid of fire times.
    """
    first = start_date if start_date is not None else anchor + timedelta(seconds=seconds)
    return GridIntervalTrigger(
        seconds=seconds,
        start_date=first,
        end_date=end_date,
        timezone=timezone,
        jitter=jitter,
    )


def date_trigger(run_at: datetime, *, timezone: tzinfo) -> DateTrigger:
    """Build a one-time trigger."""
    return DateTrigger(run_date=run_at, timezone=timezone)


class NeverTrigger(BaseTrigger):  # type: ignore[misc]
    """The trigger of a task with no clock (one that runs only after other tasks)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return None

    def __repr__(self) -> str:
        return "<NeverTrigger>"


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` (raises ``ZoneInfoNotFoundError``)."""
    return ZoneInfo(name)
