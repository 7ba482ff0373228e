"""The declarative tasks file (``tasks.yaml``): read, validate, apply.

The file is a YAML (or JSON) list of task definitions, or a mapping with a ``tasks:`` list.
Applying it adds new tasks, updates changed ones and, for tasks that came from this file and
are gone from it, removes them (or keeps them: ``removed="keep"``). Tasks added through the
API or the CLI are never touched; a file entry with the id of such a task is an error.

Applying is all-or-nothing: every entry is validated first, every problem is reported with
its line, entry and field, and nothing is written unless there are none. Applying the same
file twice changes nothing (not even ``updated_at``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import ValidationError

from scheduler.codec import DefinitionError, decode
from scheduler.documents import DocumentError, compose_yaml, load_json, load_yaml
from scheduler.exceptions import SchedulerError, TasksFileError
from scheduler.models import TaskDefinition
from scheduler.storage import TaskRow

if TYPE_CHECKING:
    from scheduler.task_scheduler import TaskScheduler

__all__ = [
    "ApplyReport",
    "TasksFileError",
    "apply_tasks_file",
    "check_tasks_file",
    "file_source",
    "load_tasks_file",
]

logger = logging.getLogger(__name__)


@dataclass
class ApplyReport:
    """What applying a tasks file changed (task ids in each list)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        parts = [
            f"{len(getattr(self, name))} {name}"
            for name in ("added", "updated", "unchanged", "removed", "kept")
            if getattr(self, name)
        ]
        return ", ".join(parts) or "no tasks"


def file_source(path: Path | str) -> str:
    """The ``source`` recorded on tasks that come from the file at ``path``."""
    return f"file:{Path(path).name}"


def _entry_lines(text: str) -> tuple[list[int], list[dict[str, int]]]:
    """Line numbers (1-based) of each entry and of each key in it."""
    root = compose_yaml(text)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "tasks":
                root = value
    if not isinstance(root, yaml.SequenceNode):
        return [], []
    entries, keys = [], []
    for item in root.value:
        entries.append(item.start_mark.line + 1)
        key_lines: dict[str, int] = {}
        if isinstance(item, yaml.MappingNode):
            for key, _ in item.value:
                key_lines[str(key.value)] = key.start_mark.line + 1
        keys.append(key_lines)
    return entries, keys


