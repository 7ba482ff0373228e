"""Cron fire times across daylight saving transitions.

Hand-computed regressions, bounds and jitter, and a property test that walks
:class:`~scheduler.triggers.StandardCronTrigger` over random expressions next to real
transitions and compares every fire time with a brute-force oracle written straight from the
policy (README, "Cron is standard cron"), independently of the implementation:

1. candidates are the whole-minute wall-clock times whose minute, hour, month and day match
   (both day fields restricted: either matches; else both, a ``*`` field matching all);
2. a wall time that exists once is that instant; a skipped one (spring-forward gap) is read
   with the offset in force before the transition; a repeated one (fall-back) fires on its
   first pass, and on its second too only when the hour field starts with ``*``;
3. the fire times are the distinct instants, sorted, between start_date and end_date.

The property test's seed comes from ``CRON_ORACLE_SEED`` (random when unset) and is in every
failure message: ``CRON_ORACLE_SEED=<seed> pytest tests/test_cron_dst.py`` replays it.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger

from scheduler import TaskDefinition
from scheduler.cron import MACROS, CronError, CronSpec, parse_cron
from scheduler.triggers import StandardCronTrigger, cron_trigger, fire_times

SEED = int(os.environ.get("CRON_ORACLE_SEED") or random.SystemRandom().randrange(2**32))
CASES_PER_ZONE = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
APIA = ZoneInfo("Pacific/Apia")
TROLL = ZoneInfo("Antarctica/Troll")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def walk(expression: str, zone: tzinfo, after: datetime, count: int) -> list[str]:
    """The next ``count`` fire times strictly after ``after``, as UTC ISO texts."""
    trigger = cron_trigger(expression, timezone=zone)
    result: list[str] = []
    previous = after
    for _ in range(count):
        moment = trigger.get_next_fire_time(previous, previous)
        assert moment is not None
        assert moment.tzinfo is zone
        result.append(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M"))
        previous = moment
    return result


# --- regressions, computed by hand ------------------------------------------------------

# Europe/Berlin 2026: 02:00 CET -> 03:00 CEST on 03-29 (01:00 UTC); 03:00 -> 02:00 on 10-25.
# America/New_York 2024: 02:00 EST -> 03:00 EDT on 03-10 (07:00 UTC).
# Australia/Lord_Howe 2026: 02:00 +11 -> 01:30 +10:30 on 04-05; 02:00 -> 02:30 on 10-04.
REGRESSIONS = [
    pytest.param(
        "0 0 * * 1",
        BERLIN,
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        ["2026-03-29 22:00", "2026-04-05 22:00"],
        id="Berlin Monday midnight after spring-forward is not skipped",
    ),
    pytest.param(
        "@daily",
        BERLIN,
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        ["2026-03-28 23:00", "2026-03-29 22:00", "2026-03-30 22:00"],
        id="Berlin @daily keeps 30 March",
    ),
    pytest.param(
        "0,30 2 * * *",
        BERLIN,
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        ["2026-03-29 01:00", "2026-03-29 01:30", "2026-03-30 00:00", "2026-03-30 00:30"],
        id="Berlin 02:00 and 02:30 in the gap become 03:00 and 03:30 CEST",
    ),
    pytest.param(
        "20 2-3 * * *",
        NEW_YORK,
        datetime(2024, 3, 9, 12, tzinfo=NEW_YORK),
        ["2024-03-10 07:20", "2024-03-11 06:20", "2024-03-11 07:20", "2024-03-12 06:20"],
        id="New York 02:20 shifted onto 03:20 EDT fires once",
    ),
    pytest.param(
        "10 2 * * *",
        LORD_HOWE,
        datetime(2026, 10, 3, 12, tzinfo=LORD_HOWE),
        ["2026-10-03 15:40", "2026-10-04 15:10"],
        id="Lord Howe 02:10 in the 30-minute gap becomes 02:40",
    ),
    pytest.param(
        "45 1 * * *",
        LORD_HOWE,
        datetime(2026, 4, 4, 12, tzinfo=LORD_HOWE),
        ["2026-04-04 14:45", "2026-04-05 15:15"],
        id="Lord Howe repeated 01:45 fires once for a fixed hour",
    ),
    pytest.param(
        "45 * * * *",
        LORD_HOWE,
        datetime(2026, 4, 5, 1, tzinfo=LORD_HOWE),
        ["2026-04-04 14:45", "2026-04-04 15:15", "2026-04-04 16:15"],
        id="Lord Howe repeated 01:45 fires on both passes for a wildcard hour",
    ),
    pytest.param(
        "30 1 * * *",
        TROLL,
        datetime(2026, 3, 28, 12, tzinfo=TROLL),
        ["2026-03-29 01:30", "2026-03-29 23:30"],
        id="Troll 01:30 in the 2-hour gap becomes 03:30 +02",
    ),
    pytest.param(
        "30 2 * * *",
        TROLL,
        datetime(2026, 10, 24, 12, tzinfo=TROLL),
        ["2026-10-25 00:30", "2026-10-26 02:30"],
        id="Troll repeated 02:30 fires once, on its first pass (+02)",
    ),
    pytest.param(
        "0 12 * * *",
        APIA,
        datetime(2011, 12, 29, tzinfo=APIA),
        ["2011-12-29 22:00", "2011-12-30 22:00", "2011-12-31 22:00"],
        id="Apia skipped 30 December 2011: its 12:00 is 31 December 12:00, once",
    ),
    pytest.param(
        "0 * 30 12 *",
        APIA,
        datetime(2011, 12, 31, 0, 30, tzinfo=APIA),
        ["2011-12-30 11:00", "2011-12-30 12:00"],
        id="Apia skipped day's times fire after a reference on the next wall day",
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), REGRESSIONS)
def test_dst_regressions(
    expression: str, zone: tzinfo, after: datetime, expected: list[str]
) -> None:
    assert walk(expression, zone, after, len(expected)) == expected


def test_monthly_in_lord_howe_fires_every_month() -> None:
    times = walk("@monthly", LORD_HOWE, datetime(2026, 1, 15, tzinfo=LORD_HOWE), 14)
    # The 1st at 00:00: +11:00 from October to early April, +10:30 in between.
    assert times == [
        "2026-01-31 13:00",
        "2026-02-28 13:00",
        "2026-03-31 13:00",
        "2026-04-30 13:30",
        "2026-05-31 13:30",
        "2026-06-30 13:30",
        "2026-07-31 13:30",
        "2026-08-31 13:30",
        "2026-09-30 13:30",
        "2026-10-31 13:00",
        "2026-11-30 13:00",
        "2026-12-31 13:00",
        "2027-01-31 13:00",
        "2027-02-28 13:00",
    ]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # */7 counts as unrestricted: February 29 AND a Sunday, 28 years later.
        ("0 0 29 2 */7", "2004-03-01 00:00", "2032-02-29 00:00"),
        # 2100 is no leap year: 8 years between two February 29s.
        ("0 0 29 2 *", "2096-03-01 00:00", "2104-02-29 00:00"),
        ("0 0 29 2 1", "2026-01-01 00:00", "2026-02-02 00:00"),  # either: Mondays of February
    ],
)
def test_rare_days_are_found_however_far(expression: str, after: str, expected: str) -> None:
    assert walk(expression, UTC, utc(after), 1) == [expected]


def test_next_run_times_returns_as_many_as_asked_across_a_transition() -> None:
    task = TaskDefinition.model_validate(
        {
            "id": "t",
            "cron_expression": "20 2-3 * * *",
            "prompt": "p",
            "timezone": "America/New_York",
        }
    )
    times = task.next_run_times(6, after=datetime(2024, 3, 9, 12, tzinfo=NEW_YORK))
    assert [t.astimezone(UTC).strftime("%m-%d %H:%M") for t in times] == [
        "03-10 07:20",
        "03-11 06:20",
        "03-11 07:20",
        "03-12 06:20",
        "03-12 07:20",
        "03-13 06:20",
    ]


def test_fire_times_steps_in_real_time_at_a_fall_back() -> None:
    trigger = cron_trigger("*/30 * * * *", timezone=NEW_YORK)
    # 01:59:59.999999 EDT; one microsecond later is 01:00 EST (06:00 UTC), not 02:00 EST.
    first_pass = datetime(2026, 11, 1, 1, 59, 59, 999999, tzinfo=NEW_YORK)
    assert [t.astimezone(UTC) for t in fire_times(trigger, after=first_pass, count=3)] == [
        utc("2026-11-01 06:00"),
        utc("2026-11-01 06:30"),
        utc("2026-11-01 07:00"),
    ]
    second_pass = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)  # 06:30 UTC
    assert [t.astimezone(UTC) for t in fire_times(trigger, after=second_pass, count=2)] == [
        utc("2026-11-01 07:00"),
        utc("2026-11-01 07:30"),
    ]
    until = datetime(2026, 11, 1, 1, 0, tzinfo=NEW_YORK, fold=1)
    times = fire_times(trigger, after=datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK), until=until)
    assert [t.astimezone(UTC) for t in times] == [
        utc("2026-11-01 05:00"),
        utc("2026-11-01 05:30"),
        utc("2026-11-01 06:00"),
    ]


class _Repeating(BaseTrigger):  # type: ignore[misc]
    """Gives each of ``times`` in turn, whatever it is asked (the first one twice)."""

    def __init__(self, times: list[datetime]) -> None:
        self.times = times
        self.calls = 0

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        self.calls += 1
        sequence = [self.times[0], *self.times]
        return sequence[self.calls - 1] if self.calls <= len(sequence) else None


def test_fire_times_skips_a_repeat_instead_of_stopping() -> None:
    times = [utc("2026-01-01 00:00"), utc("2026-01-01 01:00"), utc("2026-01-01 02:00")]
    assert fire_times(_Repeating(times), after=utc("2025-12-31 00:00"), count=5) == times


def test_fire_times_of_a_one_time_trigger() -> None:
    run_at = utc("2026-01-01 09:00")
    trigger = DateTrigger(run_date=run_at, timezone=UTC)
    assert fire_times(trigger, after=utc("2025-12-31 00:00"), count=3) == [run_at]


# --- bounds and jitter ------------------------------------------------------------------


def test_start_and_end_dates_are_inclusive() -> None:
    start, end = utc("2026-01-01 05:00"), utc("2026-01-01 07:00")
    trigger = cron_trigger("0 * * * *", timezone=UTC, start_date=start, end_date=end)
    assert trigger.get_next_fire_time(None, utc("2026-01-01 00:00")) == start
    assert trigger.get_next_fire_time(None, start) == start
    assert trigger.get_next_fire_time(utc("2026-01-01 01:00"), start) == start
    assert trigger.get_next_fire_time(start, start) == utc("2026-01-01 06:00")
    assert trigger.get_next_fire_time(utc("2026-01-01 06:00"), start) == end
    assert trigger.get_next_fire_time(end, end) is None
    assert trigger.get_next_fire_time(None, end + timedelta(microseconds=1)) is None
    just_after = cron_trigger(
        "0 * * * *",
        timezone=UTC,
        start_date=start + timedelta(microseconds=1),
        end_date=end - timedelta(microseconds=1),
    )
    assert just_after.get_next_fire_time(None, utc("2026-01-01 00:00")) == utc("2026-01-01 06:00")
    assert just_after.get_next_fire_time(utc("2026-01-01 06:00"), start) is None


def test_bounds_on_a_repeated_hour_compare_instants() -> None:
    # New York 2026-11-01: 01:00-01:59 happens twice (EDT, then EST).
    second_pass = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)  # 06:30 UTC
    trigger = cron_trigger("*/30 * * * *", timezone=NEW_YORK, start_date=second_pass)
    assert trigger.get_next_fire_time(None, utc("2026-11-01 00:00")) == second_pass
    ending = cron_trigger(
        "*/30 * * * *",
        timezone=NEW_YORK,
        end_date=datetime(2026, 11, 1, 1, 0, tzinfo=NEW_YORK, fold=1),  # 06:00 UTC
    )
    times = fire_times(ending, after=utc("2026-11-01 04:45"), count=10)
    assert [t.astimezone(UTC) for t in times] == [
        utc("2026-11-01 05:00"),
        utc("2026-11-01 05:30"),
        utc("2026-11-01 06:00"),
    ]


def test_naive_bounds_are_read_in_the_trigger_zone() -> None:
    trigger = cron_trigger(
        "0 9 * * *", timezone=BERLIN, start_date=datetime(2026, 7, 2, 9), end_date=None
    )
    assert trigger.get_next_fire_time(None, utc("2026-07-01 00:00")) == datetime(
        2026, 7, 2, 9, tzinfo=BERLIN
    )


@pytest.mark.parametrize(
    ("expression", "zone", "after"),
    [
        ("*/5 * * * *", NEW_YORK, datetime(2026, 10, 31, 23, tzinfo=NEW_YORK)),
        ("59 * * * *", NEW_YORK, datetime(2026, 10, 31, 23, tzinfo=NEW_YORK)),
        ("*/10 1-3 * * *", BERLIN, datetime(2026, 3, 28, 23, tzinfo=BERLIN)),
    ],
)
def test_jitter_stays_within_its_bound_across_transitions(
    expression: str, zone: tzinfo, after: datetime
) -> None:
    jitter = 90.0
    rng = random.Random(SEED)
    start, end = after + timedelta(hours=1), after + timedelta(hours=5)
    plain = cron_trigger(expression, timezone=zone, start_date=start, end_date=end)
    jittered = cron_trigger(
        expression, timezone=zone, start_date=start, end_date=end, jitter=jitter
    )
    bases = fire_times(plain, after=after, count=500)
    assert bases and bases[-1].timestamp() <= end.timestamp()
    state = random.getstate()
    random.seed(rng.random())
    try:
        moments = fire_times(jittered, after=after, count=500)
    finally:
        random.setstate(state)
    assert len(moments) == len(bases), f"seed {SEED}"
    for base, moment in zip(bases, moments, strict=True):
        assert moment.tzinfo is zone
        # Timestamps: subtracting datetimes that share a tzinfo subtracts wall clocks.
        delay = moment.timestamp() - base.timestamp()
        assert 0 <= delay <= jitter, f"seed {SEED}: {base} -> {moment}"
        assert start.timestamp() <= base.timestamp() <= end.timestamp()


# --- the oracle -------------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    """One wall-clock day of a window: each minute's instants (epoch seconds) per policy."""

    day: date
    first: tuple[int, ...]  # the only instant, the first pass, or the gap-shifted instant
    second: tuple[int | None, ...]  # the second pass of a repeated wall time, else None


