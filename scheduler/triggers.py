"""APScheduler triggers for task definitions, with standard cron semantics.

:func:`build_trigger` turns a :class:`~scheduler.models.TaskDefinition`'s schedule into an
APScheduler 3 trigger. Cron schedules become :class:`StandardCronTrigger`, which wraps
APScheduler's ``CronTrigger`` and fixes what differs from standard cron:

* weekdays are translated to names (``1-5`` is ``mon..fri``, ``0`` and ``7`` are ``sun``);
* when both day fields are restricted, two ``CronTrigger`` objects are combined so that a day
  matches if either matches (Vixie cron);
* daylight saving time: a wall-clock time inside the spring-forward gap fires once, shifted
  forward by the gap (02:30 becomes 03:30); a time inside the repeated fall-back hour fires
  once, on its first pass, unless the hour field starts with ``*`` (``*/15 * * * *`` keeps
  firing every 15 minutes of real time through both passes), as Vixie cron does.

Everything here is pure: ``now`` is always passed in.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.cron import CronSpec, parse_cron

__all__ = ["StandardCronTrigger", "fire_times", "localize"]

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ONE_MICROSECOND = timedelta(microseconds=1)


def localize(value: datetime, zone: tzinfo) -> datetime:
    """Return ``value`` as an aware datetime; a naive one is read as wall time in ``zone``."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value


class StandardCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A trigger with standard (Vixie) cron semantics on top of APScheduler's ``CronTrigger``.

    Args:
        spec: The parsed expression.
        timezone: Zone in which the expression's wall-clock times are read.
        start_date: Earliest possible fire time (inclusive).
        end_date: Latest possible fire time (inclusive).
        jitter: Delay each fire time by a random 0..``jitter`` seconds.
    """

    __slots__ = ("_inner", "jitter", "spec", "timezone")

    def __init__(
        self,
        spec: CronSpec,
        *,
        timezone: tzinfo,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        jitter: float | None = None,
    ) -> None:
        self.spec = spec
        self.timezone = timezone
        self.jitter = jitter
        common: dict[str, Any] = {
            "second": "0",
            "minute": _join(spec.minutes),
            "hour": _join(spec.hours),
            "month": _join(spec.months),
            "start_date": start_date,
            "end_date": end_date,
            "timezone": timezone,
        }
        days = _join(spec.days) if spec.day_restricted or len(spec.days) < 31 else "*"
        weekdays = ",".join(_WEEKDAY_NAMES[d] for d in sorted(spec.weekdays))
        if len(spec.weekdays) == 7:
            weekdays = "*"
        if spec.either_day_matches:
            self._inner: BaseTrigger = OrTrigger(
                [
                    CronTrigger(day=days, day_of_week="*", **common),
                    CronTrigger(day="*", day_of_week=weekdays, **common),
                ]
            )
        else:
            self._inner = CronTrigger(day=days, day_of_week=weekdays, **common)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """Return the first fire time after ``previous_fire_time`` (or from ``now``)."""
        candidate: datetime | None = self._inner.get_next_fire_time(previous_fire_time, now)
        while candidate is not None and self.spec.hour_restricted and _second_pass(candidate):
            candidate = self._inner.get_next_fire_time(candidate, candidate)
        if candidate is None:
            return None
        candidate = candidate.astimezone(self.timezone)
        if self.jitter:
            candidate += timedelta(seconds=random.uniform(0, self.jitter))
        return candidate

    def __str__(self) -> str:
        return f"cron[{self.spec.expression}]"

    def __repr__(self) -> str:
        return f"<StandardCronTrigger {self.spec.expression!r} timezone={self.timezone}>"


def _join(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def _second_pass(moment: datetime) -> bool:
    """``moment`` is the repeated pass of an ambiguous wall-clock time (DST fall-back)."""
    if moment.fold != 1:
        return False
    return moment.replace(fold=0).utcoffset() != moment.utcoffset()


def cron_trigger(
    expression: str,
    *,
    timezone: tzinfo,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    jitter: float | None = None,
) -> StandardCronTrigger:
    """Build a :class:`StandardCronTrigger` from a standard cron expression."""
    return StandardCronTrigger(
        parse_cron(expression),
        timezone=timezone,
        start_date=start_date,
        end_date=end_date,
        jitter=jitter,
    )


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


def fire_times(
    trigger: BaseTrigger,
    *,
    after: datetime,
    count: int | None = None,
    until: datetime | None = None,
) -> list[datetime]:
    """List fire times strictly after ``after``: the next ``count``, or all up to ``until``.

    Args:
        trigger: Any APScheduler trigger.
        after: Fire times must be later than this.
        count: Stop after this many.
        until: Stop after this moment (inclusive).
    """
    if count is None and until is None:
        raise ValueError("fire_times needs count or until")
    # Compare instants, never wall times: two datetimes with the same tzinfo compare by
    # wall clock, so 01:00 (second pass, DST fall-back) would sort before 01:30 (first pass).
    times: list[datetime] = []
    previous: datetime | None = None
    now = after + _ONE_MICROSECOND
    after_ts = after.timestamp()
    until_ts = until.timestamp() if until is not None else None
    while count is None or len(times) < count:
        moment: datetime | None = trigger.get_next_fire_time(previous, now)
        if moment is None or (until_ts is not None and moment.timestamp() > until_ts):
            break
        if moment.timestamp() > after_ts:
            times.append(moment)
        if previous is not None and moment.timestamp() <= previous.timestamp():
            break  # a trigger that does not advance (a one-time trigger)
        previous = moment
        if moment.timestamp() > now.timestamp():
            now = moment
    return times


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` (raises ``ZoneInfoNotFoundError``)."""
    return ZoneInfo(name)


