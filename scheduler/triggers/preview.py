"""Listing a trigger's fire times (previews, ``next_run_times``), instant by instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger

from scheduler.limits import MAX_DATETIME

__all__ = ["fire_times"]

_ONE_MICROSECOND = timedelta(microseconds=1)


def fire_times(
    trigger: BaseTrigger,
    *,
    after: datetime,
    count: int | None = None,
    until: datetime | None = None,
) -> list[datetime]:
    """List fire times strictly after ``after``: the next ``count``, or all up to ``until``
    (fewer when they reach the end of the calendar, the year 9999).

    Args:
        trigger: Any APScheduler trigger.
        after: Fire times must be later than this.
        count: Stop after this many.
        until: Stop after this moment (inclusive).
    """
    if count is None and until is None:
        raise ValueError("fire_times needs count or until")
    # Compare and step instants in UTC, never wall times: two datetimes with the same tzinfo
    # compare by wall clock (01:00 on the second pass of a DST fall-back would sort before
    # 01:30 on the first), and ``local + 1 µs`` is wall-clock arithmetic (01:59:59.999999
    # EDT + 1 µs is 02:00 EST, an hour later).
    start = after.astimezone(UTC)
    now = start + _ONE_MICROSECOND
    until_utc = until.astimezone(UTC) if until is not None else None
    times: list[datetime] = []
    previous: datetime | None = None
    previous_utc: datetime | None = None
    retried = False
    while count is None or len(times) < count:
        try:
            moment: datetime | None = trigger.get_next_fire_time(previous, now)
        except (OverflowError, ValueError):
            if previous_utc is None or previous_utc < MAX_DATETIME:
                raise  # (the trigger's own error, within the years a task may fire in)
            break  # past the year 9999: no datetime holds the next one
        if moment is None:
            break
        moment_utc = moment.astimezone(UTC)
        if until_utc is not None and moment_utc > until_utc:
            break
        if previous_utc is not None and moment_utc <= previous_utc:
            # The trigger did not advance. A one-time trigger is done; any other gets one
            # more try from just after its previous fire time, and the repeat is dropped.
            if isinstance(trigger, DateTrigger) or retried:
                break
            retried = True
            previous = previous_utc + _ONE_MICROSECOND
            continue
        retried = False
        if moment_utc > start:
            times.append(moment)
        previous, previous_utc = moment, moment_utc
        if moment_utc > now:
            now = moment_utc
    return times
