"""Run events: how an application observes runs as they happen, without polling.

Every run of the active scheduler in this process emits a :class:`RunEvent`: ``started``
(its start is committed, the graph is about to be called), ``waiting`` (it stopped at
``interrupt()``), ``finished`` (any final status: succeeded, failed, timed out, cancelled,
interrupted; and the ``skipped`` and ``missed`` records of the dispatcher and of workflows,
and the runs cancelled ``TaskUnavailable``, whose task may be unknown: ``event.task`` is
None when the task was removed or its stored record cannot be read).
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
import collections
import contextlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from scheduler.models import TaskDefinition
from scheduler.records import RunRecord

__all__ = ["EventBus", "EventStream", "Listener", "RunEvent"]

logger = logging.getLogger(__name__)

EventKind = Literal["started", "waiting", "finished"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something that happened to a run.

    Attributes:
        kind: ``started``, ``waiting`` or ``finished``.
        run: The run's record as it stands after the event.
        task: The task's definition; None for a run cancelled ``TaskUnavailable`` because
            its task was removed or its stored record cannot be read.
        resumed: A ``started`` event of a run resumed with its answer: its second start
            (``run.started_at`` is still its first).
    """

    kind: EventKind
    run: RunRecord
    task: TaskDefinition | None
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the kind, the run record, and the task id."""
        return {"kind": self.kind, "task_id": self.run.task_id, "run": self.run.to_dict()}


Listener = Callable[[RunEvent], Any]


class EventBus:
    """Delivers run events to listeners and iterators, on the scheduler's event loop."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()

        self.webhooks: Listener | None = None  # the deliverer, for tasks with a webhook

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def wants(self, task: TaskDefinition | None) -> bool:
        """Some listener wants the events of ``task``'s runs (so they are worth making)."""
        webhook = task is not None and task.webhook is not None
        return bool(self._listeners) or (self.webhooks is not None and webhook)

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
        if self.webhooks is not None and event.task is not None and event.task.webhook is not None:
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

    def stream(self, *, buffer: int = 10_000) -> EventStream:
        """The events from now on, as an async iterator (see the module docstring)."""
        return EventStream(self, buffer)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the async listeners still running (at stop),
        then cancel the rest: a listener that hangs does not hold the stop up."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        if late:
            logger.warning("%d async run event listener(s) cancelled at stop", len(late))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


class EventStream:
    """An async iterator over the events from now on (``scheduler.events()``): subscribed
    when made, not at the first ``anext``; an ``anext`` cancelled (a timeout) loses nothing
    and ends nothing; it may be read on another event loop (the scheduler's loop wakes it
    thread-safely). ``aclose()`` (or ``async with``) unsubscribes."""

    def __init__(self, bus: EventBus, buffer: int) -> None:
        self._items: collections.deque[RunEvent] = collections.deque()
        self._buffer = buffer
        self._dropped = 0
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        # held weakly: a stream dropped without aclose() is collected and unsubscribed, as
        # an async generator was
        put = weakref.WeakMethod(self._put)

        def listener(event: RunEvent) -> None:
            method = put()
            if method is None:
                unsubscribe()
            else:
                method(event)

        unsubscribe = self._unsubscribe = bus.subscribe(listener)
        weakref.finalize(self, unsubscribe)

    def _put(self, event: RunEvent) -> None:
        with self._lock:
            if len(self._items) >= self._buffer:
                self._items.popleft()
                self._dropped += 1
                if self._dropped in (1, 100, 10_000) or self._dropped % 100_000 == 0:
                    logger.warning(
                        "an events() consumer fell behind: %d event(s) dropped", self._dropped
                    )
            self._items.append(event)
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is None:
            return

        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        with contextlib.suppress(RuntimeError):  # (the consumer's loop has closed)
            waiter.get_loop().call_soon_threadsafe(resolve)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> RunEvent:
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise StopAsyncIteration
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def aclose(self) -> None:
        """Unsubscribe; an iteration going on ends after the events already buffered."""
        self._closed = True
        self._unsubscribe()
        self._wake()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