@dataclass(frozen=True)
class Window:
    """Five wall days around one transition (epoch second ``instant``, offsets in seconds)."""

    zone_name: str
    zone: tzinfo
    instant: int
    before: int
    after: int
    days: tuple[Day, ...]

    def bounds(self, first_day: int, end_day: int) -> tuple[int, int]:
        """The instants (inclusive) that no wall time outside ``days[first_day:end_day]``
        can reach: every wall time ``w`` maps to ``w - o`` for one of the two offsets (the
        gap rule uses the one before), so walls before the first day map before
        ``start - min(o)`` and walls after the last day to ``stop - max(o)`` or later."""
        low, high = sorted((self.before, self.after))
        start = _wall_seconds(self.days[first_day].day)
        stop = _wall_seconds(self.days[end_day - 1].day + timedelta(days=1))
        return start - low, stop - high - 1


def _wall_seconds(day: date) -> int:
    """A naive wall midnight as if it were UTC, in epoch seconds."""
    return (day.toordinal() - EPOCH.toordinal()) * 86_400


def _offset(zone: tzinfo, instant: int) -> int:
    moment = (EPOCH + timedelta(seconds=instant)).astimezone(zone)
    offset = moment.utcoffset()
    assert offset is not None
    return offset // SECOND


def find_transitions(zone: tzinfo, year: int) -> list[tuple[int, int, int]]:
    """Each UTC offset change in ``year``: (first second of the new offset, before, after),
    found by sampling every 6 hours and bisecting (only UTC -> local conversions)."""
    step = 6 * 3600
    t = (date(year, 1, 1).toordinal() - EPOCH.toordinal()) * 86_400
    stop = (date(year + 1, 1, 1).toordinal() - EPOCH.toordinal()) * 86_400
    found: list[tuple[int, int, int]] = []
    current = _offset(zone, t)
    while t < stop:
        following = _offset(zone, t + step)
        if following != current:
            low, high = t, t + step
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(zone, middle) == current:
                    low = middle
                else:
                    high = middle
            found.append((high, current, following))
        t += step
        current = following
    return found


