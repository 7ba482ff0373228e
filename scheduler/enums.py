"""The vocabulary of tasks and runs: string enums, stored and shown by their values.

Every layer uses these (models, storage rows, the runtime, the CLI), so they sit below all
of them and import nothing of the package.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OverlapPolicy", "Priority", "RunStatus", "RunTrigger", "TaskState", "TaskType"]


class TaskType(StrEnum):
    """How a task's fire times are defined."""

    CRON = "cron"
    INTERVAL = "interval"
    ONE_TIME = "one_time"
    AFTER = "after"  # no clock: it runs on other tasks' outcomes (its ``after`` field)


class Priority(StrEnum):
    """Order in which waiting runs get a free slot (``max_concurrent_runs``)."""

    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for urgent .. 3 for low; lower starts first."""
        return _PRIORITY_RANKS[self]


_PRIORITY_RANKS = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class OverlapPolicy(StrEnum):
    """What happens to an occurrence that comes while the task's previous run is going."""

    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"


class RunStatus(StrEnum):
    """Status of a run record; every status but ``queued``, ``running`` and ``waiting`` is
    final (``waiting``: the graph called ``interrupt()`` and waits for an answer)."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # stopped at an interrupt() until a human answers (resume_run)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    MISSED = "missed"
    UNKNOWN = "unknown"  # the stored record's status cannot be read (see RunRecord.problem)

    @property
    def is_final(self) -> bool:
        """The run will not change any more."""
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)


class TaskState(StrEnum):
    """Where a task stands."""

    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"
    COMPLETED = "completed"  # a one-time task that ran, or a schedule past its end_date
    ERROR = "error"  # its stored definition cannot be loaded


class RunTrigger(StrEnum):
    """Why a run exists."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    DEPENDENCY = "dependency"  # the tasks it runs after finished (its ``upstream`` says how)
