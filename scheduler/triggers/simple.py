"""APScheduler's own interval and one-time triggers, built the way tasks need them."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from math import floor
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["GridIntervalTrigger", "NeverTrigger", "date_trigger", "interval_trigger", "zone"]


class GridIntervalTrigger(IntervalTrigger):  # type: ignore[misc]
    """APScheduler's interval trigger with its jitter kept off the grid: each fire time is
    a grid time (``start_date`` plus a whole number of intervals) plus a random delay of up
    to ``jitter`` seconds. APScheduler adds the interval to the previous fire time, jitter
    included, so the delays add up: hourly runs with 15 minutes' jitter drifted by about
    7.5 minutes an hour and lost an occurrence every 8 hours. A jitter of an interval or
    more skips grid times (the next fire time follows the grid time the previous one was
    drawn after, or a later one)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None and self.jitter:
            start, length = self.start_date.timestamp(), self.interval_length
            steps = floor((previous_fire_time.timestamp() - start) / length + 1e-9)
            previous_fire_time = datetime.fromtimestamp(start + steps * length, tz=self.timezone)
        found: Any = super().get_next_fire_time(previous_fire_time, now)
        return found  # type: ignore[no-any-return]


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