def build_window(zone_name: str, instant: int, before: int, after: int) -> Window:
    zone = make_zone(zone_name)
    wall_day = (EPOCH + timedelta(seconds=instant - 1 + before)).date()
    days: list[Day] = []
    for index in range(-2, 3):
        day = wall_day + timedelta(days=index)
        base = _wall_seconds(day)
        first: list[int] = []
        second: list[int | None] = []
        for minute in range(24 * 60):
            wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
            local = base + minute * 60
            # The instants whose wall clock in the zone reads exactly ``wall``.
            readings = sorted(
                local - offset
                for offset in {before, after}
                if (EPOCH + timedelta(seconds=local - offset)).astimezone(zone).replace(tzinfo=None)
                == wall
            )
            if not readings:  # skipped: read with the offset in force before the change
                first.append(local - before)
                second.append(None)
            elif len(readings) == 1:
                first.append(readings[0])
                second.append(None)
            else:
                first.append(readings[0])
                second.append(readings[1])
        days.append(Day(day, tuple(first), tuple(second)))
    window = Window(zone_name, zone, instant, before, after, tuple(days))
    # Only this transition is in reach: every instant of the window has one of its offsets.
    low, high = window.bounds(0, 5)
    assert {_offset(zone, t) for t in range(low - 86_400, high + 86_400, 1800)} == {
        before,
        after,
    }
    return window


