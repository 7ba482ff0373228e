"""Exceptions raised by the scheduler.

Every exception derives from :class:`SchedulerError` and, where one fits, from the
built-in exception a caller would naturally catch (``TaskNotFoundError`` is a
``KeyError``). Each builds its own message from its data and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError


class SchedulerError(Exception):
    """Root of every exception raised by this package."""


class TaskNotFoundError(SchedulerError, KeyError):
    """No task with the given id exists."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(task_id)

    def __str__(self) -> str:
        return f"no task with id {self.task_id!r}"


class RunNotFoundError(SchedulerError, KeyError):
    """No run with the given id exists."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(run_id)

    def __str__(self) -> str:
        return f"no run with id {self.run_id!r}"


class RunNotWaitingError(SchedulerError, ValueError):
    """``resume_run`` on a run that is not waiting for an answer (or already answered)."""

    def __init__(
        self, run_id: str, status: str, *, answered: bool = False, cancelling: bool = False
    ) -> None:
        self.run_id = run_id
        self.status = status
        if answered:
            reason = "has been answered already; it resumes with that answer"
        elif cancelling:
            reason = "has been asked to cancel; it ends cancelled"
        else:
            reason = f"is not waiting for an answer (it is {status})"
        super().__init__(f"run {run_id!r} {reason}")


class AnswerMismatchError(SchedulerError, ValueError):
    """An answer that does not fit the questions its run waits at: a run waiting at
    several ``interrupt()`` calls at once is answered with one value per question id."""

    def __init__(self, run_id: str, ids: Sequence[str], problem: str) -> None:
        self.run_id = run_id
        self.ids = list(ids)
        example = ", ".join(f'"{i}": ...' for i in self.ids[:3])
        super().__init__(
            f"run {run_id!r} waits at {len(self.ids)} question(s) ({', '.join(self.ids)}); "
            f"{problem}: answer with an object that maps question ids to answers, e.g. "
            f"{{{example}}} (nothing was written)"
        )


class TaskExistsError(SchedulerError, ValueError):
    """``add_task(..., replace_existing=False)`` met a task with the same id.

    Attributes:
        task_id: The id.
        source: Where the existing task comes from (``file:tasks.yaml``), when known.
    """

    def __init__(self, task_id: str, source: str | None = None) -> None:
        self.task_id = task_id
        self.source = source
        super().__init__(
            f"a task with id {task_id!r} already exists; pass replace_existing=True to update it"
        )

    def for_the_cli(self) -> str:
        """The message in the CLI's words (a tasks file's task is changed in its file: an
        ``add --replace`` of it is refused, as the file would fail at every apply)."""
        if self.source and self.source.startswith("file:"):
            return (
                f"a task with id {self.task_id!r} already exists, defined in "
                f"{self.source.removeprefix('file:')}; change it there and apply the file, "
                "or give this task another id"
            )
        return (
            f"a task with id {self.task_id!r} already exists; change it with "
            f"'edit {self.task_id} ...', or replace it with 'add --replace'"
        )


class TaskSourceConflictError(SchedulerError, ValueError):
    """Tasks written for one source (a tasks file) have ids of tasks from another source.

    Attributes:
        source: The source being written (``file:tasks.yaml``).
        conflicts: Each conflicting task id and the source it belongs to.
    """

    def __init__(self, source: str, conflicts: dict[str, str]) -> None:
        self.source = source
        self.conflicts = dict(conflicts)
        names = ", ".join(f"{task_id!r} ({other})" for task_id, other in sorted(conflicts.items()))
        super().__init__(
            f"tasks already exist with another source: {names}; {source} does not change "
            "tasks it did not define. Rename them, or remove the existing tasks first (from "
            "Python, add_task(..., source=None) changes one and keeps its source)."
        )


class TaskNotRunnableError(SchedulerError, ValueError):
    """A task's stored definition cannot be loaded, so it cannot be run or changed."""

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id = task_id
        self.reason = reason
        super().__init__(f"task {task_id!r} cannot be loaded: {reason}")


class CallbackError(SchedulerError, ValueError):
    """A callback's dotted path cannot be imported or does not name a callable."""

    def __init__(self, field: str, path: str, reason: str) -> None:
        self.field = field
        self.path = path
        self.reason = reason
        super().__init__(f"{field} {path!r}: {reason}")


