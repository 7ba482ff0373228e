"""A run that has not started runs its task as it is when it starts.

Runs wait before they start: queued behind a busy slot, held by the ``queue`` overlap
policy, waiting to retry, or queued after their upstreams (and a run waiting for an
answer takes the edit too, as a restart reads it). An edit made in this process
reaches them at once (:meth:`Runner.retask <scheduler.runner.Runner.retask>`), one made
by another process at the next poll that sees the change, as a removal does; a run read
back after a restart reads the task as it is then anyway. :class:`Definitions` keeps the
polls cheap: each stored version of a task is decoded once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from scheduler.exceptions import DefinitionError
from scheduler.models import TaskDefinition
from scheduler.rows import decode
from scheduler.storage import TaskRow

__all__ = ["Definitions"]


class Definitions:
    """The definitions of stored task rows, each decoded once per stored version; at most
    ``most`` are kept (then all are forgotten), or any number, pruned by :meth:`keep_only`."""

    def __init__(self, most: int | None = 10_000) -> None:
        self._decoded: dict[str, tuple[str, TaskDefinition]] = {}
        self._most = most

    def of(self, row: TaskRow) -> TaskDefinition:
        """The row's definition.

        Raises:
            DefinitionError: It cannot be loaded.
        """
        cached = self._decoded.get(row.id)
        if cached is not None and cached[0] == row.definition:
            return cached[1]
        task = decode(row)
        if self._most is not None and len(self._decoded) >= self._most:
            self._decoded.clear()
        self._decoded[row.id] = (row.definition, task)
        return task

    def loadable(self, rows: Iterable[TaskRow]) -> dict[str, TaskDefinition]:
        """The definitions of those of ``rows`` that can be loaded, by task id (a run of
        one that cannot keeps the definition it has)."""
        found: dict[str, TaskDefinition] = {}
        for row in rows:
            try:
                found[row.id] = self.of(row)
            except DefinitionError:
                continue
        return found

    def keep_only(self, task_ids: Collection[str]) -> None:
        """Forget the tasks not in ``task_ids``."""
        for gone in self._decoded.keys() - set(task_ids):
            self._decoded.pop(gone, None)
