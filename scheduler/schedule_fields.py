"""Which schedule field each task type uses, and the checks that tie them together."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from scheduler.enums import TaskType
from scheduler.limits import check_datetime
from scheduler.triggers import localize
from scheduler.zones import skipped_wall_time, zone_or_none

if TYPE_CHECKING:
    from scheduler.models import TaskDefinition

__all__ = [
    "SCHEDULE_FIELDS",
    "STORED_CONTEXT_KEY",
    "check_bounds",
    "check_jitter",
    "check_schedule_field",
    "error",
    "fixed_offset",
    "infer_task_type",
    "localized",
    "refuse_date_alone",
    "same_grid",
]

SCHEDULE_FIELDS = {
    TaskType.CRON: "cron_expression",
    TaskType.INTERVAL: "interval_seconds",
    TaskType.ONE_TIME: "run_at",
}


#: Validation context key marking a definition read back from the store: it passed every
#: check when it was written, so the JSON-value check is not repeated on each load.
STORED_CONTEXT_KEY = "stored"

_WANTED = tuple(SCHEDULE_FIELDS.items())


def error(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is shown as written (no template fields)."""
    return PydanticCustomError(kind, message)


_DATE_ALONE = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*\Z")


def refuse_date_alone(field: str, value: Any) -> Any:
    """``value`` unless it is a date with no time (``"2030-01-01"``, a ``date``), which
    pydantic reads as midnight: ambiguous for a moment, refused as ``schedule:`` refuses it.

    Raises:
        PydanticCustomError: It is a date alone.
    """
    if value is None:  # (most rows: this runs for every task read back)
        return None
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value) < 16 and _DATE_ALONE.match(value)
    ):
        day = str(value).strip()
        raise error(
            "schedule",
            f"{field} {day!r}: a date alone is ambiguous; give a time, e.g. '{day}T09:00'",
        )
    return value


def infer_task_type(data: dict[str, Any]) -> TaskType:
    """The task type of a definition that gives none: the one its schedule field implies.

    Raises:
        PydanticCustomError: None, or several, of the schedule fields are given.
    """
    given = [t for t, f in SCHEDULE_FIELDS.items() if data.get(f) is not None]
    if len(given) == 1:
        return given[0]
    if not given and data.get("after") is not None:
        return TaskType.AFTER  # no clock: it runs after other tasks
    if given:
        names = " and ".join(SCHEDULE_FIELDS[t] for t in given)
        raise error("schedule", f"give one schedule, not {names}")
    raise error(
        "schedule",
        "a schedule is required: schedule ('every 5 minutes'), cron_expression, "
        "interval_seconds, run_at, or after (other tasks it runs after)" + _misspelt(data),
    )


def _misspelt(data: dict[str, Any]) -> str:
    """``; 'schedul' is none of them (did you mean 'schedule'?)`` for a key of ``data``
    close to a schedule field's name (its own error, an unknown key, does not show: this
    one stops the validation first)."""
    names = ["schedule", "after", *SCHEDULE_FIELDS.values()]
    for key in data:
        if isinstance(key, str) and key not in names and len(key) <= 64:
            lower = key.lower()
            close = difflib.get_close_matches(lower, names, n=1, cutoff=0.75)
            close += [n for n in names if len(lower) >= 3 and n.startswith(lower)]  # cron
            if close:
                return f"; {key!r} is none of them (did you mean {close[0]!r}?)"
    return ""


def check_schedule_field(field: str, value: Any, info: ValidationInfo) -> None:
    """``field`` is set when the task type uses it, and unset when it does not."""
    task_type = info.data.get("task_type")
    if task_type is None:
        return  # task_type itself failed; its error says why
    wanted = None
    for each, name in _WANTED:  # not SCHEDULE_FIELDS.get: an enum hashes in Python, slowly
        if each is task_type:
            wanted = name
            break
    if wanted is None:  # TaskType.AFTER: no clock
        if value is not None:
            raise error(
                "schedule",
                f"{field} does not apply to task_type 'after' (it runs only after other "
                "tasks; leave task_type out to run on a clock as well)",
            )
        return
    if field == wanted and value is None:
        raise error("schedule", f"{field} is required when task_type is {task_type.value!r}")
    if field != wanted and value is not None:
        raise error(
            "schedule",
            f"{field} does not apply to task_type {task_type.value!r} (it uses {wanted})",
        )