def oracle_day_matches(spec: CronSpec, day: date) -> bool:
    if day.month not in spec.months:
        return False
    in_month = day.day in spec.days
    in_week = (day.weekday() + 1) % 7 in spec.weekdays  # cron: 0 = Sunday
    if spec.day_restricted and spec.weekday_restricted:
        return in_month or in_week
    return in_month and in_week


def oracle(spec: CronSpec, days: tuple[Day, ...]) -> list[int]:
    instants: set[int] = set()
    for day in days:
        if not oracle_day_matches(spec, day.day):
            continue
        for hour in spec.hours:
            for minute in spec.minutes:
                index = hour * 60 + minute
                instants.add(day.first[index])
                repeat = day.second[index]
                if repeat is not None and not spec.hour_restricted:
                    instants.add(repeat)
    return sorted(instants)


class OneChange(tzinfo):
    """A made-up zone with one UTC offset change, at ``change`` (naive UTC), from ``before``
    to ``after``, following PEP 495 (fold 0 reads a skipped or repeated wall time with the
    offset before the change, fold 1 with the one after)."""

    def __init__(self, name: str, change: datetime, before: timedelta, after: timedelta) -> None:
        self.name, self.change, self.before, self.after = name, change, before, after

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        wall = dt.replace(tzinfo=None, fold=0)
        low, high = sorted((self.change + self.before, self.change + self.after))
        if wall < low:
            return self.before
        if wall >= high:
            return self.after
        return self.after if dt.fold else self.before

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return self.name

    def fromutc(self, dt: datetime) -> datetime:
        moment = dt.replace(tzinfo=None)
        if moment < self.change:
            return (moment + self.before).replace(tzinfo=self)
        wall = moment + self.after
        repeated = self.after < self.before and wall < self.change + self.before
        return wall.replace(tzinfo=self, fold=1 if repeated else 0)

    def __repr__(self) -> str:
        return f"OneChange({self.name})"


