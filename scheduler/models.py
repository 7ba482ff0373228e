"""The task definition: what to run, when, and how.

A :class:`TaskDefinition` is validated when it is constructed: a bad cron expression, a
schedule field unfit for the task type, an unknown zone, an empty prompt or a control
character in a name raises ``pydantic.ValidationError`` naming the field. It takes every
field of the classic APScheduler recipe's model as it means (``session_id``: ``thread_id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from pydantic import (
    AfterValidator,
    AliasChoices,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scheduler.assigned import Assignable
from scheduler.control_characters import OneLine, Prose, ProseOrNone, ThreadIdOrNone
from scheduler.cron import CronError, parse_cron
from scheduler.dependencies.after import After
from scheduler.enums import OverlapPolicy, Priority, TaskType
from scheduler.limits import (
    MAX_DURATION_SECONDS,
    MAX_INTERVAL_SECONDS,
    MAX_JITTER_SECONDS,
    MIN_INTERVAL_SECONDS,
    REQUEST_BOUNDS,
    TEXT_LIMITS,
    check_json_value,
    check_number,
)
from scheduler.schedule_fields import SCHEDULE_FIELDS as _SCHEDULE_FIELDS
from scheduler.schedule_fields import (
    STORED_CONTEXT_KEY,
    check_bounds,
    check_jitter,
    infer_task_type,
    localized,
    refuse_date_alone,
)
from scheduler.schedule_fields import check_schedule_field as _check_schedule_field
from scheduler.schedule_fields import error as _error
from scheduler.schedule_fields import fixed_offset as _fixed_offset
from scheduler.schedules import PENDING_WALL_CLOCK, explicit_schedule, wall_clock_time
from scheduler.triggers import fire_times, localize
from scheduler.triggers.of_task import task_trigger
from scheduler.weburls import webhook_url
from scheduler.zones import unknown_zone_message, zone_exists

__all__ = ["CALLBACK_FIELDS", "STORED_CONTEXT_KEY", "TaskDefinition"]

#: The fields that name a callback (a dotted path checked by the callback policy).
CALLBACK_FIELDS = ("result_callback", "on_failure_callback", "on_waiting_callback")

_ID = re.compile(r"^(?!\.+\Z)[A-Za-z0-9._:-]{1,128}\Z")  # not ".", "..", "x\n" ($ allows it)
_DOTTED_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([:.][A-Za-z_][A-Za-z0-9_]*)\Z"
)


class TaskDefinition(Assignable):
    """A scheduled task: a schedule, and the graph input to send when it fires.

    Exactly one schedule field fits each ``task_type``: ``cron_expression`` (standard cron,
    ``0 9 * * 1-5`` is Monday to Friday), ``interval_seconds``, or ``run_at``. ``task_type``
    may be left out when exactly one of them is given.

    ``schedule`` accepts what people write instead (``every 5 minutes``, ``weekdays at
    18:00``, ``in 30 minutes``, cron) and is stored as the explicit fields.

    Run-policy fields left as ``None`` take the scheduler's defaults (see ``Settings``).
    Naive datetimes are wall-clock times in ``timezone``; a scheduler fills an unset
    ``timezone`` with its default when the task is added (and reads a ``schedule`` of
    ``today at 9:00`` / ``tomorrow at`` in it then). Errors name the field, not the input
    (which may hold a webhook's password)."""

    # an assignment is validated (``task.interval_seconds = 0`` raises; see Assignable)
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, hide_input_in_errors=True, validate_assignment=True
    )

    id: str = Field(description="Unique id: 1-128 of A-Z a-z 0-9 . _ : -")
    name: OneLine = Field(default="", max_length=TEXT_LIMITS["name"], description="For people")
    description: Prose = Field(default="", max_length=TEXT_LIMITS["description"])
    task_type: TaskType
    enabled: bool = True

    timezone: str | None = Field(
        default=None, max_length=TEXT_LIMITS["timezone"], description="IANA zone"
    )
    cron_expression: str | None = Field(
        default=None, max_length=TEXT_LIMITS["cron_expression"], validate_default=True
    )
    interval_seconds: int | float | None = Field(default=None, validate_default=True)
    run_at: datetime | None = Field(default=None, validate_default=True)
    start_date: datetime | None = None
    end_date: datetime | None = None
    jitter_seconds: Annotated[float | None, AfterValidator(check_jitter)] = Field(
        default=None, strict=True, ge=0, le=MAX_JITTER_SECONDS, allow_inf_nan=False
    )

    after: After | None = Field(
        default=None, description="Other tasks this one runs after (see scheduler.dependencies)"
    )
    input: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    prompt: ProseOrNone = Field(
        default=None, max_length=TEXT_LIMITS["prompt"], validate_default=True
    )
    thread_id: ThreadIdOrNone = Field(
        default=None,
        max_length=TEXT_LIMITS["thread_id"],
        validation_alias=AliasChoices("thread_id", "session_id"),
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: Annotated[str | None, AfterValidator(webhook_url)] = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="URL that gets each finished run's record as a signed JSON POST",
    )
    request: dict[str, Any] | None = Field(
        default=None,
        description="What an outside API was sent when it made the task (a LangGraph cron's "
        "fields, answered back by the crons API); never sent to the graph",
    )

    result_callback: str | None = Field(default=None, max_length=TEXT_LIMITS["result_callback"])
    on_failure_callback: str | None = Field(
        default=None, max_length=TEXT_LIMITS["on_failure_callback"]
    )
    on_waiting_callback: str | None = Field(
        default=None, max_length=TEXT_LIMITS["on_waiting_callback"]
    )

    # Bounds are checked natively (strict: a boolean is not a number; finite numbers only).
    max_retries: int | None = Field(default=None, strict=True, ge=0, le=100)
    retry_delay_seconds: float | None = Field(
        default=None, strict=True, gt=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False
    )
    timeout_seconds: float | None = Field(
        default=None, strict=True, gt=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False
    )
    overlap: OverlapPolicy | None = None
    max_instances: int | None = Field(default=None, strict=True, ge=1, le=1000)
    priority: Priority | None = None
    misfire_grace_seconds: float | None = Field(
        default=None, strict=True, ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False
    )
    waiting_timeout_seconds: float | None = Field(
        default=None, strict=True, gt=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False
    )

    # ``today at 9:00`` read with no zone: read again in the zone the task gets (add_task)
    _pending_wall_clock: tuple[str, datetime, bool] | None = PrivateAttr(default=None)

    # -- normalisation before field validation ------------------------------------------

    @model_validator(mode="wrap")
    @classmethod
    def _normalise(
        cls, data: Any, handler: ModelWrapValidatorHandler[TaskDefinition], info: ValidationInfo
    ) -> TaskDefinition:
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        if data.get("schedule") is not None:
            data.update(explicit_schedule(data, info.context or {}, _SCHEDULE_FIELDS.values()))
        data.pop("schedule", None)
        if "thread_id" in data and "session_id" in data:
            thread_id, session_id = data.pop("thread_id"), data.pop("session_id")
            if thread_id != session_id:
                raise _error(
                    "thread_id",
                    f"thread_id {thread_id!r} and session_id {session_id!r} differ; "
                    "session_id is the older name of thread_id, give one of them",
                )
            data["thread_id"] = thread_id
        if data.get("task_type") is None:
            data["task_type"] = infer_task_type(data)
        if not data.get("name") and isinstance(data.get("id"), str):
            data["name"] = data["id"]
        pending = data.pop(PENDING_WALL_CLOCK, None)
        task = handler(data)
        if pending is not None:  # (rows read back have none: no private write per row)
            task._pending_wall_clock = pending
        return task

    # -- interval bounds before type coercion (so True is not taken for 1 s), and its schedule

    @field_validator("interval_seconds", mode="before")
    @classmethod
    def _check_interval(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            try:
                value = check_number(
                    value,
                    name="interval_seconds",
                    low=MIN_INTERVAL_SECONDS,
                    high=MAX_INTERVAL_SECONDS,
                )
            except ValueError as exc:
                raise _error("number", str(exc)) from None
        _check_schedule_field("interval_seconds", value, info)
        return value

    # -- field validators (declaration order: each sees the fields above it) -------------

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise _error(
                "task_id",
                "id must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
                f"not only dots; got {value!r}",
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not zone_exists(value, stored=bool((info.context or {}).get(STORED_CONTEXT_KEY))):
            raise _error("timezone", unknown_zone_message(value))
        return value

    @field_validator("cron_expression")
    @classmethod
    def _check_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        _check_schedule_field("cron_expression", value, info)
        if value is None:
            return None
        try:
            parse_cron(value)
        except CronError as exc:
            raise _error("cron_expression", f"cron expression {value!r}: {exc}") from None
        return value.strip()

    @field_validator("run_at", mode="before")
    @classmethod
    def _no_date_alone(cls, value: Any) -> Any:
        return refuse_date_alone("run_at", value)

    @field_validator("run_at")
    @classmethod
    def _check_run_at(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        _check_schedule_field("run_at", value, info)
        return localized(value, info)

    @field_validator("start_date", "end_date")
    @classmethod
    def _localize(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return localized(value, info)

    @field_validator("end_date")
    @classmethod
    def _check_end_after_start(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        check_bounds(info.data.get("start_date"), value, info.data.get("timezone"))
        return value

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("input") is None and "input" in info.data:
                raise _error(
                    "prompt",
                    "a prompt is required (or an input dict, for graphs without messages)",
                )
            return None
        if not value.strip():
            raise _error("prompt", "prompt is empty; write what the agent should do")
        return value

    @field_validator("metadata", "input", "context", "request")
    @classmethod
    def _check_json(cls, value: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if value is None or (info.context or {}).get(STORED_CONTEXT_KEY):
            # None, or read back from a row that was written only after passing this check
            return value
        try:  # a cron's request holds its config twice, 2 levels down
            bounds = REQUEST_BOUNDS if info.field_name == "request" else {}
            check_json_value(value, **bounds, checkpointed=info.field_name in ("input", "metadata"))
        except ValueError as exc:
            raise _error("json", str(exc)) from None
        return value

    @field_validator("result_callback", "on_failure_callback", "on_waiting_callback")
    @classmethod
    def _check_dotted_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _DOTTED_PATH.match(value):
            raise _error(
                "callback",
                f"{info.field_name} {value!r} is not a dotted path such as "
                "'package.module:function'",
            )
        return value

    @model_validator(mode="after")
    def _check_schedule_options(self) -> TaskDefinition:
        after, task_type = self.after, self.task_type
        if after is not None and self.id in after.tasks:
            raise _error("after", f"after: task {self.id!r} cannot run after itself")
        if task_type is TaskType.AFTER and after is None:
            raise _error("after", "task_type 'after' needs after: the tasks it runs after")
        if task_type is TaskType.ONE_TIME or task_type is TaskType.AFTER:
            for field in ("start_date", "end_date", "jitter_seconds"):
                if getattr(self, field) is not None:
                    raise _error(
                        "schedule",
                        f"{field} applies to cron and interval tasks, not "
                        f"{self.task_type.value} ones",
                    )
        return self

    # -- behaviour -----------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The classic recipe's name for :attr:`thread_id`."""
        return self.thread_id

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, validated as ``TaskDefinition(**{**dump, **update})``
        would be (pydantic's checks nothing: an interval of 0 was written by ``add_task`` as
        a row that could not be loaded back, never to fire).

        Raises:
            pydantic.ValidationError: The updated definition is not valid.
        """
        if not update:
            return super().model_copy(deep=deep)
        task = self.model_validate({**self.model_dump(warnings=False), **update})
        if not update.keys() & {"schedule", "run_at"}:  # ``today at 9:00``: read in its zone
            task._pending_wall_clock = self._pending_wall_clock
        return task

    def zone(self, default: str = "UTC") -> tzinfo:
        """The task's time zone, or ``default`` when it has none."""
        return ZoneInfo(self.timezone or default)

    def with_timezone(self, default: str) -> TaskDefinition:
        """A copy with ``timezone`` set (to ``default`` if unset), every datetime aware at a
        fixed offset as stored ones read back, and ``today at 9:00`` read with no zone read again.

        Raises:
            ScheduleError: That ``today at`` time has passed in the zone (or is in a DST gap).
            pydantic.ValidationError: A naive ``run_at``, ``start_date`` or ``end_date`` in
                its DST gap, an end before the start.
        """
        zone_name = self.timezone or default
        zone = ZoneInfo(zone_name)
        updates: dict[str, Any] = {"timezone": zone_name}
        if self._pending_wall_clock is not None:  # ``today at 9:00``: its day and time there
            updates["run_at"] = wall_clock_time(self._pending_wall_clock, zone_name)
        for field in ("run_at", "start_date", "end_date"):
            value = updates.get(field, getattr(self, field))
            if value is not None:
                updates[field] = _fixed_offset(field, value, zone)
        task = super().model_copy(update=updates)  # (values derived from checked ones)
        task._pending_wall_clock = None
        check_bounds(task.start_date, task.end_date, zone_name, loaded=True)
        return task

    def build_trigger(self, *, anchor: datetime, default_timezone: str = "UTC") -> BaseTrigger:
        """Build the APScheduler trigger for this task's schedule.

        Args:
            anchor: When the schedule was set; an interval task without ``start_date``
                first fires at ``anchor + interval_seconds``.
            default_timezone: Zone used when the task has none.
        """
        return task_trigger(self, anchor=anchor, zone_name=default_timezone)

    def next_run_times(self, count: int, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (default: now), timezone-aware.

        Pure: needs no scheduler. An interval task without ``start_date`` is previewed as
        if it were added at ``after``. A naive ``after`` is read in the task's time zone
        (UTC without ``timezone``: ``add_task`` gives it the scheduler's).
        """
        zone = self.zone()
        moment = localize(after, zone) if after is not None else datetime.now(UTC)
        trigger = self.build_trigger(anchor=moment)
        return [t.astimezone(zone) for t in fire_times(trigger, after=moment, count=count)]

    def schedule_key(self) -> tuple[Any, ...]:
        """The fields that decide fire times; a change to any of them reschedules the task."""
        return (
            self.task_type,
            self.cron_expression,
            self.interval_seconds,
            self.run_at,
            self.timezone,
            self.start_date,
            self.end_date,
            self.jitter_seconds,
        )
