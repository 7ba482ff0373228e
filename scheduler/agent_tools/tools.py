"""The scheduling tools and what they share: the scheduler, the owner, the zone, the
limits (see :mod:`scheduler.agent_tools`)."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import inf
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ValidationError

from scheduler.agent_tools.answers import counts, label, listing, local_time, resumed
from scheduler.agent_tools.arguments import (
    DESCRIPTIONS,
    NoArgs,
    ScheduleArgs,
    TaskIdArgs,
    invalid_arguments,
)
from scheduler.enums import TaskType
from scheduler.exceptions import DependencyError, ScheduleError, SchedulerError, describe_errors
from scheduler.models import TaskDefinition
from scheduler.pools import OWN
from scheduler.records import TaskInfo
from scheduler.schedules import parse_schedule
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler, running_scheduler
from scheduler.triggers import fire_times
from scheduler.wording import describe_task
from scheduler.zones import unknown_zone_message, zone_or_none

__all__ = ["AGENT_SOURCE", "REPORT_FAILURE", "AgentLimits", "SchedulingTools", "scheduling_tools"]

AGENT_SOURCE = "agent"
REPORT_FAILURE = "scheduler.agent_tools:report_failure"
_SHOWN_TIMES = 3
_MAX_OWNER_CHARS = 200
# The count-then-add of the task limit, for every tools object of the process (a graph
# factory may make one per run): two calls at once cannot both pass with one place left.
_COUNTING = threading.Lock()


@dataclass(frozen=True)
class AgentLimits:
    """What one owner may schedule (defaults: the ``SCHEDULER_AGENT_*`` settings)."""

    max_tasks: int = 20
    min_interval_seconds: float = 60
    max_horizon_days: float = 366

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentLimits:
        return cls(
            settings.agent_max_tasks,
            settings.agent_min_interval_seconds,
            settings.agent_max_horizon_days,
        )


class _Refused(Exception):
    """An answer for the model: nothing was done, and why."""


@dataclass(frozen=True)
class _Caller:
    owner: str  # "thread:<id>" or "<owner_key>:<value>"
    thread_id: str | None
    value: str
    follow_up: bool = False  # the call comes from a run of a task the tools made

    @property
    def source(self) -> str:
        if len(self.owner) <= _MAX_OWNER_CHARS:
            return f"{AGENT_SOURCE}:{self.owner}"
        kind = self.owner.split(":", 1)[0][:40]
        digest = hashlib.sha256(self.owner.encode()).hexdigest()
        return f"{AGENT_SOURCE}:{kind}:sha256:{digest}"


def _gaps(times: list[datetime]) -> list[float]:
    """The seconds between successive fire times, as instants (two times in one zone
    subtract as wall times, wrong across a DST change)."""
    return [
        (b.astimezone(UTC) - a.astimezone(UTC)).total_seconds()
        for a, b in itertools.pairwise(times)
    ]


class SchedulingTools:
    """The tools and what they share (see the module docstring and :func:`scheduling_tools`)."""

    def __init__(
        self,
        scheduler: TaskScheduler | None = None,
        *,
        owner_key: str | None = None,
        timezone: str | None = None,
        limits: AgentLimits | None = None,
        on_failure: str | None = REPORT_FAILURE,
    ) -> None:
        self._given = scheduler
        self._own: TaskScheduler | None = None
        self.owner_key = owner_key
        self.timezone = timezone
        self._limits = limits
        self.on_failure = on_failure

    def tools(self) -> list[BaseTool]:
        """The five tools, sync and async."""
        made: list[BaseTool] = []
        for name, method, schema in (
            ("schedule_task", self.schedule_task, ScheduleArgs),
            ("list_scheduled_tasks", self.list_tasks, NoArgs),
            ("cancel_scheduled_task", self.cancel_task, TaskIdArgs),
            ("pause_scheduled_task", self.pause_task, TaskIdArgs),
            ("resume_scheduled_task", self.resume_task, TaskIdArgs),
        ):
            made.append(_tool(name, method, schema))
        return made

    # -- the tools ------------------------------------------------------------------------

    def schedule_task(
        self,
        config: RunnableConfig,
        when: str,
        prompt: str,
        name: str = "",
        new_conversation: bool = False,
        timezone: str | None = None,
    ) -> str:
        caller = self._caller(config, need_thread=not new_conversation)
        scheduler = self.scheduler()
        zone = self._zone(timezone, config, scheduler)
        now = scheduler.now()
        try:
            parsed = parse_schedule(when, now=now, timezone=zone)
        except ScheduleError as exc:
            raise _Refused(f"Nothing was scheduled: {exc}") from None
        task_id = f"agent-{secrets.token_hex(4)}"
        local_now = now.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
        try:
            task = TaskDefinition(
                id=task_id,
                name=" ".join(name.split())[:80] or label(prompt),
                timezone=zone,
                prompt=f"[Scheduled follow-up {task_id}, set at {local_now} for {when!r}] {prompt}",
                thread_id=None if new_conversation else caller.thread_id,
                on_failure_callback=self.on_failure,
                metadata={
                    "scheduled_by": AGENT_SOURCE,
                    "owner": caller.owner,
                    "requested_in_thread": caller.thread_id,
                    "when": when,
                    **({"agent_owner_value": caller.value} if self.owner_key else {}),
                },
                **parsed.fields(),
            )
        except ValidationError as exc:
            raise _Refused(f"Nothing was scheduled: {describe_errors(exc)}") from None
        times = self._check_limits(task, now, chained=caller.follow_up)
        with _COUNTING:
            kept = [t for t in self._tasks_of(caller) if counts(t)]
            if len(kept) >= self.limits.max_tasks:
                raise _Refused(
                    f"Nothing was scheduled: this conversation already has {len(kept)} "
                    f"scheduled tasks, the limit. Cancel one first (list_scheduled_tasks "
                    f"shows them)."
                )
            scheduler.add_task(task, source=caller.source)
        where = (
            "Each run starts a new conversation."
            if new_conversation
            else "It will come back to this conversation."
        )
        if task.task_type is TaskType.ONE_TIME:
            what = f"Scheduled {task_id} ({task.name}) for {local_time(times[0], zone)} ({zone})."
        else:
            shown = ", ".join(local_time(t, zone) for t in times)
            what = f"Scheduled {task_id} ({task.name}): {describe_task(task)}. Next runs: {shown}."
        return f"{what} {where} Tell the user when it will run, as written here."

    def list_tasks(self, config: RunnableConfig) -> str:
        caller = self._caller(config, need_thread=False)
        tasks = self._tasks_of(caller)
        if not tasks:
            return "No tasks are scheduled from this conversation."
        return listing(tasks)

    def cancel_task(self, config: RunnableConfig, task_id: str) -> str:
        task = self._own_task(config, task_id)
        try:
            self.scheduler().remove_task(task.id)
        except DependencyError:  # their ids are not the agent's to see
            return (
                f"Nothing was done: other tasks, not made here, run after {task.id}, so it "
                "cannot be cancelled from here. Pause it instead, or ask whoever set those "
                "tasks up."
            )
        return f"Cancelled {task.id} ({task.name}); it will not run again."

    def pause_task(self, config: RunnableConfig, task_id: str) -> str:
        task = self._own_task(config, task_id)
        self.scheduler().pause_task(task.id)
        return f"Paused {task.id} ({task.name}); it does not run until resumed."

    def resume_task(self, config: RunnableConfig, task_id: str) -> str:
        task = self._own_task(config, task_id)
        scheduler = self.scheduler()
        info = scheduler.resume_task(task.id)
        return resumed(info, now=scheduler.now(), settings=scheduler.settings)

    # -- what they share ------------------------------------------------------------------

    @property
    def limits(self) -> AgentLimits:
        return self._limits or AgentLimits.from_settings(self.scheduler().settings)

    def scheduler(self) -> TaskScheduler:
        """The given scheduler, else the one running in this process, else one that only
        writes to the database (a running ``main.py`` picks its tasks up)."""
        if self._given is not None:
            return self._given
        running = running_scheduler()
        if running is not None:
            return running
        if self._own is None:
            self._own = TaskScheduler.from_settings()
        return self._own

    def _tasks_of(self, caller: _Caller) -> list[TaskInfo]:
        """The caller's own tasks: its source exactly (``list_tasks(source=...)`` also
        gives the sources under it, another owner's when an id contains ``:``)."""
        found = self.scheduler().list_tasks(source=caller.source)
        return [task for task in found if task.source == caller.source]

    def _caller(self, config: RunnableConfig, *, need_thread: bool) -> _Caller:
        """Who is calling. A run of a task these tools made acts for the owner that made
        it (its metadata says who), even on a fresh thread (``new_conversation``): what it
        schedules counts against that owner's limits, or one task could make 20 owners,
        each of which makes 20 more."""
        configurable = (config or {}).get("configurable") or {}
        metadata = (config or {}).get("metadata") or {}
        follow_up = metadata.get("scheduled_by") == AGENT_SOURCE
        thread = configurable.get("thread_id")
        thread_id = str(thread) if thread not in (None, "") else None
        # The config's metadata is the caller's to set (a LangGraph server takes it from the
        # client): an owner named there counts only for a running run of that owner's task,
        # on that run's thread (its ids, copied into another thread's call, are not it).
        if follow_up and not self._vouched(metadata, thread_id):
            metadata = {}
        inherited = metadata.get("owner") if follow_up else None
        if self.owner_key is not None:
            value = configurable.get(self.owner_key)
            if value in (None, ""):
                value = metadata.get("agent_owner_value")
            if value in (None, ""):
                raise _Refused(
                    f"Nothing was done: this conversation has no {self.owner_key!r} in its "
                    "config, so its tasks cannot be told apart from others'."
                )
            value = str(value)
            owner = f"{self.owner_key}:{value}"
        elif isinstance(inherited, str) and inherited.startswith("thread:"):
            owner, value = inherited, inherited.removeprefix("thread:")
        elif thread_id is not None:
            owner, value = f"thread:{thread_id}", thread_id
        else:
            raise _Refused("Nothing was done: this conversation has no thread_id.")
        if need_thread and thread_id is None:
            raise _Refused(
                "Nothing was scheduled: this conversation has no thread_id to come back to; "
                "use new_conversation=true."
            )
        return _Caller(owner, thread_id, value, follow_up)

    def _vouched(self, metadata: dict[str, Any], thread_id: str | None) -> bool:
        """``metadata`` is that of a running run, on ``thread_id``, of a task these tools
        made for its ``owner`` (as the scheduler's records say, not the metadata)."""
        owner, task_id = metadata.get("owner"), metadata.get("task_id")
        run_id = metadata.get("scheduler_run_id") or metadata.get("run_id")
        if not all(isinstance(v, str) for v in (owner, task_id, run_id)):
            return False
        scheduler = self.scheduler()
        try:
            task, run = scheduler.get_task(str(task_id)), scheduler.get_run(str(run_id))
        except SchedulerError:
            return False
        from scheduler.remote import server_thread_id  # (its thread on a LangGraph server)

        source, ran_on = _Caller(str(owner), None, "").source, run.thread_id or ""
        return (
            task.source == source
            and run.task_id == task.id
            and run.status == "running"
            and bool(ran_on and thread_id in (ran_on, server_thread_id(ran_on)))
        )

    def _zone(self, given: str | None, config: RunnableConfig, scheduler: TaskScheduler) -> str:
        configurable = (config or {}).get("configurable") or {}
        zone = given or self.timezone or configurable.get("timezone") or scheduler.settings.timezone
        if zone_or_none(str(zone)) is None:
            raise _Refused(f"Nothing was scheduled: {unknown_zone_message(str(zone))}")
        return str(zone)

    def _check_limits(
        self, task: TaskDefinition, now: datetime, *, chained: bool
    ) -> list[datetime]:
        """The first fire times of ``task``, or :class:`_Refused` if it breaks a limit.
        ``chained``: asked by a scheduled follow-up, whose next one must be at least the
        shortest interval ahead too (else one-time tasks that each schedule the next
        would run every second)."""
        limits = self.limits
        trigger = task.build_trigger(anchor=now)
        times = fire_times(trigger, after=now, count=20 if task.task_type is TaskType.CRON else 2)
        if not times:
            raise _Refused("Nothing was scheduled: that schedule never runs after now.")
        if chained and (times[0] - now).total_seconds() < limits.min_interval_seconds:
            raise _Refused(
                f"Nothing was scheduled: a scheduled follow-up may set the next one at least "
                f"{limits.min_interval_seconds:g} s ahead."
            )
        if times[0] - now > timedelta(days=limits.max_horizon_days):
            raise _Refused(
                f"Nothing was scheduled: its first run would be more than "
                f"{limits.max_horizon_days:g} days ahead, the limit."
            )
        gaps = _gaps(times)
        raised = limits.min_interval_seconds > 60  # (a cron never fires closer than 60 s)
        if (
            task.task_type is TaskType.CRON
            and raised
            and min(gaps, default=inf) >= limits.min_interval_seconds
        ):
            # some minutes and hours meet only on some days (0,45 0-22/2,23 fires 15 minutes
            # apart at 22:45 and 23:00 only): the gaps over a year of fire times
            year = fire_times(trigger, after=now, until=now + timedelta(days=366), count=50_000)
            gaps = _gaps(year)
        if gaps and min(gaps) < limits.min_interval_seconds:
            raise _Refused(
                f"Nothing was scheduled: it would run every {min(gaps):g} s; the shortest "
                f"allowed is every {limits.min_interval_seconds:g} s."
            )
        return times[:_SHOWN_TIMES]

    def _own_task(self, config: RunnableConfig, task_id: str) -> TaskInfo:
        caller = self._caller(config, need_thread=False)
        try:
            task = self.scheduler().get_task(task_id)
        except SchedulerError:
            task = None
        if task is None or task.source != caller.source:
            shown = task_id if len(task_id) <= 100 else f"{task_id[:100]}..."  # (the model's)
            raise _Refused(
                f"There is no task {shown!r} scheduled from this conversation "
                "(list_scheduled_tasks shows them)."
            )
        return task


