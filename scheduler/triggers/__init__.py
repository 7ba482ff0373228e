"""APScheduler triggers for task definitions, and walking their fire times.

:func:`cron_trigger` builds the standard-cron trigger (:mod:`scheduler.triggers.cron`);
:func:`interval_trigger` and :func:`date_trigger` build APScheduler's own
(:mod:`scheduler.triggers.simple`); :func:`fire_times` lists a trigger's fire times
(:mod:`scheduler.triggers.preview`) and
:func:`~scheduler.triggers.backlog.backlog` classifies the ones a dispatcher has to catch up
(:mod:`scheduler.triggers.backlog`). Everything here is pure: ``now`` is always passed in.
"""

from scheduler.triggers.backlog import ON_TIME_SECONDS, Backlog, backlog
from scheduler.triggers.cron import StandardCronTrigger, cron_trigger, localize
from scheduler.triggers.preview import fire_times
from scheduler.triggers.simple import NeverTrigger, date_trigger, interval_trigger, zone

__all__ = [
    "ON_TIME_SECONDS",
    "Backlog",
    "NeverTrigger",
    "StandardCronTrigger",
    "backlog",
    "cron_trigger",
    "date_trigger",
    "fire_times",
    "interval_trigger",
    "localize",
    "zone",
]
