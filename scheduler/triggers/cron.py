"""The cron trigger: standard (Vixie) cron, computed in wall-clock time, day by day.

APScheduler's ``CronTrigger`` computes "the next match after the previous instant", which
skips days and repeats times across daylight saving transitions. This trigger works in wall
time instead:

1. candidates are the whole-minute wall-clock times whose minute, hour, month and day match;
   weekday ``0`` is Sunday, and when both day fields are restricted a day matches if either
   does (Vixie cron);
2. a candidate that exists once is that instant; one inside a spring-forward gap is read with
   the UTC offset in force before the transition, i.e. shifted forward by the gap (02:30
   becomes 03:30); one inside a repeated fall-back hour fires on its first pass, and on its
   second pass too when the hour field starts with ``*`` (``*/15 * * * *`` keeps firing
   every 15 minutes of real time through both passes);
3. the fire times are the distinct instants (``20 2-3 * * *`` fires once at 03:20 on a
   spring-forward day), in order, from ``start_date`` to ``end_date`` (both inclusive); a
   jitter of up to ``jitter`` seconds is then added to each.

Pure: ``now`` is always passed in.
"""

from __future__ import annotations

import functools
import random
from array import array
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from scheduler.cron import CronSpec, parse_cron

__all__ = ["StandardCronTrigger", "cron_trigger", "localize"]

_ONE_SECOND = timedelta(seconds=1)
_DAY_SECONDS = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JITTER_MARGIN = 0.001  # seconds a delay ends before the next fire time (whole seconds)
_EPOCH_ORDINAL = _EPOCH.toordinal()
# How many wall days the search looks ahead: the Gregorian calendar repeats every 400 years
# (146,097 days, a whole number of weeks), so a day rule that ever matches matches within
# that many days. The parser accepts only expressions whose days occur (it refuses
# ``0 0 30 2 *``), and each such date falls on every weekday within the cycle, so every
# accepted expression fires; the longest wait is 40 years (February 29 on one weekday,
# ``0 0 29 2 */7``: ``*/7`` counts as unrestricted, so both day fields must match), so the
# search stops early in practice, and finding nothing means the schedule has ended.
_HORIZON_DAYS = 146_097
_FIRST_ORDINAL = date.min.toordinal() + 3
_LAST_ORDINAL = date.max.toordinal() - 2
# Wall-clock hours of a day (24 is the next midnight) whose UTC offsets are compared, on
# both readings (fold 0 and 1), to decide that no transition touches the day.
_SAMPLE_HOURS = (0, 6, 12, 18, 24)
# Transition days whose candidate instants each trigger keeps (a walk crosses one or two).
_CACHED_DAYS = 8