def _one_change(name: str, change: str, before: float, after: float) -> OneChange:
    return OneChange(
        name, datetime.fromisoformat(change), timedelta(hours=before), timedelta(hours=after)
    )


# Shifts the tz database has rarely or never had near now: a 2.5-hour gap and fold across
# midnight, a 24-hour gap and fold at noon, a one-minute gap.
SYNTHETIC: dict[str, OneChange] = {
    zone.name: zone
    for zone in (
        _one_change("gap-2h30-across-midnight", "2030-03-09 22:00", 1, 3.5),
        _one_change("fold-2h30-across-midnight", "2030-10-05 21:45", 3.5, 1),
        _one_change("gap-24h-at-noon", "2031-06-13 22:00", -10, 14),
        _one_change("fold-24h-at-noon", "2031-06-14 02:00", 10, -14),
        _one_change("gap-1min-at-23:59", "2032-01-10 22:59", 1, 1 + 1 / 60),
    )
}
SYNTHETIC_CASES = 400


def make_zone(name: str) -> tzinfo:
    return SYNTHETIC[name] if name in SYNTHETIC else ZoneInfo(name)


# Zones with DST (both directions), several years each: 30-minute (Lord Howe), southern
# hemisphere (Sydney, Santiago), midnight transitions (Havana, Santiago, Tehran), a 2-hour
# shift (Troll), the 24-hour jump over 2011-12-30 (Apia), a gap across midnight (Toronto
# 1919: 23:30 -> 00:30) and 2-hour folds across midnight (St John's 1988, double summer time).
ZONES: dict[str, tuple[int, ...]] = {
    "Europe/Berlin": (2001, 2013, 2026, 2039),
    "America/New_York": (2003, 2007, 2024, 2037),
    "Australia/Lord_Howe": (2000, 2009, 2026, 2040),
    "Australia/Sydney": (2006, 2008, 2031),
    "America/Santiago": (2010, 2016, 2023, 2035),
    "America/Havana": (2004, 2012, 2025, 2038),
    "Asia/Tehran": (2002, 2010, 2020, 2022),
    "Antarctica/Troll": (2006, 2026, 2040),
    "Pacific/Apia": (2011, 2016, 2020),
    "America/Toronto": (1919, 2026),
    "America/St_Johns": (1988, 2006, 2030),
}


@functools.cache
def windows(zone_name: str) -> tuple[Window, ...]:
    zone = make_zone(zone_name)
    if isinstance(zone, OneChange):
        years: tuple[int, ...] = (zone.change.year,)
    else:
        years = ZONES[zone_name]
    found = [
        build_window(zone_name, *transition)
        for year in years
        for transition in find_transitions(zone, year)
    ]
    assert found, f"{zone_name}: no transition found"
    if not isinstance(zone, OneChange):
        assert any(w.after > w.before for w in found), f"{zone_name}: no spring-forward"
        assert any(w.after < w.before for w in found), f"{zone_name}: no fall-back"
    return tuple(found)