class Backlog:
    """Occurrences of a schedule from its stored next run time up to ``now``.

    Attributes:
        missed: How many fell before the catch-up cutoff.
        first_missed, last_missed: The earliest and latest of those.
        due: How many fell inside the catch-up window (they become one run).
        last_due: The latest of those (the run's scheduled time).
        next_time: The first occurrence after ``now`` (None: the schedule has ended).
    """

    __slots__ = (
        "due",
        "first_missed",
        "last_due",
        "last_missed",
        "missed",
        "next_time",
        "truncated",
    )

    def __init__(self) -> None:
        self.truncated = False  # more were missed than were counted
        self.missed = 0
        self.first_missed: datetime | None = None
        self.last_missed: datetime | None = None
        self.due = 0
        self.last_due: datetime | None = None
        self.next_time: datetime | None = None

    def _add(self, moment: datetime, cutoff: datetime, count: int = 1) -> None:
        if moment.timestamp() < cutoff.timestamp():
            self.missed += count
            self.first_missed = self.first_missed or moment
            self.last_missed = moment
        else:
            self.due += count
            self.last_due = moment


def backlog(
    trigger: BaseTrigger,
    *,
    first: datetime,
    now: datetime,
    cutoff: datetime,
    limit: int = 100_000,
) -> Backlog:
    """Classify the occurrences from ``first`` (a stored next run time) up to ``now``.

    Occurrences before ``cutoff`` are missed; the rest are due. Interval schedules without
    jitter are counted arithmetically, so a long downtime costs nothing; other schedules are
    walked, at most ``limit`` steps; the rest up to ``now`` are then skipped uncounted and
    ``truncated`` is set.
    """
    result = Backlog()
    if first.timestamp() > now.timestamp():
        result.next_time = first
        return result
    if isinstance(trigger, IntervalTrigger) and not trigger.jitter:
        step = trigger.interval_length
        total = int((now.timestamp() - first.timestamp()) // step) + 1
        before_cutoff = 0
        if cutoff.timestamp() > first.timestamp():
            before_cutoff = min(total, -int(-(cutoff.timestamp() - first.timestamp()) // step))
        if before_cutoff:
            result.missed = before_cutoff
            result.first_missed = first
            result.last_missed = first + timedelta(seconds=step * (before_cutoff - 1))
        if total > before_cutoff:
            result.due = total - before_cutoff
            result.last_due = first + timedelta(seconds=step * (total - 1))
        last = first + timedelta(seconds=step * (total - 1))
        result.next_time = trigger.get_next_fire_time(last, now)
        return result
    moment: datetime | None = first
    steps = 0
    while moment is not None and moment.timestamp() <= now.timestamp():
        result._add(moment, cutoff)
        steps += 1
        if steps >= limit:
            result.truncated = True
            result.next_time = trigger.get_next_fire_time(None, now)
            return result
        moment = trigger.get_next_fire_time(moment, now)
    result.next_time = moment
    return result
