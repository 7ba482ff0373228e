"""The scaffolder's changes to a project, and its record of what it wrote.

Every change is planned first (:class:`ChangeSet`) and written only when the whole plan
holds. ``.scheduler-scaffold.json`` keeps a SHA-256 of each file, and of each marked block,
that the scaffolder wrote: a file whose bytes still match was not touched by the user and
may be updated; one that differs was changed since, and is overwritten only with
``--force``. A file the scaffolder never wrote is never overwritten without it either.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.scaffold.wiring import find_block, replace_block

__all__ = ["RECORD", "Change", "ChangeSet", "read_text"]

RECORD = ".scheduler-scaffold.json"


def read_text(path: Path) -> str | None:
    """The file's text with its line endings as they are, or ``None`` if there is none."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as file:
        return file.read()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Change:
    """One file to create, update or delete (``new`` is ``None``).

    Attributes:
        path: The file, relative to the project (POSIX form).
        old: Its text now (``None``: it does not exist).
        new: Its text afterwards (``None``: deleted).
        note: What the change is, for people.
        copied: A file of the copied package (or the record): summarised, not diffed.
    """

    path: str
    old: str | None
    new: str | None
    note: str = ""
    copied: bool = False

    @property
    def action(self) -> str:
        """``create``, ``update`` or ``delete``."""
        if self.new is None:
            return "delete"
        return "create" if self.old is None else "update"

    def diff(self) -> Iterator[str]:
        """The change as a unified diff, line by line."""
        before = "/dev/null" if self.old is None else f"a/{self.path}"
        after = "/dev/null" if self.new is None else f"b/{self.path}"
        old = (self.old or "").splitlines(keepends=True)
        new = (self.new or "").splitlines(keepends=True)
        for line in difflib.unified_diff(old, new, before, after):
            yield line if line.endswith("\n") else line + "\n"


class ChangeSet:
    """The changes planned for one project, checked against the record.

    Args:
        project: The project's directory.
        force: Overwrite files changed since they were scaffolded (or never scaffolded).
    """

    def __init__(self, project: Path, *, force: bool) -> None:
        self.project = project
        self.force = force
        self.record_text = read_text(project / RECORD)
        try:
            record = json.loads(self.record_text or "{}")
        except json.JSONDecodeError:
            record = {}
        self.graph: str | None = record.get("graph")  # the graph it was scaffolded for
        self.example = record.get("example") is True  # tasks.yaml is the example it wrote
        self.tasks_file = record.get("tasks_file")  # where the tasks go, if not tasks.yaml
        self.files: dict[str, str] = dict(record.get("files", {}))
        self.blocks: dict[str, str] = dict(record.get("blocks", {}))
        self.changes: list[Change] = []
        self.conflicts: list[str] = []

    def scaffolded(self, rel: str) -> bool:
        """The scaffolder wrote the whole file ``rel``."""
        return rel in self.files

    def unchanged(self, rel: str) -> bool:
        """The file ``rel`` is as the scaffolder wrote it."""
        text = read_text(self.project / rel)
        return text is not None and self.files.get(rel) == _sha(text)

    def _refuse(self, rel: str, why: str) -> None:
        if not self.force:
            self.conflicts.append(f"{rel} ({why})")

    def whole(self, rel: str, new: str, *, note: str = "", copied: bool = False) -> None:
        """Plan the file ``rel`` to be exactly ``new``."""
        old = read_text(self.project / rel)
        if old != new:
            if old is not None and self.files.get(rel) != _sha(old):
                scaffolded = rel in self.files
                self._refuse(
                    rel, "changed since it was scaffolded" if scaffolded else "not scaffolded"
                )
            self.changes.append(Change(rel, old, new, note, copied))
        self.files[rel] = _sha(new)

    def block(self, rel: str, old: str | None, block: str, added: str, note: str) -> None:
        """Plan the marked block of ``rel`` to be ``block``: replaced where it is, or, when
        the file has none yet, ``added`` (the file's text with the block placed)."""
        span = find_block(old) if old else None
        new = added
        if old is not None and span is not None:
            current = old[span[0] : span[1]]
            if current != block and self.blocks.get(rel) != _sha(current):
                self._refuse(rel, "its scheduler block changed since it was scaffolded")
            new = replace_block(old, span, block)
        if new != old:
            self.changes.append(Change(rel, old, new, note))
        self.blocks[rel] = _sha(block)

    def change(self, rel: str, old: str | None, new: str, note: str) -> None:
        """Plan an edit of a file the user owns (only adding to it): no record, no check."""
        if new != old:
            self.changes.append(Change(rel, old, new, note))

    def remove_stale(self, prefix: str, wanted: set[str]) -> None:
        """Plan to delete the files under ``prefix`` that were scaffolded and are no longer
        in ``wanted`` (a module the package dropped)."""
        for rel in sorted(name for name in self.files if name.startswith(prefix)):
            if rel in wanted:
                continue
            old = read_text(self.project / rel)
            if old is not None:
                if self.files[rel] != _sha(old):
                    self._refuse(rel, "changed since it was scaffolded")
                self.changes.append(Change(rel, old, None, "no longer part of it", copied=True))
            del self.files[rel]

    def close(self, about: dict[str, Any]) -> None:
        """Plan the record itself (with ``about`` added), if anything changed."""
        record = {
            "about": "written by python -m scheduler scaffold: a SHA-256 of each file and "
            "block it wrote, so that it keeps your later edits (unless --force)",
            **about,
            "files": dict(sorted(self.files.items())),
            "blocks": dict(sorted(self.blocks.items())),
        }
        text = json.dumps(record, indent=2) + "\n"
        if self.changes or text != self.record_text:
            note = "what was written, to tell your later edits apart"
            self.changes.append(Change(RECORD, self.record_text, text, note, copied=True))

    def write(self) -> None:
        """Write every change, the record last, or none: each new text is first written
        beside its file (a file that is not writable, a directory that cannot be made, a
        full disk: nothing of the project changed), then each is moved into place.

        Raises:
            OSError: A file could not be written (its ``filename`` says which); nothing was.
        """
        ordered = sorted(self.changes, key=lambda c: c.path == RECORD)
        staged: list[tuple[Path, Path]] = []
        made: list[Path] = []
        try:
            for change in ordered:
                path = self.project / change.path
                if path.is_dir():
                    raise IsADirectoryError(errno.EISDIR, "a directory is there", str(path))
                if path.exists() and not os.access(path, os.W_OK):  # replacing would ignore it
                    raise PermissionError(errno.EACCES, "it is not writable", str(path))
                if change.new is None:
                    continue
                for parent in reversed(path.parents):
                    if not parent.exists():
                        parent.mkdir()
                        made.append(parent)
                staging = path.with_name(f".{path.name}.scaffolding")
                staged.append((staging, path))
                staging.write_text(change.new, encoding="utf-8", newline="")
                if path.exists():
                    shutil.copymode(path, staging)
        except OSError:
            for staging, _ in staged:
                staging.unlink(missing_ok=True)
            for parent in reversed(made):
                with contextlib.suppress(OSError):
                    parent.rmdir()
            raise
        moves = dict((path, staging) for staging, path in staged)
        for change in ordered:
            path = self.project / change.path
            if change.new is None:
                path.unlink()
            else:
                os.replace(moves[path], path)