# --- random expressions -----------------------------------------------------------------

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _name(rng: random.Random, name: str) -> str:
    return rng.choice((name, name.upper(), name.capitalize()))


def random_field(
    rng: random.Random,
    low: int,
    high: int,
    hot: list[int],
    *,
    star: float,
    star_step: float,
    names: tuple[str, ...] = (),
    names_start: int = 0,
) -> str:
    """A random field: ``*``, ``*/n``, or a list of values, ranges and steps; values come
    from ``hot`` most of the time."""
    roll = rng.random()
    if roll < star:
        return "*"
    if roll < star + star_step:
        return f"*/{rng.randint(1, max(1, (high - low + 1) // 2))}"

    def value() -> int:
        return rng.choice(hot) if hot and rng.random() < 0.7 else rng.randint(low, high)

    def text(number: int) -> str:
        index = number - names_start
        if names and 0 <= index < len(names) and rng.random() < 0.3:
            return _name(rng, names[index])
        return str(number)

    items: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        kind = rng.random()
        start = value()
        if kind < 0.45:
            items.append(text(start))
        elif kind < 0.7:
            end = min(high, start + rng.choice((0, 1, 1, 2, 3, rng.randint(0, high - low))))
            items.append(f"{text(start)}-{text(end)}")
        elif kind < 0.85:
            end = min(high, start + rng.randint(0, high - low))
            items.append(f"{text(start)}-{text(end)}/{rng.randint(1, 6)}")
        else:
            items.append(f"{text(start)}/{rng.randint(1, max(1, (high - low) // 2))}")
    return ",".join(items)


def random_expression(rng: random.Random, window: Window) -> str:
    """A random expression, biased towards the window's gap or fold: its hours, minutes
    around :00 and :30, its days, weekdays and month."""
    if rng.random() < 0.03:
        return rng.choice(sorted(MACROS))
    before_wall = EPOCH + timedelta(seconds=window.instant - 1 + window.before)
    after_wall = EPOCH + timedelta(seconds=window.instant + window.after)
    hours = sorted(
        {0, 1, 2, 3, 4, 23}
        | {(h + d) % 24 for h in (before_wall.hour, after_wall.hour) for d in (-1, 0, 1)}
    )
    days = [d.day for d in window.days]
    minute = random_field(rng, 0, 59, [0, 1, 10, 15, 29, 30, 31, 45, 59], star=0.1, star_step=0.15)
    hour = random_field(rng, 0, 23, hours, star=0.15, star_step=0.1)
    day_of_month = random_field(rng, 1, 31, [d.day for d in days], star=0.5, star_step=0.1)
    month = random_field(
        rng,
        1,
        12,
        [days[2].month, days[0].month, days[4].month],
        star=0.6,
        star_step=0.05,
        names=MONTH_NAMES,
        names_start=1,
    )
    weekdays = [(d.weekday() + 1) % 7 for d in days] + [7]
    day_of_week = random_field(rng, 0, 7, weekdays, star=0.5, star_step=0.08, names=WEEKDAY_NAMES)
    return f"{minute} {hour} {day_of_month} {month} {day_of_week}"


def _aware(rng: random.Random, seconds: int, micro: int, zone: tzinfo) -> datetime:
    """The instant as an aware datetime in UTC, in the window's zone or at a fixed offset."""
    moment = EPOCH + timedelta(seconds=seconds, microseconds=micro)
    choice = rng.random()
    if choice < 0.4:
        return moment.astimezone(zone)
    if choice < 0.8:
        return moment
    return moment.astimezone(timezone(timedelta(hours=rng.randint(-12, 14))))


def _seconds(moment: datetime) -> int:
    assert moment.microsecond == 0, moment
    return (moment - EPOCH) // SECOND


def _pick(rng: random.Random, window: Window, low: int, high: int, fires: list[int]) -> int:
    """A reference second in [low, high]: anywhere, near the transition, or at a fire time."""
    roll = rng.random()
    if roll < 0.35 and fires:
        return min(high, max(low, rng.choice(fires) + rng.choice((-1, 0, 0, 1))))
    if roll < 0.7:
        return min(high, max(low, window.instant + rng.randint(-3 * 3600, 3 * 3600)))
    return rng.randint(low, high)


