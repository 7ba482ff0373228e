"""Standard (Vixie) cron expressions, parsed into explicit sets of values.

APScheduler 3 has its own cron dialect (weekday 0 is Monday, ``7`` is invalid, day of month
and day of week are ANDed, no ``@daily``). This module reads *standard* cron and produces a
:class:`CronSpec`, from which :mod:`scheduler.triggers` builds APScheduler triggers with the
standard meaning. It is pure: no clock, no I/O.

Accepted: five fields ``minute hour day-of-month month day-of-week``; in each field ``*``,
numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (from ``a`` to the maximum),
comma lists; month names ``JAN``..``DEC`` and weekday names ``SUN``..``SAT`` in any case;
weekday ``0`` and ``7`` are Sunday, and a weekday range may end on Sunday (``fri-sun``,
``5-0``: Friday to Sunday). Macros: ``@hourly @daily @midnight @weekly @monthly
@yearly @annually``. When both day fields are restricted (neither starts with ``*``), a day
matches if *either* matches, as in Vixie cron.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["MACROS", "CronError", "CronSpec", "parse_cron"]

MACROS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The longest each month can be (February: leap years).
_MONTH_LENGTHS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 7, _WEEKDAYS, 0),
)

# Quartz-style items (``5#2``, ``?``, ``L``, ``15W``, ``5L``, ``LW``) that another scheduler
# would take: an item that does not parse and has one of them is refused saying so.
_EXTENDED = re.compile(r"[#?]|^(?:\d*L|\d*W|LW)$", re.IGNORECASE)
_ITEM = re.compile(
    r"^(?P<start>\*|[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?(?:/(?P<step>[^/]*))?$", re.IGNORECASE
)


class CronError(ValueError):
    """A cron expression that does not parse; the message says which part and why."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed standard cron expression.

    Attributes:
        expression: The expression as given (macros kept as written).
        minutes, hours, days, months: The values each field allows.
        weekdays: Allowed weekdays, ``0`` = Sunday .. ``6`` = Saturday.
        day_restricted: Day-of-month does not start with ``*``.
        weekday_restricted: Day-of-week does not start with ``*``.
        hour_restricted: Hour does not start with ``*`` (decides the DST fall-back rule).
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool
    hour_restricted: bool

    @property
    def either_day_matches(self) -> bool:
        """Both day fields are restricted, so a day matches if either field matches."""
        return self.day_restricted and self.weekday_restricted


@functools.lru_cache(maxsize=1024)
def parse_cron(expression: str) -> CronSpec:
    """Parse a standard cron expression.

    Args:
        expression: Five fields, or one of the macros in :data:`MACROS`.

    Returns:
        The expanded :class:`CronSpec`.

    Raises:
        CronError: The expression does not parse, a value is out of range, or the
            expression can never fire (``0 0 30 2 *``).
    """
    text = " ".join(expression.split())
    if not text:
        raise CronError("cron expression is empty; expected 5 fields such as '0 9 * * 1-5'")
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            raise CronError(f"unknown macro {text!r}; use one of {', '.join(sorted(set(MACROS)))}")
        text = macro
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    spec = CronSpec(
        expression=expression.strip(),
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        day_restricted=not parts[2].startswith("*"),
        weekday_restricted=not parts[4].startswith("*"),
        hour_restricted=not parts[1].startswith("*"),
    )
    _check_can_fire(spec)
    return spec


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):  # (as written: an error says 'L', not 'l')
        try:
            values.update(_parse_item(item, field))
        except CronError:
            if _EXTENDED.search(item):
                raise CronError(
                    f"{field.name} {item!r}: '#', '?', 'L' and 'W' are Quartz-style, "
                    "not standard cron (which this scheduler reads)"
                ) from None
            raise
    return frozenset(values)


def _parse_item(item: str, field: _Field) -> range:
    match = _ITEM.match(item)
    if match is None:
        raise CronError(f"{field.name} {item!r} is not a value, range, list or step")
    start_text, end_text, step_text = match.group("start", "end", "step")
    step = 1
    if step_text is not None:
        # ASCII digits only, as a value's: int() refuses '²' and reads '٣' as 3
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise CronError(f"{field.name} step {step_text!r} must be a whole number above 0")
        step = int(step_text)
    if start_text == "*":
        if end_text is not None:
            raise CronError(f"{field.name} {item!r}: '*' cannot start a range")
        return range(field.low, field.high + 1, step)
    start = _parse_value(start_text, field)
    if end_text is None:
        # "a/n" means from a to the field's maximum, every n; a plain "a" is one value.
        end = field.high if step_text is not None else start
    else:
        end = _parse_value(end_text, field)
        if end == 0 and start > 0 and field.names is _WEEKDAYS:
            # Sunday ends a weekday range as 7: ``sat-sun`` is the weekend (``sun`` and
            # ``0`` read as 0, so it ran "backwards", and the advice to swap it gave
            # ``sun-sat``: every day)
            end = 7
        if end < start:
            raise CronError(
                f"{field.name} range {start_text}-{end_text} runs backwards; "
                f"write the lower value first"
            )
    return range(start, end + 1, step)


def _parse_value(text: str, field: _Field) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in field.names:
        value = field.names.index(text.lower()) + field.names_start
    else:
        expected = f"{field.low}-{field.high}"
        if field.names:
            expected += f" or {field.names[0].upper()}-{field.names[-1].upper()}"
        raise CronError(f"{field.name} {text!r} is not a number or name ({expected})")
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name} {value} is out of range {field.low}-{field.high}")
    return value


def _check_can_fire(spec: CronSpec) -> None:
    if spec.weekday_restricted and spec.day_restricted:
        return  # every weekday occurs in every month
    if spec.weekday_restricted:
        return
    shortest_day = min(spec.days)
    if all(shortest_day > _MONTH_LENGTHS[month - 1] for month in spec.months):
        months = ", ".join(_MONTHS[m - 1].upper() for m in sorted(spec.months))
        raise CronError(
            f"day of month {shortest_day} never occurs in {months}; it would never fire"
        )
