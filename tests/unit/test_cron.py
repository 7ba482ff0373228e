"""Standard cron semantics, checked against hand-computed calendars (pure, no scheduler)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler import TaskDefinition
from scheduler.cron import CronError, parse_cron

UTC = ZoneInfo("UTC")


def fire_times_utc(expression: str, after: str, count: int, timezone: str = "UTC") -> list[str]:
    task = TaskDefinition(id="t", cron_expression=expression, prompt="p", timezone=timezone)
    start = datetime.fromisoformat(after).replace(tzinfo=ZoneInfo(timezone))
    return [
        t.astimezone(UTC).strftime("%Y-%m-%d %H:%M %a")
        for t in task.next_run_times(count, after=start)
    ]


# 2026-11-21 is a Saturday; 2026-11-13 a Friday.
CASES = [
    pytest.param(
        "0 9 * * 1-5",
        "2026-11-21 00:00",
        6,
        [
            "2026-11-23 09:00 Mon",
            "2026-11-24 09:00 Tue",
            "2026-11-25 09:00 Wed",
            "2026-11-26 09:00 Thu",
            "2026-11-27 09:00 Fri",
            "2026-11-30 09:00 Mon",
        ],
        id="1-5 is Monday to Friday",
    ),
    pytest.param(
        "0 0 * * 0",
        "2026-11-21 00:00",
        2,
        ["2026-11-22 00:00 Sun", "2026-11-29 00:00 Sun"],
        id="0 is Sunday",
    ),
    pytest.param(
        "0 0 * * 7",
        "2026-11-21 00:00",
        2,
        ["2026-11-22 00:00 Sun", "2026-11-29 00:00 Sun"],
        id="7 is Sunday",
    ),
    pytest.param(
        "0 0 * * 5-7",
        "2026-11-21 00:00",
        3,
        ["2026-11-22 00:00 Sun", "2026-11-27 00:00 Fri", "2026-11-28 00:00 Sat"],
        id="5-7 is Friday to Sunday",
    ),
    pytest.param(
        "0 12 * * MON,fri",
        "2026-11-21 00:00",
        3,
        ["2026-11-23 12:00 Mon", "2026-11-27 12:00 Fri", "2026-11-30 12:00 Mon"],
        id="weekday names in any case",
    ),
    pytest.param(
        "0 9 13 * 5",
        "2026-11-01 00:00",
        8,
        [
            "2026-11-06 09:00 Fri",
            "2026-11-13 09:00 Fri",
            "2026-11-20 09:00 Fri",
            "2026-11-27 09:00 Fri",
            "2026-12-04 09:00 Fri",
            "2026-12-11 09:00 Fri",
            "2026-12-13 09:00 Sun",
            "2026-12-18 09:00 Fri",
        ],
        id="day-of-month OR day-of-week when both restricted",
    ),
    pytest.param(
        "0 9 */2 * 1",
        "2026-11-01 00:00",
        4,
        [
            "2026-11-09 09:00 Mon",
            "2026-11-23 09:00 Mon",
            "2026-12-07 09:00 Mon",
            "2026-12-21 09:00 Mon",
        ],
        id="star-prefixed day-of-month is ANDed (Vixie)",
    ),
    pytest.param(
        "30 8 1 jan,JUL *",
        "2026-11-01 00:00",
        2,
        ["2027-01-01 08:30 Fri", "2027-07-01 08:30 Thu"],
        id="month names",
    ),
    pytest.param(
        "*/20 9-10 * * *",
        "2026-11-21 00:00",
        7,
        [
            "2026-11-21 09:00 Sat",
            "2026-11-21 09:20 Sat",
            "2026-11-21 09:40 Sat",
            "2026-11-21 10:00 Sat",
            "2026-11-21 10:20 Sat",
            "2026-11-21 10:40 Sat",
            "2026-11-22 09:00 Sun",
        ],
        id="steps and ranges",
    ),
    pytest.param(
        "10-30/10 0 * * *",
        "2026-11-21 00:00",
        4,
        [
            "2026-11-21 00:10 Sat",
            "2026-11-21 00:20 Sat",
            "2026-11-21 00:30 Sat",
            "2026-11-22 00:10 Sun",
        ],
        id="range with step",
    ),
    pytest.param(
        "45/5 23 * * *",
        "2026-11-21 00:00",
        4,
        [
            "2026-11-21 23:45 Sat",
            "2026-11-21 23:50 Sat",
            "2026-11-21 23:55 Sat",
            "2026-11-22 23:45 Sun",
        ],
        id="value with step runs to the maximum",
    ),
    pytest.param(
        "0 0 31 * *",
        "2026-11-01 00:00",
        2,
        ["2026-12-31 00:00 Thu", "2027-01-31 00:00 Sun"],
        id="day 31 skips short months",
    ),
    pytest.param(
        "@hourly",
        "2026-11-21 10:30",
        2,
        ["2026-11-21 11:00 Sat", "2026-11-21 12:00 Sat"],
        id="@hourly",
    ),
    pytest.param(
        "@daily",
        "2026-11-21 10:30",
        2,
        ["2026-11-22 00:00 Sun", "2026-11-23 00:00 Mon"],
        id="@daily",
    ),
    pytest.param("@midnight", "2026-11-21 10:30", 1, ["2026-11-22 00:00 Sun"], id="@midnight"),
    pytest.param(
        "@weekly",
        "2026-11-21 10:30",
        2,
        ["2026-11-22 00:00 Sun", "2026-11-29 00:00 Sun"],
        id="@weekly is Sunday midnight",
    ),
    pytest.param(
        "@monthly",
        "2026-11-21 10:30",
        2,
        ["2026-12-01 00:00 Tue", "2027-01-01 00:00 Fri"],
        id="@monthly",
    ),
    pytest.param("@yearly", "2026-11-21 10:30", 1, ["2027-01-01 00:00 Fri"], id="@yearly"),
    pytest.param(
        "@ANNUALLY", "2026-11-21 10:30", 1, ["2027-01-01 00:00 Fri"], id="@annually any case"
    ),
]


@pytest.mark.parametrize(("expression", "after", "count", "expected"), CASES)
def test_cron_fire_times(expression: str, after: str, count: int, expected: list[str]) -> None:
    assert fire_times_utc(expression, after, count) == expected


# America/New_York: clocks go 02:00 -> 03:00 on 2026-03-08 and 02:00 -> 01:00 on 2026-11-01.
DST_CASES = [
    pytest.param(
        "30 2 * * *",
        "2026-03-07 12:00",
        3,
        ["2026-03-08 07:30 Sun", "2026-03-09 06:30 Mon", "2026-03-10 06:30 Tue"],
        id="spring-forward gap fires once, shifted to 03:30 EDT",
    ),
    pytest.param(
        "0 9 * * *",
        "2026-03-07 12:00",
        2,
        ["2026-03-08 13:00 Sun", "2026-03-09 13:00 Mon"],
        id="09:00 stays 09:00 local across spring-forward",
    ),
    pytest.param(
        "30 1 * * *",
        "2026-10-31 12:00",
        2,
        ["2026-11-01 05:30 Sun", "2026-11-02 06:30 Mon"],
        id="repeated fall-back hour fires once for a fixed hour",
    ),
    pytest.param(
        "0,30 * * * *",
        "2026-11-01 00:45",
        5,
        [
            "2026-11-01 05:00 Sun",
            "2026-11-01 05:30 Sun",
            "2026-11-01 06:00 Sun",
            "2026-11-01 06:30 Sun",
            "2026-11-01 07:00 Sun",
        ],
        id="wildcard hour keeps real-time cadence through fall-back",
    ),
]


@pytest.mark.parametrize(("expression", "after", "count", "expected"), DST_CASES)
def test_cron_dst_new_york(expression: str, after: str, count: int, expected: list[str]) -> None:
    assert fire_times_utc(expression, after, count, timezone="America/New_York") == expected


def test_fire_times_are_aware_in_task_zone() -> None:
    task = TaskDefinition(id="t", cron_expression="0 9 * * *", prompt="p", timezone="Europe/Paris")
    times = task.next_run_times(2, after=datetime(2026, 7, 1, tzinfo=UTC))
    assert all(t.tzinfo is not None for t in times)
    assert [t.isoformat() for t in times] == [
        "2026-07-01T09:00:00+02:00",
        "2026-07-02T09:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [("sat-sun", {6, 0}), ("FRI-SUN", {5, 6, 0}), ("5-0", {5, 6, 0}), ("mon-sun/2", {1, 3, 5, 0})],
)
def test_a_weekday_range_may_end_on_sunday(field: str, weekdays: set[int]) -> None:
    assert parse_cron(f"0 10 * * {field}").weekdays == weekdays


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 25 * * *", "hour 25 is out of range 0-23"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("* * 0 * *", "day of month 0 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range 1-12"),
        ("* * * * 8", "day of week 8 is out of range 0-7"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("", "empty"),
        ("@reboot", "unknown macro '@reboot'"),
        ("5-1 * * * *", "runs backwards"),
        ("* * * * fri-mon", "runs backwards"),  # only Sunday ends a weekday range as 7
        ("*/0 * * * *", "step '0' must be a whole number above 0"),
        # digits of other scripts: int() fails on '²' (a bare ValueError) and takes '٣' as 3
        ("0 9 * * 1/²", "step '²' must be a whole number above 0"),
        ("*/٣ * * * *", "step '٣' must be a whole number above 0"),
        ("* * * * FUNDAY", "is not a number or name"),
        ("0 0 30 2 *", "never occurs in FEB"),
        ("a,b * * * *", "is not a number or name"),
        ("* * * * 5#2", "day of week '5#2': .* Quartz-style, not standard cron"),
        ("0 0 1,L * *", "day of month 'L': .* Quartz-style"),  # as written, not 'l'
        ("* * * * FUNDAY", "day of week 'FUNDAY' is not"),
    ],
)
def test_bad_cron_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression)