def check_case(rng: random.Random, window: Window, expression: str, context: str) -> None:
    spec = parse_cron(expression)
    # Per case, three of the window's five wall days (always including the transition day).
    first_day = rng.randint(0, 2)
    low, high = window.bounds(first_day, first_day + 3)
    everything = oracle(spec, window.days[first_day : first_day + 3])
    fires = [t for t in everything if low <= t <= high]
    start = end = None
    if rng.random() < 0.15:
        start = _pick(rng, window, low, high, fires)
    if rng.random() < 0.15:
        end = _pick(rng, window, start or low, high, fires)
    zone = window.zone
    trigger = StandardCronTrigger(
        spec,
        timezone=zone,
        start_date=_aware(rng, start, 0, zone) if start is not None else None,
        end_date=_aware(rng, end, 0, zone) if end is not None else None,
    )
    allowed = [t for t in fires if (start is None or t >= start) and (end is None or t <= end)]
    reference = _pick(rng, window, low, high, fires)
    micro = rng.choice((0, 0, 0, 1, 500_000, 999_999))
    base = (
        f"{context} expression={expression!r} zone={window.zone_name} "
        f"start={start} end={end} reference={reference}.{micro:06d}"
    )

    # First fire time at or after ``now`` (no previous fire time).
    now = _aware(rng, reference, micro, zone)
    expected = next((t for t in allowed if t * 10**6 >= reference * 10**6 + micro), None)
    got = trigger.get_next_fire_time(None, now)
    if expected is not None:
        assert got is not None and _seconds(got) == expected and got.tzinfo is zone, (
            f"{base}: first at/after now: expected {expected}, got {got}"
        )
    else:
        assert got is None or _seconds(got) > high, f"{base}: first at/after now: got {got}"

    # The walk: every fire time strictly after the reference, one after the other.
    expected_walk = [t for t in allowed if t * 10**6 > reference * 10**6 + micro]
    walked: list[int] = []
    previous = _aware(rng, reference, micro, zone)
    while len(walked) <= len(expected_walk):
        moment = trigger.get_next_fire_time(previous, previous)
        if moment is None or _seconds(moment) > high:
            break
        assert moment.tzinfo is zone, f"{base}: {moment!r} not in the trigger's zone"
        walked.append(_seconds(moment))
        previous = moment
    if walked != expected_walk:
        missing = sorted(set(expected_walk) - set(walked))[:5]
        extra = sorted(set(walked) - set(expected_walk))[:5]
        pytest.fail(
            f"{base}: walk from the reference differs: expected {len(expected_walk)} fire "
            f"times, got {len(walked)}; missing {[_utc_text(t) for t in missing]}, "
            f"extra {[_utc_text(t) for t in extra]}"
        )


