"""Tests for scheduler.schedules: schedule strings to explicit task fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler import TaskType
from scheduler.schedules import (
    ACCEPTED_FORMS,
    ParsedSchedule,
    ScheduleError,
    parse_schedule,
)

# Tuesday 2026-03-10 12:00 UTC: 13:00 in Paris (CET), 08:00 in New York (EDT since 03-08).
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

CRON, INTERVAL, ONE_TIME = TaskType.CRON, TaskType.INTERVAL, TaskType.ONE_TIME


def cron(expression: str) -> ParsedSchedule:
    return ParsedSchedule(CRON, cron_expression=expression)


def every(seconds: float) -> ParsedSchedule:
    return ParsedSchedule(INTERVAL, interval_seconds=seconds)


def once(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
    *,
    tz: tzinfo = UTC,
    relative: bool = False,
) -> ParsedSchedule:
    moment = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)
    return ParsedSchedule(ONE_TIME, run_at=moment, relative=relative)


def later(*args: int, tz: tzinfo = UTC) -> ParsedSchedule:
    """A one-time schedule counted from now (``in ...``)."""
    return once(*args, tz=tz, relative=True)


def at(*args: int, tz: tzinfo = UTC) -> ParsedSchedule:
    """A date and time without an offset: a wall time in the zone."""
    return replace(once(*args, tz=tz), wall_clock=True)


def wall(*args: int, tz: tzinfo = UTC) -> ParsedSchedule:
    """A wall-clock time of a day counted from now (``today at``, ``tomorrow at``)."""
    return replace(later(*args, tz=tz), wall_clock=True)


ACCEPTED: list[tuple[str, str, ParsedSchedule]] = [
    # standard cron and macros, kept as written
    ("0 9 * * 1-5", "UTC", cron("0 9 * * 1-5")),
    ("  0   9 *  * 1-5 ", "UTC", cron("0 9 * * 1-5")),
    ("0 9 * * MON-FRI", "Europe/Paris", cron("0 9 * * MON-FRI")),
    ("*/15 * * * *", "UTC", cron("*/15 * * * *")),
    ("0 9 13 * 5", "UTC", cron("0 9 13 * 5")),
    ("@daily", "UTC", cron("@daily")),
    ("@HOURLY", "UTC", cron("@HOURLY")),
    ("@weekly", "UTC", cron("@weekly")),
    # bare words are cron; see the module docstring
    ("daily", "UTC", cron("0 0 * * *")),
    ("Hourly", "UTC", cron("0 * * * *")),
    ("weekly", "UTC", cron("0 0 * * 0")),
    ("monthly", "UTC", cron("0 0 1 * *")),
    ("yearly", "UTC", cron("0 0 1 1 *")),
    # intervals
    ("every 5 minutes", "UTC", every(300)),
    ("Every  5  Minutes", "UTC", every(300)),
    ("every minute", "UTC", every(60)),
    ("every 2h", "UTC", every(7200)),
    ("every 90s", "UTC", every(90)),
    ("every 1.5 hours", "UTC", every(5400)),
    ("every 30 sec", "UTC", every(30)),
    ("every 2 days", "UTC", every(172800)),
    ("every week", "UTC", every(604800)),
    ("every 10m", "UTC", every(600)),
    ("every hour", "UTC", every(3600)),
    ("every day", "UTC", every(86400)),
    ("every 3 hrs", "UTC", every(10800)),
    ("every 2 weeks", "UTC", every(1209600)),
    ("every 0.1 min", "UTC", every(6)),
    ("every 0.5 seconds", "UTC", every(0.5)),
    # a time on some days
    ("every day at 09:00", "UTC", cron("0 9 * * *")),
    ("daily at 9:30", "UTC", cron("30 9 * * *")),
    ("every monday at 8:30", "UTC", cron("30 8 * * 1")),
    ("every mon at 8:30", "UTC", cron("30 8 * * 1")),
    ("mondays at 8:30", "UTC", cron("30 8 * * 1")),
    ("on mondays at 8:30", "UTC", cron("30 8 * * 1")),
    ("EVERY Monday AT 8:30PM", "UTC", cron("30 20 * * 1")),
    ("every monday and friday at 17:00", "UTC", cron("0 17 * * 1,5")),
    ("mondays and fridays at 17:00", "UTC", cron("0 17 * * 1,5")),
    ("every mon,wed,fri at 7:00", "UTC", cron("0 7 * * 1,3,5")),
    ("every mon, tue, wed and thu at 7:00", "UTC", cron("0 7 * * 1-4")),
    ("every sunday at 7:00", "UTC", cron("0 7 * * 0")),
    ("every tues and thurs at 7:00", "UTC", cron("0 7 * * 2,4")),
    ("every sat and sun at 10:00", "UTC", cron("0 10 * * 0,6")),
    # a span of days, wrapping past Sunday (it was "'mon-fri' is not a day")
    ("every mon-fri at 9:00", "UTC", cron("0 9 * * 1-5")),
    ("every monday-friday at 9am", "UTC", cron("0 9 * * 1-5")),
    ("every tues-thurs at 8:00", "UTC", cron("0 8 * * 2-4")),
    ("every sat-sun at 10:00", "UTC", cron("0 10 * * 0,6")),
    ("every fri-mon at 9:00", "UTC", cron("0 9 * * 0,1,5,6")),
    ("every mon-sun at 9:00", "UTC", cron("0 9 * * *")),
    ("every mon-wed and fri at 7:00", "UTC", cron("0 7 * * 1-3,5")),
    ("weekdays at 18:00", "UTC", cron("0 18 * * 1-5")),
    ("every weekday at 18:00", "UTC", cron("0 18 * * 1-5")),
    ("weekends at 10:00", "UTC", cron("0 10 * * 0,6")),
    ("every weekend at 10:00", "UTC", cron("0 10 * * 0,6")),
    ("every day at 9am", "UTC", cron("0 9 * * *")),
    ("every day at 9:15 pm", "UTC", cron("15 21 * * *")),
    ("every day at 12am", "UTC", cron("0 0 * * *")),
    ("every day at 12pm", "UTC", cron("0 12 * * *")),
    ("every day at 11 p.m.", "UTC", cron("0 23 * * *")),
    ("every day at noon", "UTC", cron("0 12 * * *")),
    ("every day at midnight", "UTC", cron("0 0 * * *")),
    (
        "every monday, tuesday, wednesday, thursday, friday, saturday and sunday at 6:00",
        "UTC",
        cron("0 6 * * *"),
    ),
    # the time may come first
    ("at 09:00 every day", "UTC", cron("0 9 * * *")),
    ("at 9am weekdays", "Europe/Paris", cron("0 9 * * 1-5")),
    ("at 8:30 every monday", "UTC", cron("30 8 * * 1")),
    # once, after a delay (elapsed time), shown in the zone
    ("in 30 minutes", "UTC", later(2026, 3, 10, 12, 30)),
    ("in 2 hours", "Europe/Paris", later(2026, 3, 10, 15, 0, tz=PARIS)),
    ("in 90s", "UTC", later(2026, 3, 10, 12, 1, 30)),
    ("in 1 day", "America/New_York", later(2026, 3, 11, 8, 0, tz=NEW_YORK)),
    ("in 1.5 h", "UTC", later(2026, 3, 10, 13, 30)),
    # once, at a date and time
    ("at 2026-03-15 14:00", "UTC", at(2026, 3, 15, 14, 0)),
    ("at 2026-03-15 14:00", "Europe/Paris", at(2026, 3, 15, 14, 0, tz=PARIS)),
    ("at 2026-03-15T14:00", "America/New_York", at(2026, 3, 15, 14, 0, tz=NEW_YORK)),
    ("on 2026-03-15 at 14:00", "Europe/Paris", at(2026, 3, 15, 14, 0, tz=PARIS)),
    ("on 2026-03-15 at 2pm", "UTC", at(2026, 3, 15, 14, 0)),
    ("2026-03-15 14:00", "UTC", at(2026, 3, 15, 14, 0)),
    ("at 14:00 on 2026-03-15", "UTC", at(2026, 3, 15, 14, 0)),
    ("2026-03-15T14:00:00", "Europe/Paris", at(2026, 3, 15, 14, 0, tz=PARIS)),
    (
        "2026-03-15T14:00:00+01:00",
        "America/New_York",
        once(2026, 3, 15, 14, 0, tz=fixed_offset(timedelta(hours=1))),
    ),
    ("2026-03-15T14:00:00Z", "Europe/Paris", once(2026, 3, 15, 14, 0)),
    ("2026-03-15t14:00:00.250z", "UTC", once(2026, 3, 15, 14, 0, 0, 250000)),
    ("tomorrow at 9:00", "Europe/Paris", wall(2026, 3, 11, 9, 0, tz=PARIS)),
    ("today at 17:00", "America/New_York", wall(2026, 3, 10, 17, 0, tz=NEW_YORK)),
    ("at 9am tomorrow", "UTC", wall(2026, 3, 11, 9, 0)),
]


@pytest.mark.parametrize(("text", "zone", "expected"), ACCEPTED)
def test_parse_accepted(text: str, zone: str, expected: ParsedSchedule) -> None:
    parsed = parse_schedule(text, now=NOW, timezone=zone)
    assert parsed == expected
    assert type(parsed.interval_seconds) is type(expected.interval_seconds)
    if expected.run_at is not None:
        assert parsed.run_at is not None
        assert parsed.run_at.utcoffset() == expected.run_at.utcoffset()


REJECTED: list[tuple[str, str]] = [
    ("", "the schedule is empty"),
    ("   ", "the schedule is empty"),
    ("every", "'every' needs an interval"),
    ("sometimes", "not a schedule this parser understands"),
    ("5 minutes", "not a schedule this parser understands"),
    ("at 25:00", "hour 25 is out of range 0-23"),
    ("at 09:00", "a time alone is ambiguous; say 'every day at 09:00'"),
    ("every 0 minutes", "the interval must be greater than 0"),
    ("every -1 h", "the interval must be greater than 0"),
    ("in -5 minutes", "the delay must be greater than 0"),
    ("in 0s", "the delay must be greater than 0"),
    ("in 99999999999 weeks", "is too far in the future"),
    ("in minutes", "expected 'in <number> <unit>'"),
    ("every monday", "add a time, e.g. 'every monday at 09:00'"),
    ("weekdays", "add a time, e.g. 'weekdays at 09:00'"),
    ("every mon,wed,fri", "add a time"),
    ("every 5 parsecs", "unit 'parsecs' is not one of seconds, minutes"),
    ("in 5 parsecs", "unit 'parsecs' is not one of"),
    ("every fortnight", "unit 'fortnight' is not one of"),
    ("every 5", "write e.g. 'every 5 minutes'"),
    ("0 9 * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("0 9 * * 8", "day of week 8 is out of range 0-7"),
    ("0 25 * * *", "hour 25 is out of range 0-23"),
    ("0 0 30 2 *", "never occurs in FEB"),
    ("@reboot", "unknown macro '@reboot'"),
    ("every day at 24:00", "hour 24 is out of range 0-23"),
    ("every day at 9:60", "minute 60 is out of range 0-59"),
    ("every day at 13pm", "with am/pm the hour must be 1-12"),
    ("every day at 0am", "with am/pm the hour must be 1-12"),
    ("every day at 9", "'9' needs minutes or am/pm"),
    ("every day at 9:00 and 17:00", "'9:00 and 17:00' is not a time"),
    ("every day at soon", "'soon' is not a time"),
    ("monday at 8:30", "say 'every monday' for a weekly schedule"),
    ("weekly at 9:00", "say which days"),
    ("every 2 days at 09:00", "an interval cannot have a time of day"),
    ("every funday at 9:00", "'funday' is not a day"),
    ("every mon-funday at 9:00", "'mon-funday' is not a day"),
    ("mon-fri at 9:00", "say 'every mon-fri' for a weekly schedule"),
    ("2026-03-15", "a date alone is ambiguous; give a time"),
    ("at 2026-03-15", "give a time"),
    ("2026-02-30 14:00", "'2026-02-30' is not a valid date"),
    ("at 2026-03-15 14:00 tomorrow", "is not a time"),
    ("at 2026-03-01 14:00", "is not after now"),
    ("today at 09:00", "is not after now"),
    ("2026-03-10T11:59:59Z", "is not after now"),
]


UNRECOGNISED = {
    "",
    "   ",
    "every",
    "sometimes",
    "5 minutes",
    "in minutes",
    "every monday",
    "weekdays",
    "every mon,wed,fri",
    "every fortnight",
    "every 5",
}


@pytest.mark.parametrize(("text", "fragment"), REJECTED)
def test_parse_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, now=NOW, timezone="UTC")
    message = str(caught.value)
    assert fragment in message
    # The accepted forms are listed only when the text is none of them.
    assert (f"accepted forms: {ACCEPTED_FORMS}" in message) == (text in UNRECOGNISED), message
    assert caught.value.text == " ".join(text.split())
    assert isinstance(caught.value, ValueError)


def test_nonexistent_wall_time_is_rejected() -> None:
    with pytest.raises(ScheduleError, match=r"2026-03-29 02:30 does not exist in Europe/Paris"):
        parse_schedule("at 2026-03-29 02:30", now=NOW, timezone="Europe/Paris")


def test_repeated_wall_time_means_first_pass() -> None:
    parsed = parse_schedule("at 2026-11-01 01:30", now=NOW, timezone="America/New_York")
    assert parsed.run_at is not None
    assert parsed.run_at.utcoffset() == timedelta(hours=-4)


def test_delay_is_elapsed_time_across_dst() -> None:
    before_dst = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # 07:00 EST
    parsed = parse_schedule("in 1 day", now=before_dst, timezone="America/New_York")
    assert parsed.run_at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert parsed.run_at is not None
    assert (parsed.run_at.hour, parsed.run_at.utcoffset()) == (8, timedelta(hours=-4))


def test_today_uses_the_date_in_the_zone() -> None:
    late_utc = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already 03-11 in Paris
    parsed = parse_schedule("today at 9:00", now=late_utc, timezone="Europe/Paris")
    assert parsed == wall(2026, 3, 11, 9, 0, tz=PARIS)


def test_past_times_are_refused_unless_allowed() -> None:
    with pytest.raises(ScheduleError, match="is not after now"):
        parse_schedule("at 2026-03-01 09:00", now=NOW)
    parsed = parse_schedule("at 2026-03-01 09:00", now=NOW, allow_past=True)
    assert parsed == at(2026, 3, 1, 9, 0)
    assert not parsed.relative


def test_unknown_timezone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        parse_schedule("daily", now=NOW, timezone="Mars/Olympus")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        parse_schedule("in 5 minutes", now=datetime(2026, 3, 10, 12, 0))


@pytest.mark.parametrize(
    ("parsed", "fields"),
    [
        (cron("0 9 * * 1-5"), {"task_type": CRON, "cron_expression": "0 9 * * 1-5"}),
        (every(300), {"task_type": INTERVAL, "interval_seconds": 300}),
        (
            once(2026, 3, 15, 14),
            {"task_type": ONE_TIME, "run_at": datetime(2026, 3, 15, 14, tzinfo=UTC)},
        ),
    ],
)
def test_fields(parsed: ParsedSchedule, fields: dict[str, Any]) -> None:
    assert parsed.fields() == fields


def test_fields_build_a_task_definition() -> None:
    from scheduler.models import TaskDefinition

    parsed = parse_schedule("weekdays at 18:00", now=NOW, timezone="Europe/Paris")
    task = TaskDefinition(id="t", prompt="hi", timezone="Europe/Paris", **parsed.fields())
    assert task.cron_expression == "0 18 * * 1-5"
    assert task.next_run_times(1, after=NOW) == [datetime(2026, 3, 10, 18, tzinfo=PARIS)]