def localize(value: datetime, zone: tzinfo) -> datetime:
    """Return ``value`` as an aware datetime; a naive one is read as wall time in ``zone``."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value


def _epoch_seconds(moment: datetime) -> tuple[int, int]:
    """An aware ``moment`` as whole seconds since the epoch, and the microseconds left over
    (exact: no float rounding)."""
    delta = moment - _EPOCH
    return delta.days * _DAY_SECONDS + delta.seconds, delta.microseconds


def _offset_seconds(zone: tzinfo, wall: datetime, fold: int) -> int:
    offset = wall.replace(tzinfo=zone, fold=fold).utcoffset()
    if offset is None:
        raise ValueError(f"time zone {zone} gives no UTC offset for {wall}")
    return offset // _ONE_SECOND


@functools.lru_cache(maxsize=8192)
def _steady_offset(zone: tzinfo, ordinal: int) -> int | None:
    """The UTC offset (seconds) of every wall-clock time of day ``ordinal`` in ``zone``, or
    None when a transition touches the day (some wall time of it is skipped, repeated, or
    has another offset).

    Both readings of 00:00, 06:00, 12:00, 18:00 and the next 00:00 must agree. A transition
    inside the day makes the two midnights differ; one whose skipped or repeated wall times
    include a midnight makes that midnight's two readings differ (a gap or fold starting
    exactly at the next midnight counts too: harmless, the day is then merely searched the
    slow way). Only two transitions less than 6 hours apart in one day could cancel out; the
    tz database's closest pair is days apart.
    """
    day = datetime.fromordinal(ordinal)
    offset: int | None = None
    for hours in _SAMPLE_HOURS:
        wall = day + timedelta(hours=hours)
        for fold in (0, 1):
            value = _offset_seconds(zone, wall, fold)
            if offset is None:
                offset = value
            elif value != offset:
                return None
    return offset


@functools.lru_cache(maxsize=64)
def _day_map(zone: tzinfo, ordinal: int) -> tuple[array[int], array[int], int]:
    """The instants (epoch seconds) of each minute of wall day ``ordinal`` in ``zone``:
    ``(first, second, earliest)``.

    ``first[m]`` is minute ``m`` read with fold 0: the only instant of a wall time that exists
    once, the first pass of a repeated one, and for a skipped one (inside a spring-forward
    gap) the wall time read with the offset in force before the transition, which is the
    wall time shifted forward by the gap. ``second[m]`` is the second pass of a repeated wall
    time, else ``first[m]``. ``earliest`` is the smallest instant of the day's wall times.
    """
    day = datetime.fromordinal(ordinal)
    base = (ordinal - _EPOCH_ORDINAL) * _DAY_SECONDS
    # Both readings of each hour's start (and of the next midnight): an hour whose two ends
    # read one offset has it throughout (by the argument of _steady_offset), so only the
    # hour(s) of the transition are looked at minute by minute.
    ends: list[set[int]] = []
    for hour in range(25):
        wall = day + timedelta(hours=hour)
        ends.append({_offset_seconds(zone, wall, 0), _offset_seconds(zone, wall, 1)})
    first: list[int] = []
    second: list[int] = []
    for hour in range(24):
        readings = ends[hour] | ends[hour + 1]
        if len(readings) == 1:
            (offset,) = readings
            start = base + hour * 3600 - offset
            steady = range(start, start + 3600, 60)
            first.extend(steady)
            second.extend(steady)
            continue
        for minute in range(hour * 60, hour * 60 + 60):
            wall = day + timedelta(minutes=minute)
            before = _offset_seconds(zone, wall, 0)
            after = _offset_seconds(zone, wall, 1)
            local = base + minute * 60
            first.append(local - before)
            # fold 1 has the smaller offset exactly when the wall time is repeated (PEP 495).
            second.append(local - after if after < before else local - before)
    return array("q", first), array("q", second), min(first)  # 23 KB a day


class StandardCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A trigger with standard (Vixie) cron semantics, computed in wall-clock time.

    On a day with no UTC offset change (and none the day before), the next fire time is
    found by bisecting the day's sorted candidate times. On and next to a transition day, all
    of the day's candidates are mapped to instants (see the module docstring) and the
    smallest one after the reference is taken; the search also looks at the two previous wall
    days (a skipped wall time maps to a later instant than its wall time suggests, by up to
    24 hours) and goes on until a day's earliest instant is past the best found (a second
    pass or a gap-shifted time can come later than first-pass times of later wall times).

    With jitter, ``previous_fire_time`` is a jittered time and the next fire time is the
    first scheduled time strictly after it; so each delay is at most ``jitter`` and ends
    short of the next scheduled time (a jitter longer than the gap between two fire times
    would otherwise skip the second).

    Args:
        spec: The parsed expression.
        timezone: Zone in which the expression's wall-clock times are read.
        start_date: Earliest possible fire time (inclusive).
        end_date: Latest possible fire time (inclusive); jitter can move one past it.
        jitter: Delay each fire time by a random 0..``jitter`` seconds (less when the
            next fire time is nearer).
    """

    __slots__ = (
        "_day_seconds",
        "_days",
        "_either",
        "_end",
        "_instants",
        "_minutes_of_day",
        "_months",
        "_repeats",
        "_start",
        "_weekdays",
        "end_date",
        "jitter",
        "spec",
        "start_date",
        "timezone",
    )

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
        self.start_date = localize(start_date, timezone) if start_date is not None else None
        self.end_date = localize(end_date, timezone) if end_date is not None else None
        self.jitter = jitter
        self._minutes_of_day = tuple(
            sorted(hour * 60 + minute for hour in spec.hours for minute in spec.minutes)
        )
        self._day_seconds = tuple(minute * 60 for minute in self._minutes_of_day)
        self._months = spec.months
        self._days = spec.days
        self._weekdays = spec.weekdays
        self._either = spec.either_day_matches
        self._repeats = not spec.hour_restricted  # second passes of repeated times fire too
        # Fire times are whole epoch seconds t with _start < t <= _end.
        self._start: int | None = None
        if self.start_date is not None:
            seconds, micro = _epoch_seconds(self.start_date)
            self._start = seconds if micro else seconds - 1
        self._end = _epoch_seconds(self.end_date)[0] if self.end_date is not None else None
        self._instants: dict[int, tuple[int, ...]] = {}

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire time strictly after ``previous_fire_time``, or (when it is None)
        the first at or after ``now``; never before ``start_date``, None past ``end_date``.
        Aware, in :attr:`timezone`."""
        if previous_fire_time is not None:
            after = _epoch_seconds(localize(previous_fire_time, self.timezone))[0]
        else:
            seconds, micro = _epoch_seconds(localize(now, self.timezone))
            after = seconds if micro else seconds - 1
        if self._start is not None and self._start > after:
            after = self._start
        instant = self._next_instant(after)
        if instant is None:
            return None
        if self.jitter:  # the delay stays short of the next fire time: it is not skipped
            following = self._next_instant(instant)
            room = self.jitter if following is None else following - instant - _JITTER_MARGIN
            delay = random.uniform(0, min(self.jitter, room))
            return (_EPOCH + timedelta(seconds=instant + delay)).astimezone(self.timezone)
        return datetime.fromtimestamp(instant, self.timezone)

    def _next_instant(self, after: int) -> int | None:
        """The first fire time (epoch seconds) strictly after ``after``, ignoring jitter."""
        zone = self.timezone
        local = datetime.fromtimestamp(after, zone)
        ordinal = local.toordinal()
        if ordinal >= _LAST_ORDINAL:
            return None  # the end of the calendar (year 9999)
        offset = _steady_offset(zone, ordinal)
        if offset is not None and _steady_offset(zone, ordinal - 1) == offset:
            # Fast path: no transition from yesterday's start to today's end, so today's
            # candidates map one to one, in order, to instants, and earlier days' candidates
            # to earlier instants than ``after``.
            if self._day_matches(local.month, local.day, local.isoweekday() % 7):
                second = local.hour * 3600 + local.minute * 60 + local.second
                index = bisect_right(self._day_seconds, second)
                if index < len(self._day_seconds):
                    found = after + self._day_seconds[index] - second
                    return found if self._end is None or found <= self._end else None
            return self._scan(ordinal + 1, min(ordinal + _HORIZON_DAYS, _LAST_ORDINAL), after)
        # A skipped wall time maps up to one gap (at most 24 hours) later: from two days back.
        start = max(ordinal - 2, _FIRST_ORDINAL)
        return self._scan(start, min(ordinal + _HORIZON_DAYS, _LAST_ORDINAL), after)

    def _scan(self, ordinal: int, stop: int, after: int) -> int | None:
        """The smallest instant after ``after`` of the candidates of wall days ``ordinal`` to
        ``stop``; stops at the first day whose earliest instant is past the best found (or
        past ``end_date``): a day's earliest instant never decreases from one day to the
        next, as no transition shifts the clock by more than 24 hours."""
        zone = self.timezone
        end = self._end
        best: int | None = None
        while ordinal <= stop:
            limit = best if best is not None else end
            offset: int | None = None
            if limit is not None:
                offset = _steady_offset(zone, ordinal)
                if offset is not None:
                    earliest = (ordinal - _EPOCH_ORDINAL) * _DAY_SECONDS - offset
                else:
                    earliest = _day_map(zone, ordinal)[2]
                if earliest > limit:
                    break
            day = date.fromordinal(ordinal)
            if day.month not in self._months:
                if day.month == 12:
                    if day.year == date.max.year:
                        break
                    ordinal = date(day.year + 1, 1, 1).toordinal()
                else:
                    ordinal = date(day.year, day.month + 1, 1).toordinal()
                continue
            if not self._day_matches(day.month, day.day, day.isoweekday() % 7):
                ordinal += 1
                continue
            if limit is None:
                offset = _steady_offset(zone, ordinal)
            found: int | None = None
            if offset is not None:
                # One instant per candidate, in order: bisect the day's times.
                base = (ordinal - _EPOCH_ORDINAL) * _DAY_SECONDS - offset
                index = bisect_right(self._day_seconds, after - base)
                if index < len(self._day_seconds):
                    found = base + self._day_seconds[index]
            else:
                instants = self._transition_instants(ordinal)
                index = bisect_right(instants, after)
                if index < len(instants):
                    found = instants[index]
            if found is not None and (best is None or found < best):
                best = found
            ordinal += 1
        if best is not None and end is not None and best > end:
            return None
        return best

    def _day_matches(self, month: int, day: int, weekday: int) -> bool:
        """Day rule of standard cron; ``weekday`` 0 is Sunday."""
        if month not in self._months:
            return False
        if self._either:
            return day in self._days or weekday in self._weekdays
        return day in self._days and weekday in self._weekdays

    def _transition_instants(self, ordinal: int) -> tuple[int, ...]:
        """The distinct instants of day ``ordinal``'s candidates, sorted (a transition day)."""
        cached = self._instants.get(ordinal)
        if cached is None:
            first, second, _ = _day_map(self.timezone, ordinal)
            instants = {first[minute] for minute in self._minutes_of_day}
            if self._repeats:
                instants.update(second[minute] for minute in self._minutes_of_day)
            cached = tuple(sorted(instants))
            if len(self._instants) >= _CACHED_DAYS:
                self._instants.clear()
            self._instants[ordinal] = cached
        return cached

    def __str__(self) -> str:
        return f"cron[{self.spec.expression}]"

    def __repr__(self) -> str:
        return f"<StandardCronTrigger {self.spec.expression!r} timezone={self.timezone}>"


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