def _utc_text(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.mark.parametrize(
    ("zone_name", "count"),
    [(name, CASES_PER_ZONE) for name in sorted(ZONES)]
    + [(name, SYNTHETIC_CASES) for name in SYNTHETIC],
)
def test_matches_the_oracle_next_to_transitions(zone_name: str, count: int) -> None:
    rng = random.Random(f"{SEED}:{zone_name}")
    found = windows(zone_name)
    cases = 0
    for index in range(count):
        window = found[index * len(found) // count]  # grouped: one window at a time
        while True:
            expression = random_expression(rng, window)
            try:
                parse_cron(expression)
            except CronError:
                continue
            break
        check_case(rng, window, expression, f"CRON_ORACLE_SEED={SEED} case={index}")
        cases += 1
    assert cases == count


def test_oracle_agrees_with_the_hand_computed_cases() -> None:
    """The oracle itself, on a case computed by hand (Berlin, spring-forward 2026)."""
    berlin = {w.instant: w for w in windows("Europe/Berlin")}
    spring = berlin[_seconds(utc("2026-03-29 01:00"))]
    got = [_utc_text(t) for t in oracle(parse_cron("0,30 2 * * *"), spring.days[2:3])]
    assert got == ["2026-03-29 01:00:00 UTC", "2026-03-29 01:30:00 UTC"]
    fall = berlin[_seconds(utc("2026-10-25 01:00"))]
    assert [_utc_text(t) for t in oracle(parse_cron("30 2 * * *"), fall.days[2:3])] == [
        "2026-10-25 00:30:00 UTC"
    ]
    assert [_utc_text(t) for t in oracle(parse_cron("30 * * * *"), fall.days[2:3])][2:4] == [
        "2026-10-25 00:30:00 UTC",
        "2026-10-25 01:30:00 UTC",
    ]


@pytest.mark.parametrize(("interval", "jitter"), [(3600.0, 900.0), (60.0, 59.0), (7.5, 0.5)])
def test_an_interval_jitter_delays_each_grid_time_and_never_adds_up(
    interval: float, jitter: float
) -> None:
    """Each fire time is its grid time plus up to ``jitter``: a week of them stays on the
    grid (APScheduler's own trigger adds the interval to the jittered time: it drifts)."""
    from scheduler.triggers.simple import interval_trigger

    anchor = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)
    trigger = interval_trigger(interval, timezone=NEW_YORK, anchor=anchor, jitter=jitter)
    count = int(7 * 86400 / interval) if interval >= 60 else 20_000
    state = random.getstate()
    random.seed(SEED)
    try:
        moments = fire_times(trigger, after=anchor, count=count)
    finally:
        random.setstate(state)
    assert len(moments) == count
    for n, moment in enumerate(moments, start=1):
        grid = anchor.timestamp() + n * interval
        assert 0 <= moment.timestamp() - grid <= jitter, f"seed {SEED}: occurrence {n}"


def test_an_interval_jitter_keeps_the_last_grid_time_before_the_end() -> None:
    """``end_date`` bounds the grid times, not the delayed ones: the last hour before it
    runs however long its delay (APScheduler compared the delayed time with end_date and
    dropped it with some probability), and no grid time after it runs."""
    from scheduler.triggers.simple import interval_trigger

    start = datetime(2030, 1, 1, 13, 0, tzinfo=UTC)
    end = datetime(2030, 1, 1, 16, 0, tzinfo=UTC)
    state = random.getstate()
    random.seed(SEED)
    try:
        for _ in range(50):
            trigger = interval_trigger(
                3600, timezone=UTC, anchor=start, start_date=start, end_date=end, jitter=600
            )
            moments = fire_times(trigger, after=start - timedelta(seconds=1), count=10)
            grid = [m.replace(minute=0, second=0, microsecond=0) for m in moments]
            assert [g.hour for g in grid] == [13, 14, 15, 16], f"seed {SEED}: {moments}"
    finally:
        random.setstate(state)


@pytest.mark.parametrize(
    ("expression", "zone", "jitter"),
    [
        ("* * * * *", UTC, 90.0),
        ("0 9,10 * * *", BERLIN, 7200.0),
        ("0,40 * * * *", LORD_HOWE, 3600.0),  # its 30-minute shift on 2026-04-05
        ("30 1,2 * * *", NEW_YORK, 86400.0),  # spring forward on 2026-03-08
    ],
)
def test_a_cron_jitter_longer_than_a_gap_skips_no_fire_time(
    expression: str, zone: tzinfo, jitter: float
) -> None:
    """The next fire time is the first after the delayed previous one: a delay past the
    next fire time skipped it (``* * * * *`` with 90 s of jitter lost minutes, at
    random). A delay now ends short of the next fire time."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    expected = fire_times(cron_trigger(expression, timezone=zone), after=start, count=3000)
    state = random.getstate()
    random.seed(SEED)
    try:
        jittered = cron_trigger(expression, timezone=zone, jitter=jitter)
        moments = fire_times(jittered, after=start, count=3000)
    finally:
        random.setstate(state)
    # (instants: aware datetimes of one ZoneInfo compare and subtract as wall times)
    bases = [t.timestamp() for t in expected]
    for n, (base, moment) in enumerate(zip(bases, moments, strict=True)):
        delay = moment.timestamp() - base
        assert 0 <= delay <= jitter, f"seed {SEED}: occurrence {n}: {expected[n]} -> {moment}"
        if n + 1 < len(bases):
            assert moment.timestamp() < bases[n + 1], f"seed {SEED}: occurrence {n}: {moment}"


@pytest.mark.parametrize(("interval", "jitter"), [(60.0, 60.0), (60.0, 600.0), (0.001, 0.001)])
def test_a_stored_interval_task_with_a_long_jitter_skips_no_grid_time(
    interval: float, jitter: float
) -> None:
    """A jitter of an interval or more is refused for new tasks; one stored before still
    loads (nothing stored is lost), and its delays end short of the next grid time."""
    fields = {"id": "t", "prompt": "p", "interval_seconds": interval, "jitter_seconds": jitter}
    with pytest.raises(ValueError, match="must be less than interval_seconds"):
        TaskDefinition.model_validate(fields)
    task = TaskDefinition.model_validate(fields, context={"stored": True})
    anchor = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)
    state = random.getstate()
    random.seed(SEED)
    try:
        moments = fire_times(task.build_trigger(anchor=anchor), after=anchor, count=5000)
    finally:
        random.setstate(state)
    step = timedelta(seconds=interval)  # (in microseconds: floats of epoch seconds near 2026
    for n, moment in enumerate(moments, start=1):  # are 0.24 us apart, a 1 ms step's grid not)
        grid = anchor + n * step
        assert timedelta(0) <= moment - grid < step, f"seed {SEED}: occurrence {n}"
