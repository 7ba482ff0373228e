"""Run events: how an application observes runs as they happen, without polling.

Every run of the active scheduler in this process emits a :class:`RunEvent`: ``started``
(its start is committed, the graph is about to be called), ``waiting`` (it stopped at
``interrupt()``), ``finished`` (any final status: succeeded, failed, timed out, cancelled,
interrupted; and the ``skipped`` and ``missed`` records of the dispatcher and of workflows).
Two ways in:

* ``scheduler.subscribe(listener)``: ``listener(event)``, sync or async, is called on the
  scheduler's event loop for every event; it returns a function that unsubscribes. An
  async listener runs as a task of its own; an error in a listener is logged, never
  raised into the run.
* ``async for event in scheduler.events(): ...``: an async iterator over the events from
  now on (a bounded buffer: a consumer that falls 10,000 events behind loses the oldest,
  and a warning says how many).

The webhooks and metrics of the HTTP server are listeners like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from scheduler.models import TaskDefinition
from scheduler.records import RunRecord

__all__ = ["EventBus", "Listener", "RunEvent"]

logger = logging.getLogger(__name__)

EventKind = Literal["started", "waiting", "finished"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something that happened to a run.

    Attributes:
        kind: ``started``, ``waiting`` or ``finished``.
        run: The run's record as it stands after the event.
        task: The task's definition.
    """

    kind: EventKind
    run: RunRecord
    task: TaskDefinition

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the kind, the run record, and the task id."""
        return {"kind": self.kind, "task_id": self.task.id, "run": self.run.to_dict()}


Listener = Callable[[RunEvent], Any]


class EventBus:
    """Delivers run events to listeners and iterators, on the scheduler's event loop."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()

        self.webhooks: Listener | None = None  # the deliverer, for tasks with a webhook

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def wants(self, task: TaskDefinition) -> bool:
        """Some listener wants the events of ``task``'s runs (so they are worth making)."""
        return bool(self._listeners) or (self.webhooks is not None and task.webhook is not None)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event from now on; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: RunEvent) -> None:
        """Hand ``event`` to every listener (call on the event loop)."""
        listeners = list(self._listeners)
        if self.webhooks is not None and event.task.webhook is not None:
            listeners.append(self.webhooks)
        for listener in listeners:
            try:
                value = listener(event)
            except Exception:
                logger.exception(
                    "run event listener %r failed on %s of run %s",
                    listener,
                    event.kind,
                    event.run.id,
                )
                continue
            if inspect.isawaitable(value):
                task = asyncio.ensure_future(value)
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("an async run event listener failed", exc_info=task.exception())

    async def stream(self, *, buffer: int = 10_000) -> AsyncIterator[RunEvent]:
        """The events from now on, as an async iterator (see the module docstring)."""
        queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        dropped = 0

        def put(event: RunEvent) -> None:
            nonlocal dropped
            if queue.qsize() >= buffer:
                queue.get_nowait()
                dropped += 1
                if dropped in (1, 100, 10_000) or dropped % 100_000 == 0:
                    logger.warning("an events() consumer fell behind: %d event(s) dropped", dropped)
            queue.put_nowait(event)

        unsubscribe = self.subscribe(put)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    async def drain(self) -> None:
        """Wait for the async listeners still running (at stop)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
