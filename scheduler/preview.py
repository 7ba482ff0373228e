"""A schedule string's next fire times and its description in words: what ``next`` (CLI)
and ``/api/schedules/preview`` (HTTP) show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.models import TaskDefinition
from scheduler.schedules import ParsedSchedule, parse_schedule
from scheduler.triggers import fire_times
from scheduler.wording import describe

__all__ = ["Preview", "preview"]


@dataclass(frozen=True)
class Preview:
    """The schedule as parsed, in words, and its next fire times (in its zone); ``passed``:
    a one-time time not after now (its own time is the one shown; ``add`` refuses it)."""

    parsed: ParsedSchedule
    description: str
    times: list[datetime]
    passed: bool = False


def preview(schedule: str, *, timezone: str, now: datetime, count: int) -> Preview:
    """The next ``count`` fire times of ``schedule`` after ``now`` (aware, UTC); a one-time
    schedule already past shows its own time, marked ``passed`` (the HTTP preview shows
    it so; ``next`` refuses it, as ``add`` does).

    Raises:
        ScheduleError: The schedule is not understood.
        ValidationError: It does not make a valid task (a bad zone, say).
    """
    parsed = parse_schedule(schedule, now=now, timezone=timezone, allow_past=True)
    task = TaskDefinition(id="preview", prompt="preview", timezone=timezone, **parsed.fields())
    times = fire_times(task.build_trigger(anchor=now), after=now, count=count)
    passed = False
    if parsed.run_at is not None and parsed.run_at.timestamp() <= now.timestamp():
        times, passed = [parsed.run_at], True
    words = describe(
        parsed.task_type,
        cron_expression=parsed.cron_expression,
        interval_seconds=parsed.interval_seconds,
        run_at=parsed.run_at,
        timezone=timezone,
    )
    return Preview(parsed, words, [t.astimezone(task.zone()) for t in times], passed)
