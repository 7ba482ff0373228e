"""Reading a tasks file: its document, each entry validated, each problem at its line.

What the file may hold is told in :mod:`scheduler.tasksfile`, which applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scheduler.documents import (
    DocumentError,
    as_written,
    compose_yaml,
    load_json,
    load_yaml,
    read_document,
)
from scheduler.exceptions import TasksFileError
from scheduler.models import TaskDefinition

__all__ = ["Entry", "load_tasks_file", "read_entries", "tasks_document", "tasks_listed"]


@dataclass
class Entry:
    """A valid entry of the file and where its fields are."""

    task: TaskDefinition
    label: str
    where: str
    key_lines: dict[str, int]


def tasks_document(path: Path) -> tuple[str, Any]:
    """The file's text and what it holds, a ``tasks:`` mapping unwrapped to its list.

    Raises:
        OSError: It cannot be read.
        DocumentError: It is not valid YAML (JSON for ``.json``) text, or it is empty.
    """
    text = read_document(path)
    if path.suffix == ".json":
        data: Any = load_json(text, what=str(path), unique=True)
    else:
        data = load_yaml(text, what=str(path))
    if isinstance(data, dict) and "tasks" in data:
        data = tasks_listed(data, path)
        if data is None:
            raise DocumentError(f"{path}: 'tasks:' has no list; {_NO_TASKS}")
    elif data is None:  # an editor caught half-way through writing it, more often than not
        raise DocumentError(f"{path}: holds nothing (empty, or only comments); {_NO_TASKS}")
    return text, data


def tasks_listed(data: dict[Any, Any], path: Path) -> Any:
    """What ``tasks:`` holds, in the mapping ``data`` at the top of the file at ``path``.

    Raises:
        DocumentError: The mapping holds another key too (it would be ignored unseen).
    """
    others = [repr(str(key)[:40]) for key in data if key != "tasks"]
    if others:
        raise DocumentError(
            f"{path}: 'tasks:' may be the only key at the top, but {', '.join(others[:3])} "
            f"{'is' if len(others) == 1 else 'are'} there too (values that entries share can "
            "be an anchor on the first entry: '- &defaults')"
        )
    return data["tasks"]


_NO_TASKS = (
    "an empty file is taken for one not written yet, and its tasks are kept: write "
    "'tasks: []' to remove them all"
)


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
    entries, problems = read_entries(Path(path), timezone)
    if problems:
        raise TasksFileError(path, problems)
    return [entry.task for entry in entries]


def read_entries(path: Path, timezone: str) -> tuple[list[Entry], list[str]]:
    """The valid entries of the file, and a problem for each invalid one."""
    try:
        text, data = tasks_document(path)
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc.strerror or exc}"]
    except DocumentError as exc:
        return [], [str(exc)]
    if not isinstance(data, list):
        kind = type(data).__name__
        return [], [f"{path}: expected a list of tasks (or 'tasks:' with a list), got {kind}"]
    entry_lines, key_lines = _entry_lines(text)  # (JSON composes as YAML: its lines too)
    problems: list[str] = []
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        line = entry_lines[index] if index < len(entry_lines) else None
        where = f"{path}:{line}" if line else str(path)
        if not isinstance(entry, dict):
            problems.append(f"{where}: entry {index + 1}: expected a mapping of task fields")
            continue
        label = f"entry {index + 1}" + (f" (id {entry['id']!r})" if "id" in entry else "")
        keys = key_lines[index] if index < len(key_lines) else {}
        try:
            task = TaskDefinition.model_validate(
                entry,
                context={"timezone": timezone, "allow_past": True, "allow_relative": False},
            )
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(_problem(error, keys, where, path, label))
            continue
        if task.id in seen:
            problems.append(
                f"{where}: {label}: id {task.id!r} is also used by entry {seen[task.id]}"
            )
            continue
        seen[task.id] = index + 1
        entries.append(Entry(task, label, where, keys))
    return entries, problems


def _problem(error: Any, keys: dict[str, int], where: str, path: Path, label: str) -> str:
    """One validation error of an entry, at its field's line. An error about the whole
    entry (``schedule:`` is read first) has the key it is about as its type (``schedule``,
    ``timezone``), named in its message: it goes at that key's line, with no ``task:``."""
    field = str(error["loc"][0]) if error["loc"] else str(error["type"])
    line = keys.get(field)
    at = f"{path}:{line}" if line else where
    loc = ".".join(str(p) for p in error["loc"]) or ("" if line else "task")
    return f"{at}: {label}: {f'{loc}: ' if loc else ''}{error['msg']}{as_written(error)}"