def check_jitter(value: float | None, info: ValidationInfo) -> float | None:
    """An interval task's ``jitter_seconds`` is less than its ``interval_seconds``: a delay
    of an interval or more would reach the next occurrence's time, and skip it. (A cron
    task's gaps between fire times vary: its trigger keeps each delay short of the next
    fire time instead. A stored definition is loaded as it is: its trigger does the same.)"""
    interval = info.data.get("interval_seconds")
    if (
        value is not None
        and info.data.get("task_type") is TaskType.INTERVAL
        and isinstance(interval, int | float)
        and value >= interval
        and not (info.context or {}).get(STORED_CONTEXT_KEY)
    ):
        raise error(
            "jitter",
            f"jitter_seconds {value:g} must be less than interval_seconds {interval:g}: a "
            "delay of an interval or more reaches the next run's time and skips it",
        )
    return value


def localized(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """A datetime field's value: a naive one read in the task's zone, the result within the
    supported years; a naive ``run_at``, ``start_date`` or ``end_date`` must exist in the
    task's zone, else in the zone the caller reads it in (context ``timezone``: the tasks
    file, the CLI, the API), as a schedule's text must (a repeated wall time is one: its
    first pass, unless ``fold=1``; a row read back is not checked again: it keeps loading)."""
    if value is None:
        return None
    wall = value if value.tzinfo is None else None
    zone = info.data.get("timezone")
    if wall is not None and zone is not None:
        value = localize(value, ZoneInfo(zone))
    try:
        check_datetime(localize(value, UTC))
    except ValueError as exc:
        raise error("datetime", str(exc)) from None
    context = info.context or {}
    if wall is None or context.get(STORED_CONTEXT_KEY):
        return value
    if zone is None and "timezone" in info.data:  # (absent: the zone itself was refused)
        zone = context.get("timezone")
    known = zone_or_none(zone) if isinstance(zone, str) else None
    skipped = skipped_wall_time(wall, known) if known is not None else None
    if skipped is not None:
        raise error("datetime", f"{info.field_name} {skipped}")
    return value


def same_grid(previous: TaskDefinition | None, task: TaskDefinition) -> bool:
    """``previous`` (a definition, or None) and ``task`` are interval tasks with one interval
    and one ``start_date`` (as instants): one grid of fire times, whatever else changed (an
    end, a zone, a jitter: a replaced task keeps the anchor the grid counts from)."""
    if previous is None or not (previous.task_type is task.task_type is TaskType.INTERVAL):
        return False
    starts = [t.start_date.timestamp() if t.start_date else None for t in (previous, task)]
    return previous.interval_seconds == task.interval_seconds and starts[0] == starts[1]


def check_bounds(
    start: datetime | None, end: datetime | None, zone: str | None, *, loaded: bool = False
) -> None:
    """``end`` is not before ``start``, as instants (naive ones read in ``zone``). With no
    zone yet and only one of them naive, the zone the task gets decides: left to
    ``with_timezone`` (``loaded``: called from it, a ``pydantic.ValidationError`` then).

    Raises:
        PydanticCustomError: ``end`` is before ``start``.
    """
    if (
        start is None
        or end is None
        or (zone is None and (start.tzinfo is None) != (end.tzinfo is None))
    ):
        return
    tz = ZoneInfo(zone or "UTC")
    if localize(end, tz).timestamp() >= localize(start, tz).timestamp():  # (fold)
        return
    problem = error(
        "end_date", f"end_date {end.isoformat()} is before start_date {start.isoformat()}"
    )
    if not loaded:
        raise problem
    raise _validation_error("end_date", problem, end)


def _validation_error(field: str, problem: PydanticCustomError, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        "TaskDefinition", [{"type": problem, "loc": (field,), "input": value}]
    )


def fixed_offset(field: str, value: datetime, zone: ZoneInfo) -> datetime:
    """``value`` as an aware datetime at a fixed offset, as stored ones read back (a fold
    hour's ``ZoneInfo`` is never ``==``); a naive one read in ``zone``, where it must exist
    (:func:`localized`, for a task that gets its zone only now).

    Raises:
        pydantic.ValidationError: A naive ``value`` inside ``zone``'s DST gap.
    """
    skipped = skipped_wall_time(value, zone) if value.tzinfo is None else None
    if skipped is not None:
        raise _validation_error(field, error("datetime", f"{field} {skipped}"), value)
    value = localize(value, zone)
    return value.astimezone(timezone(value.utcoffset() or timedelta()))
