"""The APScheduler trigger of a task's schedule (:func:`task_trigger`): what
:meth:`TaskDefinition.build_trigger <scheduler.models.TaskDefinition.build_trigger>` builds."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger

from scheduler.enums import TaskType
from scheduler.triggers.cron import cron_trigger, localize
from scheduler.triggers.simple import NeverTrigger, date_trigger, interval_trigger

if TYPE_CHECKING:
    from scheduler.models import TaskDefinition

__all__ = ["task_trigger"]


def task_trigger(task: TaskDefinition, *, anchor: datetime, zone_name: str) -> BaseTrigger:
    """The trigger of ``task``'s schedule in the zone ``zone_name``; an interval task
    without ``start_date`` first fires at ``anchor + interval_seconds``."""
    zone = task.zone(zone_name)
    start = localize(task.start_date, zone) if task.start_date else None
    end = localize(task.end_date, zone) if task.end_date else None
    if task.task_type is TaskType.CRON:
        assert task.cron_expression is not None
        return cron_trigger(
            task.cron_expression,
            timezone=zone,
            start_date=start,
            end_date=end,
            jitter=task.jitter_seconds,
        )
    if task.task_type is TaskType.INTERVAL:
        assert task.interval_seconds is not None
        return interval_trigger(
            task.interval_seconds,
            timezone=zone,
            anchor=anchor,
            start_date=start,
            end_date=end,
            jitter=task.jitter_seconds,
        )
    if task.task_type is TaskType.AFTER:
        return NeverTrigger()
    assert task.run_at is not None
    return date_trigger(localize(task.run_at, zone), timezone=zone)