class GraphLoadError(SchedulerError, ImportError):
    """The graph target (``SCHEDULER_GRAPH``) cannot be loaded."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"graph {target!r}: {reason}")


class DefinitionError(SchedulerError, ValueError):
    """A stored task definition that this version cannot load (a newer format, corrupted
    JSON, an unknown field, an unusable value); the row is kept and reported."""


class DependencyError(SchedulerError, ValueError):
    """Tasks whose ``after`` links do not hold: an unknown upstream, a cycle, or removing a
    task others run after. Nothing was changed."""


class UsageError(SchedulerError, ValueError):
    """Bad input found by a CLI command (exit status 2)."""


class StorageError(SchedulerError):
    """The database failed; the driver's exception is chained as ``__cause__``."""


class DatabaseBusyError(StorageError):
    """A write that was asked not to wait found the write lock taken: by another process
    (SQLite's), or by a write of this process that is still going. Nothing was written;
    trying again later is the answer (the dispatcher's claim does, off its event loop's
    time)."""


class UnstorableTextError(StorageError):
    """A text with a NUL character (U+0000) given to PostgreSQL, which refuses one in any
    text, a lookup's too: no row holds it, none can be written with it. Bad input, not a
    database failing."""


class LeadershipLostError(StorageError):
    """A write of the active scheduler was refused: another process has become active on
    the database since (its leader lock was lost). This process lets go of its runs."""


#: What :meth:`TaskScheduler.start <scheduler.TaskScheduler.start>` says outside an event loop.
NO_EVENT_LOOP = (
    "start() needs a running event loop: call it from an async def (from synchronous "
    "code: scheduler.service.start_in_background)"
)


class SchedulerNotRunningError(SchedulerError, RuntimeError):
    """An operation that needs a started scheduler was called before ``start()``."""

    def __init__(self, operation: str, *, message: str | None = None) -> None:
        super().__init__(message or f"{operation} needs a started scheduler; call start() first")


class ScheduleError(SchedulerError, ValueError):
    """A schedule string that does not parse; the message says why, and lists the accepted
    forms when the text is none of them (``show_forms``)."""

    ACCEPTED_FORMS = (
        "cron '0 9 * * 1-5', '@daily', 'every 5 minutes', 'every day at 09:00', "
        "'every monday at 8:30', 'weekdays at 18:00', 'in 30 minutes', 'at 2030-03-15 14:00', "
        "ISO 8601 datetime"
    )

    def __init__(self, text: str, reason: str, *, show_forms: bool = False) -> None:
        self.text = text
        self.reason = reason
        forms = f"; accepted forms: {self.ACCEPTED_FORMS}" if show_forms else ""
        super().__init__(f"schedule {text!r}: {reason}{forms}")


class SettingError(SchedulerError, ValueError):
    """``SCHEDULER_*`` variables (or ``.env`` lines) with bad values; ``problems`` holds
    ``(variable, what)`` pairs, and the message names each variable, not its field
    (``max_retries`` is also a task's field and an ``add`` flag)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{variable}: {what}" for variable, what in self.problems))


class TasksFileError(SchedulerError, ValueError):
    """A tasks file with problems; ``problems`` lists each as ``file:line: where: what``."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in {self.path}; nothing was applied:\n"
            + "\n".join(f"  {p}" for p in self.problems)
        )


class ScaffoldError(SchedulerError):
    """The scaffolder cannot go ahead; nothing was written.

    Args:
        message: What is wrong and how to fix it.
        status: Exit status: 1 when something is not found, 2 on bad input or a refusal.
    """

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def describe_errors(
    exc: ValidationError | _HasErrors,
    *,
    whole: str | None = None,
    unnamed: Collection[str] = (),
) -> str:
    """A ``ValidationError`` (or anything whose ``errors()`` are pydantic's, such as
    FastAPI's request errors) on one line: ``field: message; ...``. An error about the
    whole object is labelled ``whole`` (or shown as its bare message); a location starting
    with one of ``unnamed`` (``"query"``, ``"body"``) is named without it."""
    parts = []
    for error in exc.errors():
        names = [str(p) for p in error["loc"]]
        if names and names[0] in unnamed:
            names = names[1:]
        loc = ".".join(names) or whole
        message = str(error["msg"]).removeprefix("Value error, ")  # (pydantic's wording)
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


class _HasErrors(Protocol):
    def errors(self) -> Sequence[Any]: ...
