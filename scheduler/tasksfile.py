"""The declarative tasks file (``tasks.yaml``): read, validate, apply.

The file is a YAML (or JSON) list of task definitions, or a mapping with a ``tasks:`` list.
Applying it adds new tasks, updates changed ones and, for tasks that came from this file and
are gone from it, removes them (or keeps them: ``removed="keep"``): that is
:meth:`TaskScheduler.sync_tasks <scheduler.TaskScheduler.sync_tasks>` with the file as the
source. Tasks added through the API or the CLI are never touched; a file entry with the id
of such a task is an error, and so is one with the id of a task that another tasks file,
still there, defines (:func:`file_source`: each file is its own source).

An empty file (0 bytes, or only whitespace and comments, as an editor may leave it
half-written) or ``tasks:`` with no list is a problem, not "no tasks": ``tasks: []`` (or
``[]``) says that the file has none.

Applying is all-or-nothing: every entry is validated first, every problem (a field, a
callback, an id taken by another task) is reported with its line, entry and field, and
nothing is written unless there are none. Applying the same file twice changes nothing (not
even ``updated_at``). A file that cannot be applied is noted in the database, so ``list``
and ``show`` say that what runs is not what the file says.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from scheduler.changeset import SyncReport, tried_changes
from scheduler.documents import DocumentError
from scheduler.exceptions import (
    CallbackError,
    DependencyError,
    TaskNotFoundError,
    TasksFileError,
    TaskSourceConflictError,
)
from scheduler.models import TaskDefinition
from scheduler.tasks_document import (
    Entry,
    load_tasks_file,
    read_entries,
    tasks_document,
    tasks_listed,
)

if TYPE_CHECKING:
    from scheduler.task_scheduler import TaskScheduler

__all__ = [
    "ApplyReport",
    "TasksFileError",
    "apply_tasks_file",
    "check_tasks_file",
    "drop_note_if_gone",
    "file_source",
    "load_tasks_file",
    "tasks_listed",
]

logger = logging.getLogger(__name__)

#: What applying a tasks file changed (the report of ``sync_tasks``).
ApplyReport = SyncReport


def file_source(path: Path | str) -> str:
    """The ``source`` recorded on tasks that come from the file at ``path``: ``file:`` and
    its path relative to the working directory (the project's), in ``/`` form, or its
    absolute path when it is outside it. ``main.py``'s ``tasks.yaml`` is ``file:tasks.yaml``
    (what every version recorded), ``config/tasks.yaml`` is ``file:config/tasks.yaml``:
    two files never share a source, and a project directory moved or renamed keeps its
    sources. (Versions before this one recorded only the file's name: see
    :func:`_defined_elsewhere`.)
    """
    absolute = Path(os.path.abspath(path))
    try:
        return f"file:{absolute.relative_to(os.path.abspath(os.getcwd())).as_posix()}"
    except ValueError:  # outside the project
        return f"file:{absolute.as_posix()}"


def _legacy_source(path: Path) -> str:
    """The source that older versions recorded for ``path``: its name alone."""
    return f"file:{path.name}"


def _source_file(source: str, path: Path) -> Path | None:
    """The file that ``source`` (a ``file:`` source) names, if it is there and is not the
    file at ``path``."""
    named = Path(os.path.abspath(source.removeprefix("file:")))
    try:
        return named if named.is_file() and not os.path.samefile(named, path) else None
    except OSError:
        return None


def _ids_in(path: Path) -> set[str] | None:
    """The task ids that the tasks file at ``path`` defines; None if it cannot be read."""
    try:
        _, data = tasks_document(path)
    except (OSError, DocumentError):
        return None
    entries = data if isinstance(data, list) else []
    return {str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e}


def _defined_elsewhere(
    owner: str, path: Path, task_id: str, read: dict[str, set[str] | None]
) -> bool:
    """Whether another tasks file, the one that ``owner`` names, is there and defines
    ``task_id`` (or cannot be read to say). A task id belongs to one file: the file at
    ``path`` takes over a task of another file only when that file is gone (renamed or
    moved: its tasks go with it) or no longer defines it (such as a task that versions
    before this one, which recorded only the file's name, put under ``file:tasks.yaml``
    for ``other/tasks.yaml``). ``read``: the ids of the files read so far, by source."""
    if owner not in read:
        other = _source_file(owner, path)
        read[owner] = set() if other is None else _ids_in(other)
    ids = read[owner]
    return ids is None or task_id in ids


def _located(path: Path, entry: Entry, field: str | None, message: str) -> str:
    line = entry.key_lines.get(field) if field else None
    at = f"{path}:{line}" if line else entry.where
    return f"{at}: {entry.label}: {message}"


def _checked(
    scheduler: TaskScheduler, path: Path, *, import_callbacks: bool
) -> tuple[list[Entry], list[str]]:
    entries, problems = read_entries(path, scheduler.settings.timezone)
    for entry in entries:
        try:
            scheduler.check_callbacks(entry.task, import_callbacks=import_callbacks)
        except CallbackError as exc:
            problems.append(_located(path, entry, exc.field, str(exc)))
    source = file_source(path)
    others: dict[str, set[str] | None] = {}
    for entry in entries:
        owner = _owner(scheduler, entry.task.id)
        if owner is None or owner == source:
            continue
        if not owner.startswith("file:"):
            problems.append(_located(path, entry, "id", _conflict_message(entry.task.id, owner)))
        elif _defined_elsewhere(owner, path, entry.task.id, others):
            message = (
                f"task {entry.task.id!r} already exists and belongs to the tasks file "
                f"{owner.removeprefix('file:')} ({owner}); a task id belongs to one tasks "
                "file. Rename the entry, or remove it from the other file."
            )
            problems.append(_located(path, entry, "id", message))
    return entries, problems


def _owner(scheduler: TaskScheduler, task_id: str) -> str | None:
    try:
        return scheduler.get_task(task_id).source
    except TaskNotFoundError:
        return None


def _conflict_message(task_id: str, owner: str) -> str:
    return (
        f"task {task_id!r} already exists and was added through the API or CLI ({owner}); a "
        "tasks file does not change such tasks. Rename the entry, or remove the existing "
        "task first."
    )


def check_tasks_file(
    scheduler: TaskScheduler, path: Path | str, *, import_callbacks: bool = False
) -> list[TaskDefinition]:
    """Everything :func:`apply_tasks_file` checks, writing nothing: syntax, every entry,
    callbacks, and ids already taken by API or CLI tasks; every problem of every entry is
    reported, each with its line. Callbacks are checked against the callback policy without
    running module code, unless ``import_callbacks`` (as applying does).

    Raises:
        TasksFileError: With every problem found.
    """
    path = Path(path)
    entries, problems = _checked(scheduler, path, import_callbacks=import_callbacks)
    if not problems:  # (links between entries that did not load would only add noise)
        problems = _link_problems(scheduler, path, entries)
    if problems:
        raise TasksFileError(path, problems)
    return [entry.task for entry in entries]


def _link_problems(scheduler: TaskScheduler, path: Path, entries: list[Entry]) -> list[str]:
    """What applying would refuse in the ``after`` links (a task that is not one, a cycle,
    removing a task others run after): the sync tried in a transaction rolled back."""
    tasks = [entry.task.with_timezone(scheduler.settings.timezone) for entry in entries]
    now = scheduler.now().timestamp()
    try:
        with tried_changes(scheduler.store, settings=scheduler.settings, now=now) as changes:
            changes.sync(tasks, source=file_source(path))
        return []
    except DependencyError as exc:
        return [_dependency_problem(path, entries, exc)]
    except TaskSourceConflictError:
        return []  # said already, by the check of each entry's id


def _dependency_problem(path: Path, entries: list[Entry], exc: DependencyError) -> str:
    """The message of ``exc`` at the entry it names, if it names one."""
    for entry in entries:
        if f"task {entry.task.id!r}" in str(exc):
            return _located(path, entry, "after", str(exc))
    return f"{path}: {exc}"


def apply_tasks_file(
    scheduler: TaskScheduler,
    path: Path | str,
    *,
    removed: Literal["remove", "keep"] = "remove",
) -> ApplyReport:
    """Make the scheduler's tasks match the file (see the module docstring). A file that
    cannot be applied is noted for ``list`` and ``show`` (a path that is no file is not);
    applying it later clears that.

    Raises:
        TasksFileError: The file has problems; nothing was applied.
    """
    path = Path(path)
    source = file_source(path)
    try:
        entries, problems = _checked(scheduler, path, import_callbacks=True)
        if problems:
            raise TasksFileError(path, problems)
        try:
            report = scheduler.sync_tasks(
                [entry.task for entry in entries], source=source, removed=removed
            )
        except DependencyError as exc:  # an after link that does not hold: nothing applied
            raise TasksFileError(path, [_dependency_problem(path, entries, exc)]) from exc
        except TaskSourceConflictError as exc:  # added meanwhile
            by_id = {entry.task.id: entry for entry in entries}
            raise TasksFileError(
                path,
                [
                    _located(path, by_id[task_id], "id", _conflict_message(task_id, owner))
                    for task_id, owner in sorted(exc.conflicts.items())
                ],
            ) from exc
    except TasksFileError as exc:
        if not path.is_file():  # (no file, no version of it: a mistyped path leaves no note)
            raise _gone(scheduler, path, exc) from None
        count = len(exc.problems)
        scheduler.note_problem(
            source,
            f"{path} was not applied ({count} problem{'s' if count != 1 else ''}; see "
            f"'validate {path}'): "
            + (
                "the tasks of its last good version are the ones that run"
                if _tasks_of(scheduler, source)
                else "none of its tasks run"
            ),
        )
        raise
    scheduler.note_problem(source, None)
    legacy = _legacy_source(path)
    if (  # the note an older version made for this file
        legacy != source
        and _source_file(legacy, path) is None
        and any(notice.source == legacy for notice in scheduler.notices())
    ):
        scheduler.note_problem(legacy, None)
    logger.info("applied %s: %s", path, report.summary())
    return report


def _gone(scheduler: TaskScheduler, path: Path, exc: TasksFileError) -> TasksFileError:
    """What to raise for ``exc`` when the file at ``path`` is not there. A note that an
    earlier version could not be applied goes if no task came from the file (nothing of it
    runs: see :func:`drop_note_if_gone`); if some did, they are kept (a file removed is not
    a file emptied), and the error says how to remove them.
    """
    kept = drop_note_if_gone(scheduler, path)
    if not kept:
        return exc
    named = ", ".join(repr(task_id) for task_id in kept[:5]) + (", ..." if len(kept) > 5 else "")
    return TasksFileError(
        path,
        [
            *exc.problems[:-1],
            f"{exc.problems[-1]}; the {len(kept)} task(s) it added are kept ({named}): to "
            "remove them, apply a file at this path that says 'tasks: []', or 'remove' each",
        ],
    )


def drop_note_if_gone(scheduler: TaskScheduler, path: Path) -> list[str]:
    """The ids of the tasks that the tasks file at ``path`` (not there) added; if none, its
    note (a version that could not be applied) is dropped: nothing of the file runs."""
    source = file_source(path)
    kept = _tasks_of(scheduler, source)
    if not kept and any(notice.source == source for notice in scheduler.notices()):
        scheduler.note_problem(source, None)
    return kept


def _tasks_of(scheduler: TaskScheduler, source: str) -> list[str]:
    """The ids of the tasks of ``source`` itself (not of the sources under it), sorted."""
    return sorted(
        row.id for row in scheduler.store.iter_tasks(source=source) if row.source == source
    )
