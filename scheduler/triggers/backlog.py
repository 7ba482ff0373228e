"""Catching up: the occurrences of a schedule between its stored next run time and now,
split into those inside the catch-up window (due: they become one run) and those before it
(missed)."""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["ON_TIME_SECONDS", "Backlog", "backlog"]

# How late a pass may come after an occurrence and still be on time, whatever the catch-up
# window (a timer fires some ms late: a window of 0 s would otherwise miss every occurrence).
ON_TIME_SECONDS = 1.0

_ONE_MICROSECOND = timedelta(microseconds=1)


class Backlog:
    """Occurrences of a schedule from its stored next run time up to ``now``.

    Attributes:
        missed: How many fell before the catch-up cutoff.
        first_missed, last_missed: The earliest and latest of those.
        due: How many fell inside the catch-up window (they become one run).
        last_due: The latest of those (the run's scheduled time).
        next_time: The first occurrence after ``now`` (None: the schedule has ended).
    """

    __slots__ = (
        "due",
        "first_missed",
        "last_due",
        "last_missed",
        "missed",
        "next_time",
        "truncated",
    )

    def __init__(self) -> None:
        self.truncated = False  # more were missed than were counted
        self.missed = 0
        self.first_missed: datetime | None = None
        self.last_missed: datetime | None = None
        self.due = 0
        self.last_due: datetime | None = None
        self.next_time: datetime | None = None

    def _add(self, moment: datetime, cutoff: datetime, count: int = 1) -> None:
        if moment.timestamp() < cutoff.timestamp():
            self.missed += count
            self.first_missed = self.first_missed or moment
            self.last_missed = moment
        else:
            self.due += count
            self.last_due = moment


def backlog(
    trigger: BaseTrigger,
    *,
    first: datetime,
    now: datetime,
    cutoff: datetime,
    limit: int = 100_000,
) -> Backlog:
    """Classify the occurrences from ``first`` (a stored next run time) up to ``now``.

    Occurrences before ``cutoff`` are missed; the rest are due. Interval schedules without
    jitter are counted arithmetically, so a long downtime costs nothing; other schedules are
    walked, at most ``limit`` steps among the missed ones (the rest of them are skipped
    uncounted, and the walk goes on from ``cutoff``) and as many among the due ones (the
    rest up to ``now`` are skipped uncounted); ``truncated`` is then set.
    """
    result = Backlog()
    if first.timestamp() > now.timestamp():
        result.next_time = first
        return result
    if isinstance(trigger, IntervalTrigger) and not trigger.jitter:
        step = trigger.interval_length
        until = now.timestamp()  # and no occurrence after the schedule's end
        if trigger.end_date is not None:
            until = min(until, trigger.end_date.timestamp())
        if until < first.timestamp():
            return result  # (next_time None: it has ended)
        total = int((until - first.timestamp()) // step) + 1
        before_cutoff = 0
        if cutoff.timestamp() > first.timestamp():
            before_cutoff = min(total, -int(-(cutoff.timestamp() - first.timestamp()) // step))
        if before_cutoff:
            result.missed = before_cutoff
            result.first_missed = first
            result.last_missed = first + timedelta(seconds=step * (before_cutoff - 1))
        if total > before_cutoff:
            result.due = total - before_cutoff
            result.last_due = first + timedelta(seconds=step * (total - 1))
        last = first + timedelta(seconds=step * (total - 1))
        result.next_time = trigger.get_next_fire_time(last, now)
        return result
    moment: datetime | None = first
    steps = 0
    while moment is not None and moment.timestamp() <= now.timestamp():
        result._add(moment, cutoff)
        steps += 1
        if steps >= limit:
            result.truncated = True
            if moment.timestamp() < cutoff.timestamp() <= now.timestamp():
                # still among the missed: the rest of them go uncounted, and the walk goes
                # on from the cutoff, so those inside the window still make their run
                moment = trigger.get_next_fire_time(None, cutoff)
                steps = 0
                continue
            # the first occurrence after now (one at now itself is among those skipped)
            result.next_time = trigger.get_next_fire_time(None, now + _ONE_MICROSECOND)
            return result
        moment = trigger.get_next_fire_time(moment, now)
    result.next_time = moment
    return result
