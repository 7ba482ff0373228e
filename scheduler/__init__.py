"""A task scheduler for LangGraph agents: cron, interval and one-time schedules on
APScheduler 3, kept in a SQLAlchemy database, each firing invoking the compiled graph."""

from scheduler.exceptions import (
    CallbackError,
    GraphLoadError,
    RunNotFoundError,
    SchedulerError,
    SchedulerNotRunningError,
    StorageError,
    TaskExistsError,
    TaskNotFoundError,
    TaskNotRunnableError,
)
from scheduler.models import OverlapPolicy, Priority, RunStatus, TaskDefinition, TaskType
from scheduler.records import RunRecord, RunTrigger, TaskInfo, TaskState
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler

__all__ = [
    "CallbackError",
    "GraphLoadError",
    "OverlapPolicy",
    "Priority",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunTrigger",
    "SchedulerError",
    "SchedulerNotRunningError",
    "Settings",
    "StorageError",
    "TaskDefinition",
    "TaskExistsError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskNotRunnableError",
    "TaskScheduler",
    "TaskState",
    "TaskType",
]
