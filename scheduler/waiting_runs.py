"""The waiting runs one runner holds (a graph stopped at ``interrupt()``), with their
waiting timeouts; :mod:`scheduler.waiting` ends, answers and resumes them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from scheduler.clock import Timer, call_at
from scheduler.enums import RunStatus
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun
from scheduler.settings import Settings
from scheduler.storage import RunRow, Transaction

__all__ = ["WaitingRuns", "ended_elsewhere"]

_OPEN = frozenset(status for status in RunStatus if not status.is_final)


class WaitingRuns:
    """The waiting runs of one runner, with their waiting timeouts.

    Args:
        settings: For the default ``waiting_timeout_seconds``.
        clock: UNIX time source.
        on_answer: Called with a run (``resume`` and ``thread_id`` set) once it is answered.
        on_expiry: Called with a run whose waiting timeout passed.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Callable[[], float],
        on_answer: Callable[[PendingRun], None],
        on_expiry: Callable[[PendingRun, float], None],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_answer = on_answer
        self._on_expiry = on_expiry
        self._runs: dict[str, tuple[PendingRun, Timer | None, float]] = {}  # and since when

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def hold(
        self, pending: PendingRun, *, thread_id: str, since: float, asked: str | None = None
    ) -> None:
        """Keep ``pending`` (which asked ``asked``) until it is answered or its waiting
        timeout passes."""
        pending.thread_id = thread_id
        if asked is not None:
            pending.asked = asked
        self._runs[pending.run_id] = (pending, self._timer(pending, since), since)

    def _timer(self, pending: PendingRun, since: float) -> Timer | None:
        timeout = pending.task.waiting_timeout_seconds or self._settings.waiting_timeout_seconds
        if timeout is None:
            return None
        return call_at(self._clock, since + timeout, self._expire, pending.run_id, timeout)

    def retask(self, tasks: Mapping[str, TaskDefinition]) -> None:
        """The runs held here take these (edited) definitions, as a restart reads them: an
        edited waiting timeout counts from when each began waiting (past: it ends now)."""
        for run_id, (pending, handle, since) in list(self._runs.items()):
            task = tasks.get(pending.task.id)
            if task is None or task == pending.task:
                continue
            if handle is not None:
                handle.cancel()
            pending.task = task
            self._runs[run_id] = (pending, self._timer(pending, since), since)

    def task_ids(self) -> set[str]:
        """The tasks of the runs held here."""
        return {pending.task.id for pending, _, _ in self._runs.values()}

    def answer(self, run_id: str, value: Any) -> bool:
        """Resume ``run_id`` with ``value``; False if it is not waiting here."""
        pending = self.take(run_id)
        if pending is None:
            return False
        pending.resume = value
        self._on_answer(pending)
        return True

    def take(self, run_id: str) -> PendingRun | None:
        """Stop holding ``run_id`` (it ends now); None if it is not waiting here."""
        entry = self._runs.pop(run_id, None)
        if entry is None:
            return None
        pending, handle, _ = entry
        if handle is not None:
            handle.cancel()
        return pending

    def of_task(self, task_id: str) -> list[PendingRun]:
        """Stop holding the waiting runs of ``task_id`` (it was removed) and return them."""
        dropped = []
        for run_id, (pending, handle, _) in list(self._runs.items()):
            if pending.task.id == task_id:
                if handle is not None:
                    handle.cancel()
                del self._runs[run_id]
                dropped.append(pending)
        return dropped

    def ids(self) -> set[str]:
        """The runs held here."""
        return set(self._runs)

    def close(self) -> None:
        """Forget every waiting run (the scheduler stops; they stay ``waiting`` in the
        database and are picked up again at the next start)."""
        for _, handle, _ in self._runs.values():
            if handle is not None:
                handle.cancel()
        self._runs.clear()

    def _expire(self, run_id: str, timeout: float) -> None:
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            self._on_expiry(entry[0], timeout)


def ended_elsewhere(tx: Transaction, run_ids: Collection[str]) -> list[RunRow]:
    """The rows of the runs ``run_ids`` (waiting here) that have ended in the database."""
    statuses = tx.run_statuses(run_ids) if run_ids else {}
    ended = [i for i, s in statuses.items() if s not in _OPEN]
    return [row for i in ended if (row := tx.get_run(i)) is not None]
