"""Schedules in words, for tables: ``At 09:00, Monday through Friday (Europe/Paris)``.

Sentences are built from the parsed cron sets, so what they say is always what the schedule
does; a cron expression too complex to say well is shown as itself.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.cron import CronSpec, parse_cron
from scheduler.enums import TaskType
from scheduler.models import TaskDefinition
from scheduler.timewords import DAY_NAMES, name_runs

__all__ = ["describe", "describe_task"]


_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def describe(
    task_type: TaskType | str,
    *,
    cron_expression: str | None = None,
    interval_seconds: float | None = None,
    run_at: datetime | None = None,
    timezone: str | None = None,
) -> str:
    """Say a schedule in words, e.g. ``At 09:00, Monday through Friday (Europe/Paris)``.

    Args:
        task_type: Which schedule field applies.
        cron_expression: Standard cron, for cron tasks.
        interval_seconds: Seconds between runs, for interval tasks.
        run_at: When a one-time task runs; naive means wall time in ``timezone``.
        timezone: IANA zone of the schedule; ``None`` means UTC.

    Returns:
        One sentence; a cron expression too complex to say well is quoted as is.

    Raises:
        ValueError: The field for ``task_type`` is missing.
        CronError: ``cron_expression`` does not parse.
    """
    task_type = TaskType(task_type)
    label = timezone or "UTC"
    if task_type is TaskType.CRON and cron_expression is not None:
        spec = parse_cron(cron_expression)
        sentence = _cron_sentence(spec) or f"Cron '{spec.expression}'"
        return f"{sentence} ({label})"
    if task_type is TaskType.INTERVAL and interval_seconds is not None:
        return _interval_sentence(interval_seconds)
    if task_type is TaskType.ONE_TIME and run_at is not None:
        if run_at.tzinfo is None:
            run_at = run_at.replace(tzinfo=ZoneInfo(label))
        elif timezone is not None:
            run_at = run_at.astimezone(ZoneInfo(timezone))
        else:
            label = getattr(run_at.tzinfo, "key", None) or run_at.tzname() or "UTC"
        seconds = f":{run_at.second:02}" if run_at.second else ""
        return f"Once at {run_at:%Y-%m-%d %H:%M}{seconds} ({label})"
    field = {TaskType.CRON: "cron_expression", TaskType.INTERVAL: "interval_seconds"}.get(
        task_type, "run_at"
    )
    raise ValueError(f"a {task_type.value} schedule needs {field}")


def _interval_sentence(seconds: float) -> str:
    if seconds != int(seconds):
        return f"Every {seconds} seconds"
    whole = int(seconds)
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if whole % size == 0:
            count = whole // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if whole == 1 else f"Every {whole} seconds"


def _cron_sentence(spec: CronSpec) -> str | None:
    clock = _time_clause(spec)
    days = _day_clause(spec)
    months = _join(name_runs(sorted(spec.months), lambda m: _MONTH_NAMES[m - 1], " through "))
    if clock is None or days is None or months is None:
        return None
    text, at_times = clock
    if days:
        text += f", {days}"
    elif at_times:
        text += ", every day"
    return text if len(spec.months) == 12 else f"{text}, in {months}"


def _time_clause(spec: CronSpec) -> tuple[str, bool] | None:
    """The time-of-day part, and whether it names exact times (then 'every day' fits)."""
    minutes, hours = sorted(spec.minutes), sorted(spec.hours)
    minute_step, hour_step = _step(minutes, 60), _step(hours, 24)
    if len(minutes) * len(hours) <= 4:
        return "At " + (_join([f"{h:02}:{m:02}" for h in hours for m in minutes]) or ""), True
    if minute_step is not None and hour_step == 1:
        return ("Every minute" if minute_step == 1 else f"Every {minute_step} minutes"), False
    if len(minutes) <= 4 and hour_step is not None:
        every = "Every hour" if hour_step == 1 else f"Every {hour_step} hours"
        plural = "minute" if len(minutes) == 1 else "minutes"
        return f"{every}, at {plural} {_join([str(m) for m in minutes])}", False
    if minute_step is not None and hours == list(range(hours[0], hours[-1] + 1)):
        every = "Every minute" if minute_step == 1 else f"Every {minute_step} minutes"
        return f"{every} from {hours[0]:02}:00 to {hours[-1]:02}:{minutes[-1]:02}", False
    return None


def _day_clause(spec: CronSpec) -> str | None:
    """``''`` for every day, ``None`` when the days are too complex to say well."""
    all_days, all_weekdays = len(spec.days) == 31, len(spec.weekdays) == 7
    if spec.either_day_matches:
        if all_days or all_weekdays:
            return ""  # either field matching every day means every day
        days, weekdays = _month_days(spec.days), _weekday_names(spec.weekdays)
        return None if days is None or weekdays is None else f"{days} or {weekdays}"
    if not all_days and not all_weekdays:
        return None  # both must match (a day field starting with '*', like '*/2')
    if not all_weekdays:
        return _weekday_names(spec.weekdays)
    return "" if all_days else _month_days(spec.days)


def _weekday_names(weekdays: frozenset[int]) -> str | None:
    monday_first = sorted((day - 1) % 7 for day in weekdays)
    parts = name_runs(monday_first, lambda d: DAY_NAMES[(d + 1) % 7].title(), " through ")
    if len(parts) == 1 and " through " in parts[0]:
        return parts[0]
    joined = _join(parts)
    return None if joined is None else f"on {joined}"


def _month_days(days: frozenset[int]) -> str | None:
    joined = _join(name_runs(sorted(days), str, " through "))
    if joined is None:
        return None
    return f"on {'day' if len(days) == 1 else 'days'} {joined} of the month"


def _step(values: list[int], size: int) -> int | None:
    """``n`` when ``values`` is every n-th value from 0 and ``n`` divides ``size`` evenly."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if values[0] == 0 and size % step == 0 and values == list(range(0, size, step)):
        return step
    return None


def _join(parts: list[str]) -> str | None:
    """``a``, ``a and b``, ``a, b and c``; ``None`` beyond four parts (too long to read)."""
    if len(parts) > 4:
        return None
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def describe_task(task: TaskDefinition) -> str:
    """A task's schedule in words: its clock, the tasks it runs after, or both (``At
    09:00, every day (UTC), and after fetch-sales``)."""
    after = task.after.words() if task.after is not None else None
    if task.task_type is TaskType.AFTER:
        text = after or "after other tasks"
        return text[0].upper() + text[1:]
    clock = describe(
        task.task_type,
        cron_expression=task.cron_expression,
        interval_seconds=task.interval_seconds,
        run_at=task.run_at,
        timezone=task.timezone,
    )
    return f"{clock}, and {after}" if after else clock
