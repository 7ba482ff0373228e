"""The words of schedules: durations (``5 minutes``), clock times (``9:15 pm``), day
phrases (``weekdays``, ``mondays and fridays``) and naming runs of values (``1-5``). Each
reader raises :class:`Rejected` with a message a person can act on."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import time
from decimal import Decimal

__all__ = [
    "DAY_NAMES",
    "TIME_HINT",
    "UNITS",
    "WORD_MACROS",
    "Rejected",
    "clock",
    "name_runs",
    "seconds",
    "unit_hint",
    "weekdays",
]


class Rejected(Exception):
    """Raised inside the parser; :func:`~scheduler.schedules.parse_schedule` adds the text
    (and the accepted forms, when ``show_forms``: the text is none of them)."""

    def __init__(self, message: str, *, show_forms: bool = False) -> None:
        super().__init__(message)
        self.show_forms = show_forms


UNITS: dict[str, int] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 604800),
}
WORD_MACROS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "yearly": "0 0 1 1 *",
}
DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_DAY_ABBREVIATIONS = {"tues": 2, "thur": 4, "thurs": 4} | {
    name[:3]: number for number, name in enumerate(DAY_NAMES)
}
_DAY_GROUPS = {
    "every day": "*",
    "daily": "*",
    "every weekday": "1-5",
    "weekdays": "1-5",
    "every weekend": "0,6",
    "weekends": "0,6",
}
CLOCK_PARTS = re.compile(
    r"^(?:(?P<word>noon|midnight)|(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?"
    r"\s*(?:(?P<meridiem>[ap])\.?m\.?)?)$"
)
TIME_HINT = "use HH:MM (09:00), 9am, 9:15 pm, noon or midnight"


def unit_hint(unit: str) -> str:
    return f"unit {unit!r} is not one of seconds, minutes, hours, days, weeks (or s, m, h, d, w)"


def seconds(amount: str, unit: str) -> int | float:
    if unit not in UNITS:
        raise Rejected(unit_hint(unit))
    seconds = Decimal(amount) * UNITS[unit]
    return int(seconds) if seconds == seconds.to_integral_value() else float(seconds)


def clock(text: str) -> time:
    """Read ``09:00``, ``9am``, ``9:15 pm``, ``noon`` or ``midnight``."""
    match = CLOCK_PARTS.match(text)
    if match is None:
        raise Rejected(f"{text!r} is not a time; {TIME_HINT}")
    if match["word"]:
        return time(12 if match["word"] == "noon" else 0)
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    if minute > 59:
        raise Rejected(f"minute {minute} is out of range 0-59")
    if match["meridiem"]:
        if not 1 <= hour <= 12:
            raise Rejected(f"{text!r}: with am/pm the hour must be 1-12")
        hour = hour % 12 + (12 if match["meridiem"] == "p" else 0)
    elif match["minute"] is None:
        raise Rejected(f"{text!r} needs minutes or am/pm: write {hour:02}:00 or {hour}am/pm")
    elif hour > 23:
        raise Rejected(f"hour {hour} is out of range 0-23")
    return time(hour, minute)


def weekdays(phrase: str) -> str:
    """The day-of-week cron field for ``every day``, ``weekdays``, ``every mon,fri`` ..."""
    phrase = phrase.removeprefix("on ")
    if phrase in _DAY_GROUPS:
        return _DAY_GROUPS[phrase]
    if re.match(r"^every\s[-+]?[\d.]", phrase):
        raise Rejected(
            "an interval cannot have a time of day; use 'every day at 09:00' or a cron expression"
        )
    if phrase in WORD_MACROS:
        raise Rejected(f"{phrase!r} with a time: say which days, e.g. 'every monday at 09:00'")
    every = phrase.startswith("every ")
    words = [w for w in re.split(r"[\s,&]+", phrase.removeprefix("every ")) if w != "and"]
    days: set[int] = set()
    for word in words:
        first, _, last = word.partition("-")  # ``mon-fri``: the days from one to the other
        start = _day(first, word)
        end = _day(last, word) if last else start
        if not every and (last or word == _singular(word)):  # ("mondays" says it already)
            raise Rejected(f"say 'every {phrase}' for a weekly schedule")
        days.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    if not days:
        raise Rejected("name at least one day")
    return "*" if len(days) == 7 else ",".join(name_runs(sorted(days), str, "-"))


def _singular(word: str) -> str:
    return word.removesuffix("s") if word.endswith("days") else word


def _day(word: str, written: str) -> int:
    """The cron number of a day name (``monday``, ``mon``, ``mondays``)."""
    singular = _singular(word)
    number = _DAY_ABBREVIATIONS.get(singular[:3] if singular in DAY_NAMES else singular)
    if number is None:
        raise Rejected(
            f"{written!r} is not a day; use 'every day', 'weekdays', 'weekends', day names "
            "such as 'every monday' or 'mondays and fridays', or a span, 'every mon-fri'"
        )
    return number


def name_runs(values: Sequence[int], name: Callable[[int], str], through: str) -> list[str]:
    """Name sorted values, writing three or more consecutive ones as ``first<through>last``."""
    parts: list[str] = []
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or values[end] != values[end - 1] + 1:
            run = values[start:end]
            if len(run) >= 3:
                parts.append(f"{name(run[0])}{through}{name(run[-1])}")
            else:
                parts.extend(name(value) for value in run)
            start = end
    return parts
