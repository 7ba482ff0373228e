"""The async twins of the management methods (``aadd_task`` for ``add_task``, ...), as
LangGraph pairs ``invoke`` / ``ainvoke``: the same arguments, errors and results, with the
database work on a worker thread (:class:`~scheduler.offload.Offloader`), so an async
application (FastAPI, a LangGraph graph) never blocks its event loop, and scheduled runs fire
on time while it manages tasks.

Also :meth:`AsyncTaskAPI.wait_for_outcome`: the final outcome of a run after its retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from scheduler.changeset import API_SOURCE, SyncReport
from scheduler.enums import RunStatus, RunTrigger
from scheduler.models import TaskDefinition
from scheduler.offload import Offloader
from scheduler.records import Notice, RunRecord, TaskInfo
from scheduler.run_writes import RunWrites

__all__ = ["AsyncTaskAPI"]

_RETRIED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED)


class AsyncTaskAPI(RunWrites):
    """The async half of :class:`~scheduler.TaskScheduler` (every method has a sync twin
    of the same name without the ``a``)."""

    _offload: Offloader  # the thread the blocking halves run on (see scheduler.offload)

    if TYPE_CHECKING:  # provided by TaskScheduler

        def prune_history(self) -> int: ...

        def cancel_run(self, run_id: str) -> bool: ...

    # -- changing -------------------------------------------------------------------------

    async def aadd_task(
        self,
        task: TaskDefinition,
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
    ) -> TaskInfo:
        """:meth:`add_task <scheduler.TaskScheduler.add_task>`, off the event loop."""
        return await self._offload.run(
            lambda: self.add_task(task, replace_existing=replace_existing, source=source)
        )

    async def aedit_task(
        self, task_id: str, edit: Callable[[TaskDefinition], TaskDefinition]
    ) -> TaskInfo:
        """:meth:`edit_task <scheduler.TaskScheduler.edit_task>`, off the event loop
        (``edit`` is called on the worker thread, inside the transaction)."""
        return await self._offload.run(self.edit_task, task_id, edit)

    async def aadd_tasks(
        self,
        tasks: Iterable[TaskDefinition],
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
    ) -> None:
        """:meth:`add_tasks <scheduler.TaskScheduler.add_tasks>`, off the event loop."""
        batch = list(tasks)
        await self._offload.run(
            lambda: self.add_tasks(batch, replace_existing=replace_existing, source=source)
        )

    async def async_tasks(
        self,
        tasks: Iterable[TaskDefinition],
        *,
        source: str,
        removed: Literal["remove", "keep"] = "remove",
    ) -> SyncReport:
        """:meth:`sync_tasks <scheduler.TaskScheduler.sync_tasks>`, off the event loop."""
        batch = list(tasks)
        return await self._offload.run(
            lambda: self.sync_tasks(batch, source=source, removed=removed)
        )

    async def acheck_task(
        self,
        task: TaskDefinition,
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
        import_callbacks: bool = True,
    ) -> None:
        """:meth:`check_task <scheduler.TaskScheduler.check_task>`, off the event loop."""
        await self._offload.run(
            lambda: self.check_task(
                task,
                replace_existing=replace_existing,
                source=source,
                import_callbacks=import_callbacks,
            )
        )

    async def aremove_task(self, task_id: str, *, force: bool = False) -> None:
        """:meth:`remove_task <scheduler.TaskScheduler.remove_task>`, off the event loop."""
        await self._offload.run(lambda: self.remove_task(task_id, force=force))

    async def aremove_tasks(self, task_ids: Iterable[str], *, force: bool = False) -> None:
        """:meth:`remove_tasks <scheduler.TaskScheduler.remove_tasks>`, off the event loop."""
        ids = list(task_ids)
        await self._offload.run(lambda: self.remove_tasks(ids, force=force))

    async def apause_task(self, task_id: str) -> TaskInfo:
        """:meth:`pause_task <scheduler.TaskScheduler.pause_task>`, off the event loop."""
        return await self._offload.run(self.pause_task, task_id)

    async def aresume_task(self, task_id: str) -> TaskInfo:
        """:meth:`resume_task <scheduler.TaskScheduler.resume_task>`, off the event loop."""
        return await self._offload.run(self.resume_task, task_id)

    async def arun_task_now(self, task_id: str) -> str:
        """:meth:`run_task_now <scheduler.TaskScheduler.run_task_now>`, off the event loop."""
        return await self._offload.run(self.run_task_now, task_id)

    async def aresume_run(self, run_id: str, value: Any) -> None:
        """:meth:`resume_run <scheduler.TaskScheduler.resume_run>`, off the event loop."""
        await self._offload.run(self.resume_run, run_id, value)

    async def anote_problem(self, source: str, message: str | None) -> None:
        """:meth:`note_problem <scheduler.TaskScheduler.note_problem>`, off the event loop."""
        await self._offload.run(self.note_problem, source, message)

    async def acancel_run(self, run_id: str) -> bool:
        """:meth:`cancel_run <scheduler.TaskScheduler.cancel_run>`, off the event loop."""
        return await self._offload.run(self.cancel_run, run_id)

    async def aprune_history(self) -> int:
        """:meth:`prune_history <scheduler.TaskScheduler.prune_history>`, off the loop."""
        return await self._offload.run(self.prune_history)

    # -- reading --------------------------------------------------------------------------

    async def aget_task(self, task_id: str) -> TaskInfo:
        """:meth:`get_task <scheduler.TaskScheduler.get_task>`, off the event loop."""
        return await self._offload.run(self.get_task, task_id)

    async def alist_tasks(self, *, source: str | None = None) -> list[TaskInfo]:
        """:meth:`list_tasks <scheduler.TaskScheduler.list_tasks>`, off the event loop."""
        return await self._offload.run(lambda: self.list_tasks(source=source))

    async def adependencies(self) -> list[tuple[str, str]]:
        """:meth:`dependencies <scheduler.TaskScheduler.dependencies>`, off the event loop."""
        return await self._offload.run(self.dependencies)

    async def anext_run_times(self, task_id: str, count: int = 5) -> list[datetime]:
        """:meth:`next_run_times <scheduler.TaskScheduler.next_run_times>`, off the loop."""
        return await self._offload.run(self.next_run_times, task_id, count)

    async def alist_runs(
        self,
        task_id: str | None = None,
        *,
        status: RunStatus | str | Collection[RunStatus | str] | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """:meth:`list_runs <scheduler.TaskScheduler.list_runs>`, off the event loop."""
        return await self._offload.run(
            lambda: self.list_runs(task_id, status=status, limit=limit, offset=offset)
        )

    async def aget_run(self, run_id: str) -> RunRecord:
        """:meth:`get_run <scheduler.TaskScheduler.get_run>`, off the event loop."""
        return await self._offload.run(self.get_run, run_id)

    async def acount_tasks(self) -> int:
        """:meth:`count_tasks <scheduler.TaskScheduler.count_tasks>`, off the event loop."""
        return await self._offload.run(self.count_tasks)

    async def acount_runs(self) -> dict[RunStatus, int]:
        """:meth:`count_runs <scheduler.TaskScheduler.count_runs>`, off the event loop."""
        return await self._offload.run(self.count_runs)

    async def anotices(self) -> list[Notice]:
        """:meth:`notices <scheduler.TaskScheduler.notices>`, off the event loop."""
        return await self._offload.run(self.notices)

    # -- outcomes -------------------------------------------------------------------------

    async def wait_for_outcome(self, run_id: str, *, timeout: float | None = None) -> RunRecord:
        """Wait for the final outcome of a run after its retries: the record of its last
        attempt (or of the run itself, when it needed none), or a ``waiting`` one; a retry
        that never ran (``missed`` after downtime, ``skipped`` as paused or withdrawn by an
        edit) leaves the attempt it retried final, as its failure callback is told.
        ``wait_for_run(run_task_now(id))`` returns the first attempt; this follows the
        retries that attempt earns (each a run of its own, ``trigger="retry"``).

        Raises:
            RunNotFoundError: No such run.
            TimeoutError: No final outcome within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            record = await self.wait_for_run(run_id)
            while record.status in _RETRIED:
                retry = await self._offload.run(self._retry_of, record)
                if retry is None:
                    return record
                ended = await self.wait_for_run(retry.id)
                if ended.status in (RunStatus.MISSED, RunStatus.SKIPPED):
                    return record  # (the retry did not run: that attempt is the outcome)
                record = ended
            return record

    def _retry_of(self, record: RunRecord) -> RunRecord | None:
        """The retry that ``record`` earned, if any: the one linked to it (``retry_of``).
        A retry recorded before the link existed is matched instead: written with the
        attempt's final status, queued at the moment it finished, with its upstream
        outcomes (two runs of a task may share a scheduled time; two that also failed at
        one instant, on a test clock, could not be told apart)."""
        found: list[RunRecord] = []
        offset = 0
        while True:  # newest first, back to this attempt (ids sort by creation time)
            page = self.list_runs(record.task_id, limit=200, offset=offset)
            for run in page:
                if run.retry_of == record.id:  # linked (retries recorded since schema 9)
                    return run
            found += [
                run
                for run in page
                if run.id > record.id
                and run.retry_of is None
                and run.trigger is RunTrigger.RETRY
                and run.attempt == record.attempt + 1
                and run.scheduled_for == record.scheduled_for
                and run.upstream == record.upstream
            ]
            if len(page) < 200 or page[-1].id <= record.id:
                break
            offset += 200
        exact = [run for run in found if run.queued_at == record.finished_at]
        chosen = exact or found  # (newest first: the oldest of them)
        return chosen[-1] if chosen else None
