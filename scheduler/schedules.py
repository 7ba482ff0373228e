"""Schedules as people write them, turned into a task's explicit fields, and back into words.

:func:`parse_schedule` reads one string (case-insensitive, extra whitespace ignored):

* standard cron (``0 9 * * 1-5``) and the macros of :data:`scheduler.cron.MACROS`
  (``@daily``), kept as written;
* intervals: ``every 5 minutes``, ``every 2h``, ``every 1.5 hours``, ``every minute``; units
  ``s sec secs second seconds``, ``m min mins minute minutes``, ``h hr hrs hour hours``,
  ``d day days``, ``w week weeks``;
* a time on some days, as cron: ``every day at 09:00``, ``daily at 9:30``, ``every monday at
  8:30``, ``every mon,wed,fri at 7am``, ``mondays and fridays at 17:00``, ``weekdays at
  18:00`` (``1-5``), ``weekends at 10:00`` (``0,6``); the time may also come first (``at
  09:00 every day``). Times: ``09:00``, ``9:00``, ``9am``, ``9:15 pm``, ``noon``,
  ``midnight``;
* once: ``in 30 minutes`` (elapsed time from ``now``), ``at 2030-03-15 14:00``, ``on
  2030-03-15 at 2pm``, ``today at 17:00``, ``tomorrow at 9:00`` and ISO 8601 datetimes.

Decisions on ambiguous forms:

* ``every day`` / ``every week`` / ``every hour`` alone are intervals counted from when the
  task is added (86400 s, 604800 s, 3600 s), while the words ``hourly``, ``daily``,
  ``weekly``, ``monthly`` and ``yearly`` alone are cron at midnight / minute 0:
  ``0 * * * *``, ``0 0 * * *``, ``0 0 * * 0`` (Sunday), ``0 0 1 * *``, ``0 0 1 1 *``.
* Day names without a time (``every monday``), a time without a day (``at 09:00``), a bare
  hour (``every day at 9``), a date without a time and ``weekly at 09:00`` are rejected.
* A weekly form needs ``every`` or plural day names: ``monday at 8:30`` is rejected.
* An interval cannot have a time of day (``every 2 days at 09:00`` is rejected).
* A one-time datetime without an offset is wall time in ``timezone``; one that does not
  exist there (inside a spring-forward gap) is rejected, and a repeated one (fall-back)
  means its first pass. One with an offset keeps it. A time not after ``now`` is rejected.

Everything here is pure: the caller passes ``now``. :mod:`scheduler.wording` says a schedule
in words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from pydantic_core import PydanticCustomError

from scheduler import timewords
from scheduler.cron import CronError, parse_cron
from scheduler.enums import TaskType
from scheduler.exceptions import ScheduleError
from scheduler.limits import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from scheduler.timewords import Rejected
from scheduler.zones import skipped_wall_time, unknown_zone_message, zone_or_none

__all__ = [
    "ACCEPTED_FORMS",
    "PENDING_WALL_CLOCK",
    "ParsedSchedule",
    "ScheduleError",
    "explicit_schedule",
    "parse_schedule",
    "validation_now",
    "wall_clock_time",
]

ACCEPTED_FORMS = ScheduleError.ACCEPTED_FORMS

#: The key under which :func:`explicit_schedule` gives, for ``today at 9:00`` read with no
#: zone known (a ``TaskDefinition`` made in Python without ``timezone``), what reads it
#: again in the zone the task gets (:func:`wall_clock_time`): which day "today" is, and
#: which instant 9:00 is, depend on the zone.
PENDING_WALL_CLOCK = "_pending_wall_clock"


MAX_SCHEDULE_CHARS = 256

_AMOUNT = r"(?P<amount>[-+]?\d*\.?\d+)\s*(?P<unit>[a-z]+)"
_CLOCK = r"noon|midnight|\d{1,2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?"


# What a relative schedule (``in 30 minutes``) in a TaskDefinition made without a ``now``
# counts from: the wall clock, or while ``scheduler.testing.clocked_scheduler`` runs, its
# test clock (a definition is made before any scheduler sees it).
VALIDATION_CLOCK: ContextVar[Callable[[], datetime] | None] = ContextVar(
    "scheduler_validation_clock", default=None
)


def validation_now() -> datetime:
    """The now a schedule's text is read against (``today at 9:00`` past?): the test clock
    while ``clocked_scheduler`` runs (:data:`VALIDATION_CLOCK`), else the wall clock."""
    clock = VALIDATION_CLOCK.get()
    return clock() if clock is not None else datetime.now(UTC)


@dataclass(frozen=True)
class ParsedSchedule:
    """The explicit fields of a task's schedule.

    Attributes:
        task_type: Which of the fields below is set.
        cron_expression: Standard cron, for ``TaskType.CRON``.
        interval_seconds: Seconds between runs (``int`` when whole), for ``TaskType.INTERVAL``.
        run_at: Aware datetime, for ``TaskType.ONE_TIME``.
        relative: ``run_at`` was counted from ``now`` (``in 30 minutes``, ``tomorrow at
            9:00``), so the same text means another time on another day.
        wall_clock: ``run_at`` is a wall-clock time read in the zone (the text gave no
            offset: ``at 2030-03-15 14:00``, ``today at 9:00``): which instant it is (and for
            ``today`` which day) depends on the zone it was read in.
    """

    task_type: TaskType
    cron_expression: str | None = None
    interval_seconds: int | float | None = None
    run_at: datetime | None = None
    relative: bool = False
    wall_clock: bool = False

    def fields(self) -> dict[str, Any]:
        """The set fields and ``task_type``, to merge into a ``TaskDefinition``'s data."""
        values = {
            "task_type": self.task_type,
            "cron_expression": self.cron_expression,
            "interval_seconds": self.interval_seconds,
            "run_at": self.run_at,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class _Context:
    text: str  # stripped, inner whitespace collapsed, case kept
    now: datetime  # in zone
    zone: ZoneInfo
    allow_past: bool = False


def parse_schedule(
    text: str, *, now: datetime, timezone: str = "UTC", allow_past: bool = False
) -> ParsedSchedule:
    """Turn a schedule string into explicit task fields.

    Args:
        text: The schedule, e.g. ``every day at 09:00`` (see the module docstring).
        now: Aware current time; relative forms (``in 30 minutes``, ``today``) count from it.
        timezone: IANA zone in which wall-clock times in ``text`` are read.
        allow_past: Accept a one-time datetime that is not after ``now`` (a tasks file
            keeps one-time tasks after their time has passed).

    Returns:
        The parsed schedule.

    Raises:
        ScheduleError: The text is not an accepted form, is ambiguous or out of range, or
            ``timezone`` is unknown.
        ValueError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleError(
            text[:40] + "…", f"a schedule is at most {MAX_SCHEDULE_CHARS} characters long"
        )
    collapsed = " ".join(text.split())
    zone = zone_or_none(timezone)
    if zone is None:
        raise ScheduleError(collapsed, unknown_zone_message(timezone))
    try:
        context = _Context(collapsed, now.astimezone(zone), zone, allow_past)
        return _parse(collapsed.lower(), context)
    except Rejected as exc:
        raise ScheduleError(collapsed, str(exc), show_forms=exc.show_forms) from None


def _parse(lowered: str, ctx: _Context) -> ParsedSchedule:
    if not lowered:
        raise Rejected("the schedule is empty", show_forms=True)
    for pattern, handler in _FORMS:
        match = pattern.match(lowered)
        if match is not None:
            return handler(match, ctx)
    _unrecognised(lowered)


# -- one function per form ----------------------------------------------------------------


def _cron(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    try:
        parse_cron(ctx.text)
    except CronError as exc:
        raise Rejected(f"invalid cron expression: {exc}") from None
    return ParsedSchedule(TaskType.CRON, cron_expression=ctx.text)


def _word_macro(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    return ParsedSchedule(TaskType.CRON, cron_expression=timewords.WORD_MACROS[match["word"]])


def _every_amount(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    seconds = timewords.seconds(match["amount"], match["unit"])
    if seconds <= 0:
        raise Rejected(f"the interval must be greater than 0, got {match[0][6:]!r}")
    if seconds < MIN_INTERVAL_SECONDS or seconds > MAX_INTERVAL_SECONDS:
        raise Rejected(
            f"the interval must be from {MIN_INTERVAL_SECONDS:g} s to "
            f"{MAX_INTERVAL_SECONDS // 86400:,} days, got {match[0][6:]!r}"
        )
    return ParsedSchedule(TaskType.INTERVAL, interval_seconds=seconds)


def _every_unit(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    if match["unit"] not in timewords.UNITS:
        _unrecognised(match[0])
    return ParsedSchedule(TaskType.INTERVAL, interval_seconds=timewords.UNITS[match["unit"]])


def _in_duration(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    seconds = timewords.seconds(match["amount"], match["unit"])
    if seconds <= 0:
        raise Rejected(f"the delay must be greater than 0, got {match[0][3:]!r}")
    if seconds > MAX_INTERVAL_SECONDS:
        raise Rejected(f"{match[0][3:]!r} is too far in the future")
    try:
        run_at = (ctx.now.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(ctx.zone)
    except OverflowError:
        raise Rejected(f"{match[0][3:]!r} is too far in the future") from None
    return ParsedSchedule(TaskType.ONE_TIME, run_at=run_at, relative=True)


def _on_date(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    date_text, time_text = match["date"], match["time"]
    if time_text is None:
        raise Rejected(f"a date alone is ambiguous; give a time, e.g. 'at {date_text} 09:00'")
    try:
        day = date.fromisoformat(date_text)
    except ValueError as exc:
        raise Rejected(f"{date_text!r} is not a valid date ({exc})") from None
    if timewords.CLOCK_PARTS.match(time_text):
        return _once(datetime.combine(day, timewords.clock(time_text)), ctx)
    try:
        moment = datetime.fromisoformat(f"{date_text}T{time_text.upper()}")
    except ValueError:
        raise Rejected(f"{time_text!r} is not a time; {timewords.TIME_HINT}") from None
    return _once(moment, ctx)


def _today_or_tomorrow(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    day = ctx.now.date() + timedelta(days=1 if match["day"] == "tomorrow" else 0)
    parsed = _once(datetime.combine(day, timewords.clock(match["time"])), ctx)
    return ParsedSchedule(TaskType.ONE_TIME, run_at=parsed.run_at, relative=True, wall_clock=True)


def _time_first(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    return _parse(f"{match['rest']} at {match['time']}", ctx)


def _days_at_time(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    weekdays = timewords.weekdays(match["days"])
    clock = timewords.clock(match["time"])
    return ParsedSchedule(
        TaskType.CRON, cron_expression=f"{clock.minute} {clock.hour} * * {weekdays}"
    )


def _time_without_day(match: re.Match[str], ctx: _Context) -> ParsedSchedule:
    clock = timewords.clock(match["time"])
    raise Rejected(
        f"a time alone is ambiguous; say 'every day at {clock:%H:%M}' to repeat it or "
        f"'today at {clock:%H:%M}' / 'tomorrow at {clock:%H:%M}' to run once"
    )


_Handler = Callable[[re.Match[str], _Context], ParsedSchedule]
# Tried in order; the first pattern that matches the lowercased text decides.
_FORMS: tuple[tuple[re.Pattern[str], _Handler], ...] = (
    (re.compile(r"^@\S+$"), _cron),
    (re.compile(r"^[\d*?][\d*,/#?-]*(?:\s[\w*,/#?-]+){2,}$"), _cron),  # (#, ?: refused as cron)
    (re.compile(r"^(?P<word>hourly|daily|weekly|monthly|yearly)$"), _word_macro),
    (re.compile(rf"^in\s{_AMOUNT}$"), _in_duration),
    (
        re.compile(
            r"^(?:(?:at|on)\s)?(?P<date>\d{4}-\d{2}-\d{2})(?:(?:\sat\s|\s|t)(?P<time>.+))?$"
        ),
        _on_date,
    ),
    (re.compile(r"^(?P<day>today|tomorrow)\sat\s(?P<time>.+)$"), _today_or_tomorrow),
    (re.compile(rf"^at\s(?P<time>{_CLOCK})\s(?P<rest>[a-z].*)$"), _time_first),
    (re.compile(r"^(?P<days>.+?)\sat\s(?P<time>.+)$"), _days_at_time),
    (re.compile(rf"^every\s{_AMOUNT}$"), _every_amount),
    (re.compile(r"^every\s(?P<unit>[a-z]+)$"), _every_unit),
    (re.compile(r"^at\s(?P<time>.+)$"), _time_without_day),
)


# -- pieces ---------------------------------------------------------------------------------


def _unrecognised(lowered: str) -> NoReturn:
    try:
        timewords.weekdays(lowered)
    except Rejected:
        pass
    else:
        raise Rejected(f"add a time, e.g. '{lowered} at 09:00'", show_forms=True)
    if lowered == "every":
        raise Rejected(
            "'every' needs an interval ('every 5 minutes') or days and a time", show_forms=True
        )
    if lowered.startswith("every "):
        unit = lowered.split()[-1]
        known = unit in timewords.UNITS or not unit.isalpha()
        hint = "write e.g. 'every 5 minutes'" if known else timewords.unit_hint(unit)
        raise Rejected(f"unknown interval {lowered[6:]!r}; {hint}", show_forms=True)
    if lowered.startswith("in "):
        raise Rejected("expected 'in <number> <unit>', e.g. 'in 30 minutes'", show_forms=True)
    raise Rejected("not a schedule this parser understands", show_forms=True)


def _once(moment: datetime, ctx: _Context) -> ParsedSchedule:
    try:  # the first or last day of the calendar, in a zone off UTC, is out of range
        (moment if moment.tzinfo else moment.replace(tzinfo=ctx.zone)).astimezone(UTC)
    except OverflowError:
        raise Rejected(f"{moment:%Y-%m-%d %H:%M} is outside the supported years") from None
    wall = None  # the wall time, when the text gave no offset
    if moment.tzinfo is None:
        wall = moment
        moment = moment.replace(tzinfo=ctx.zone)
        skipped = skipped_wall_time(wall, ctx.zone)
        if skipped is not None:
            raise Rejected(skipped)
    # as instants: two times in one zone compare as wall times (PEP 495 ignores fold), so
    # the first pass of a repeated hour would count as later than its second
    if moment.timestamp() <= ctx.now.timestamp() and not ctx.allow_past:
        raise Rejected(f"{moment.isoformat()} is not after now ({ctx.now.isoformat()})")
    return ParsedSchedule(TaskType.ONE_TIME, run_at=moment, wall_clock=wall is not None)


def explicit_schedule(
    data: dict[str, Any], context: dict[str, Any], schedule_fields: Iterable[str]
) -> dict[str, Any]:
    """The explicit fields for ``data["schedule"]`` (``every 5 minutes``, ``0 9 * * 1-5``...),
    for :class:`~scheduler.models.TaskDefinition` (its errors are validation errors of the
    ``schedule`` field). ``schedule_fields`` are the explicit fields it must not meet too.

    Context keys: ``timezone`` (default zone), ``now``, ``allow_past`` (accept a past
    one-time datetime), ``allow_relative`` (accept ``in 30 minutes``; a tasks file does not,
    since it would mean another time at every apply).
    """
    text = data["schedule"]
    given = [f for f in schedule_fields if data.get(f) is not None]
    if given:
        raise PydanticCustomError(
            "schedule", f"give either schedule or {', '.join(given)}, not both"
        )
    if isinstance(text, date):  # YAML's reading of an unquoted 2030-03-15 14:00:00
        text = text.isoformat()
    if not isinstance(text, str):
        raise PydanticCustomError(
            "schedule", f"schedule must be a string, got {type(text).__name__}"
        )
    zone = data.get("timezone") or context.get("timezone") or "UTC"
    if not isinstance(zone, str):
        raise PydanticCustomError(
            "timezone", f"timezone must be a string (an IANA name), got {type(zone).__name__}"
        )
    if zone_or_none(zone) is None:  # (its type names the key it is about, as its message)
        raise PydanticCustomError("timezone", f"timezone: {unknown_zone_message(zone)}")
    now = context.get("now") or validation_now()
    allow_past = context.get("allow_past", False)
    zone_known = data.get("timezone") is not None or "timezone" in context
    try:  # (no zone yet: a wall time is checked once it has one, see PENDING_WALL_CLOCK)
        parsed = parse_schedule(text, now=now, timezone=zone, allow_past=True)
        past = parsed.run_at is not None and parsed.run_at.timestamp() <= now.timestamp()
        if past and not allow_past and (zone_known or not parsed.wall_clock):  # the refusal
            parsed = parse_schedule(text, now=now, timezone=zone, allow_past=False)
    except ScheduleError as exc:
        raise PydanticCustomError("schedule", str(exc)) from None
    kind = data.get("task_type")  # (given with a schedule, it must be the schedule's)
    if isinstance(kind, str) and kind != parsed.task_type.value:
        raise PydanticCustomError(
            "schedule",
            f"schedule {text!r} makes task_type {parsed.task_type.value!r}, but task_type is "
            f"{str(kind)!r}; leave task_type out, or make them agree",
        )
    if parsed.relative and not context.get("allow_relative", True):
        raise PydanticCustomError(
            "schedule",
            f"schedule {text!r} is relative to now, so it would mean another time at every "
            "apply; write the date and time, e.g. 'at 2030-03-15 14:00'",
        )
    fields = parsed.fields()
    if parsed.task_type is TaskType.CRON and data.get("timezone") is None and "timezone" in context:
        fields["timezone"] = zone  # the wall-clock times were read in this zone
    if parsed.wall_clock and not zone_known:
        # no zone known yet: a wall time (and for 'today', a day), read again in the zone
        # the task gets (past or in a DST gap there: refused then); an offset is kept
        fields["run_at"] = fields["run_at"].replace(tzinfo=None)
        fields[PENDING_WALL_CLOCK] = (text, now, allow_past)
    return fields


def wall_clock_time(pending: tuple[str, datetime, bool], timezone: str) -> datetime:
    """The ``run_at`` of a schedule that :func:`explicit_schedule` read without a zone
    (``today at 9:00``: the ``PENDING_WALL_CLOCK`` it gave), read in ``timezone`` as of the
    moment it was first read.

    Raises:
        ScheduleError: That time has passed there (or does not exist: a DST gap).
    """
    text, now, allow_past = pending
    run_at = parse_schedule(text, now=now, timezone=timezone, allow_past=allow_past).run_at
    assert run_at is not None
    return run_at
