"""A task scheduler for LangGraph agents: cron, interval and one-time schedules on
APScheduler 3, kept in a SQLAlchemy database, each firing invoking the compiled graph."""

from typing import TYPE_CHECKING, Any

from scheduler.callbacks import CallbackPolicy
from scheduler.changeset import SyncReport
from scheduler.enums import OverlapPolicy, Priority, RunStatus, RunTrigger, TaskState, TaskType
from scheduler.exceptions import (
    CallbackError,
    DefinitionError,
    GraphLoadError,
    RunNotFoundError,
    ScheduleError,
    SchedulerError,
    SchedulerNotRunningError,
    SettingError,
    StorageError,
    TaskExistsError,
    TaskNotFoundError,
    TaskNotRunnableError,
    TasksFileError,
    TaskSourceConflictError,
)
from scheduler.models import TaskDefinition
from scheduler.records import Notice, RunRecord, TaskInfo
from scheduler.service import BackgroundService, main, start_in_background
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import apply_tasks_file

if TYPE_CHECKING:
    from scheduler.checkpoint import SqliteCheckpointer

__all__ = [
    "BackgroundService",
    "CallbackError",
    "CallbackPolicy",
    "DefinitionError",
    "GraphLoadError",
    "Notice",
    "OverlapPolicy",
    "Priority",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunTrigger",
    "ScheduleError",
    "SchedulerError",
    "SchedulerNotRunningError",
    "SettingError",
    "Settings",
    "SqliteCheckpointer",
    "StorageError",
    "SyncReport",
    "TaskDefinition",
    "TaskExistsError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskNotRunnableError",
    "TaskScheduler",
    "TaskSourceConflictError",
    "TaskState",
    "TaskType",
    "TasksFileError",
    "apply_tasks_file",
    "main",
    "start_in_background",
]


def __getattr__(name: str) -> Any:
    """``SqliteCheckpointer`` on first use: it imports LangGraph's checkpointers, which the
    CLI's management commands do not need."""
    if name == "SqliteCheckpointer":
        from scheduler.checkpoint import SqliteCheckpointer

        return SqliteCheckpointer
    raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