def load_tasks_file(path: Path | str, *, timezone: str = "UTC") -> list[TaskDefinition]:
    """Read and validate a tasks file. Entries may use ``schedule:`` strings; wall-clock
    times in them are read in the entry's ``timezone``, else ``timezone``. One-time
    schedules relative to now (``in 30 minutes``) are refused: they would move at every
    apply.

    Raises:
        TasksFileError: With every problem found, each with its location.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TasksFileError(path, [f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        if path.suffix == ".json":
            data: Any = load_json(text, what=str(path))
        else:
            data = load_yaml(text, what=str(path))
    except DocumentError as exc:
        raise TasksFileError(path, [str(exc)]) from exc
    if data is None:
        return []
    if isinstance(data, dict) and set(data) == {"tasks"}:
        data = data["tasks"] or []
    if not isinstance(data, list):
        kind = type(data).__name__
        raise TasksFileError(
            path, [f"{path}: expected a list of tasks (or 'tasks:' with a list), got {kind}"]
        )
    entry_lines, key_lines = _entry_lines(text) if path.suffix != ".json" else ([], [])
    problems: list[str] = []
    tasks: list[TaskDefinition] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        line = entry_lines[index] if index < len(entry_lines) else None
        where = f"{path}:{line}" if line else str(path)
        if not isinstance(entry, dict):
            problems.append(f"{where}: entry {index + 1}: expected a mapping of task fields")
            continue
        label = f"entry {index + 1}" + (f" (id {entry['id']!r})" if "id" in entry else "")
        try:
            task = TaskDefinition.model_validate(
                entry,
                context={"timezone": timezone, "allow_past": True, "allow_relative": False},
            )
        except ValidationError as exc:
            keys = key_lines[index] if index < len(key_lines) else {}
            for error in exc.errors():
                loc = ".".join(str(p) for p in error["loc"]) or "task"
                field_line = keys.get(str(error["loc"][0])) if error["loc"] else None
                at = f"{path}:{field_line}" if field_line else where
                problems.append(f"{at}: {label}: {loc}: {error['msg']}")
            continue
        if task.id in seen:
            problems.append(
                f"{where}: {label}: id {task.id!r} is also used by entry {seen[task.id]}"
            )
            continue
        seen[task.id] = index + 1
        tasks.append(task)
    if problems:
        raise TasksFileError(path, problems)
    return tasks


def _conflicts(path: Path, tasks: list[TaskDefinition], rows: dict[str, TaskRow]) -> list[str]:
    problems = []
    for task in tasks:
        row = rows.get(task.id)
        if row is not None and not row.source.startswith("file:"):
            problems.append(
                f"{path}: task {task.id!r} already exists and was added through the API or "
                f"CLI ({row.source}); a tasks file does not change such tasks. Rename the "
                "entry, or remove the existing task first."
            )
    return problems


def check_tasks_file(
    scheduler: TaskScheduler, path: Path | str, *, import_callbacks: bool = False
) -> list[TaskDefinition]:
    """Everything :func:`apply_tasks_file` checks, writing nothing: syntax, every entry,
    callbacks, and ids already taken by API or CLI tasks. Returns the prepared tasks.
    Callbacks are checked against the callback policy without running module code, unless
    ``import_callbacks`` (as applying does).

    Raises:
        TasksFileError: With every problem found.
    """
    path = Path(path)
    definitions = load_tasks_file(path, timezone=scheduler.settings.timezone)
    problems: list[str] = []
    prepared: list[TaskDefinition] = []
    for task in definitions:
        try:
            prepared.append(scheduler.prepare_task(task, import_callbacks=import_callbacks))
        except (SchedulerError, ValueError) as exc:
            problems.append(f"{path}: task {task.id!r}: {exc}")
    rows = {}
    for task in prepared:
        row = scheduler.store.get_task(task.id)
        if row is not None:
            rows[task.id] = row
    problems.extend(_conflicts(path, prepared, rows))
    if problems:
        raise TasksFileError(path, problems)
    return prepared


def apply_tasks_file(
    scheduler: TaskScheduler,
    path: Path | str,
    *,
    removed: Literal["remove", "keep"] = "remove",
) -> ApplyReport:
    """Make the scheduler's tasks match the file (see the module docstring).

    Raises:
        TasksFileError: The file has problems; nothing was applied.
    """
    path = Path(path)
    prepared = check_tasks_file(scheduler, path, import_callbacks=True)
    source = file_source(path)
    report = ApplyReport()
    with scheduler.store.transaction() as tx:
        existing = tx.get_tasks(task.id for task in prepared)
        problems = _conflicts(path, prepared, existing)  # again, inside the transaction
        if problems:
            raise TasksFileError(path, problems)
        to_write: list[TaskDefinition] = []
        for task in prepared:
            row = existing.get(task.id)
            if row is None:
                report.added.append(task.id)
                to_write.append(task)
                continue
            try:
                same = decode(row) == task and row.source == source
            except DefinitionError:
                same = False
            if same:
                report.unchanged.append(task.id)
            else:
                report.updated.append(task.id)
                to_write.append(task)
        scheduler.put_tasks(tx, to_write, source=source)
        in_file = {task.id for task in prepared}
        gone = [row.id for row in tx.tasks_from_source(source) if row.id not in in_file]
        if removed == "remove":
            tx.delete_tasks(gone)
            report.removed.extend(sorted(gone))
        else:
            report.kept.extend(sorted(gone))
        if report.changed:
            tx.bump_revision()
    if report.changed:
        scheduler.notify_changed(removed=report.removed)
    logger.info("applied %s: %s", path, report.summary())
    return report