def scheduling_tools(
    scheduler: TaskScheduler | None = None,
    *,
    owner_key: str | None = None,
    timezone: str | None = None,
    limits: AgentLimits | None = None,
    on_failure: str | None = REPORT_FAILURE,
) -> list[BaseTool]:
    """The scheduling tools for an agent (see the module docstring).

    Args:
        scheduler: The scheduler the tasks go to. Default: the one running in this process
            when a tool is called, else one on the configured database (``SCHEDULER_*``).
        owner_key: A key of the config's ``configurable`` that names the owner (e.g.
            ``user_id``): the tasks of every thread of that owner are shared. Default: each
            thread owns its own.
        timezone: The user's IANA zone. Default: the config's ``configurable.timezone``,
            else ``SCHEDULER_TIMEZONE``.
        limits: Per-owner limits. Default: the ``SCHEDULER_AGENT_*`` settings.
        on_failure: The ``on_failure_callback`` of the tasks the tools make: default
            :func:`report_failure` (into the thread), or the application's own dotted path
            (checked by the callback policy), or None.
    """
    return SchedulingTools(
        scheduler, owner_key=owner_key, timezone=timezone, limits=limits, on_failure=on_failure
    ).tools()


def _tool(name: str, method: Callable[..., str], schema: type[BaseModel]) -> BaseTool:
    def run(config: RunnableConfig, **kwargs: Any) -> str:
        try:
            return method(config, **kwargs)
        except _Refused as exc:
            return str(exc)
        except SchedulerError as exc:
            return f"Nothing was done: {exc}"

    async def arun(config: RunnableConfig, **kwargs: Any) -> str:
        return await OWN.run(run, config, **kwargs)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=DESCRIPTIONS[name],
        args_schema=schema,
        handle_validation_error=invalid_arguments,
    )
