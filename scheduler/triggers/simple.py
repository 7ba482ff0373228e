"""APScheduler's own interval and one-time triggers, built the way tasks need them."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["NeverTrigger", "date_trigger", "interval_trigger", "zone"]


def interval_trigger(
    seconds: float,
    *,
    timezone: tzinfo,
    anchor: datetime,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    jitter: float | None = None,
) -> IntervalTrigger:
    """Build an interval trigger whose first fire time is ``start_date`` or ``anchor + seconds``.

    ``anchor`` is when the schedule was set (stored with the task), so that rebuilding the
    trigger after a restart keeps the same grid of fire times.
    """
    first = start_date if start_date is not None else anchor + timedelta(seconds=seconds)
    return IntervalTrigger(
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
