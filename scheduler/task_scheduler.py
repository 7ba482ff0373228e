"""``TaskScheduler``: the public API for adding, changing, running and inspecting tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from scheduler import gcfreeze
from scheduler.async_api import AsyncTaskAPI
from scheduler.clock import DatabaseClock
from scheduler.events import EventBus, EventStream, Listener
from scheduler.exceptions import (
    NO_EVENT_LOOP,
    LeadershipLostError,
    SchedulerError,
    SchedulerNotRunningError,
    StorageError,
)
from scheduler.fresh_threads import forget_threads
from scheduler.langgraph_json import read_langgraph_json
from scheduler.leader import scheduler_is_active
from scheduler.loader import default_graph_target, load_graph
from scheduler.offload import Offloader, call_soon_threadsafe
from scheduler.settings import Settings, sqlite_url
from scheduler.stall import StallWatch
from scheduler.storage import Store
from scheduler.storage.threads import threads_in_use
from scheduler.supervisor import Supervisor

if TYPE_CHECKING:
    from scheduler.models import TaskDefinition
    from scheduler.persistence import Persistence
    from scheduler.webhooks import Deliverer

__all__ = ["TaskScheduler", "running_scheduler"]

logger = logging.getLogger(__name__)

_started: list[weakref.ref[TaskScheduler]] = []


def running_scheduler() -> TaskScheduler | None:
    """The scheduler started most recently in this process that is still running, if any
    (the one a graph's tools and callbacks reach when they are given none)."""
    for ref in reversed(_started):
        scheduler = ref()
        if scheduler is not None and (scheduler.running or scheduler._stopping is not None):
            return scheduler  # (stopping: its runs go on through the grace, their tools too)
    return None


class TaskScheduler(AsyncTaskAPI):
    """Runs a LangGraph graph on cron, interval and one-time schedules.

    Definitions, paused state, next run times and run history live in one database
    (a SQLite file by default), so they survive restarts. Every method that changes or
    reads tasks is safe to call from any thread, also while tasks fire.

    Args:
        persistent: Keep everything in a database file; False keeps it in memory.
        db_path: The SQLite file (when ``persistent`` and no ``database_url``).
        database_url: Any SQLAlchemy URL; wins over ``db_path``.
        graph: The graph to invoke (anything with ``ainvoke``), or a target as
            ``settings.graph`` takes it (``"graph.py:graph"``, ``"http://host:2024#agent"``);
            default: the target in ``settings.graph``. A target is loaded at start.
        settings: Settings (default: read from the environment and ``.env``).
        clock: The time source (UNIX seconds), default the wall clock (on PostgreSQL the
            database server's, measured as an offset from this machine's clock); a
            :class:`scheduler.testing.TestClock` lets a test move time by hand.

    Example:
        >>> async with TaskScheduler(graph=graph) as scheduler:  # doctest: +SKIP
        ...     scheduler.add_task(TaskDefinition(id="hi", interval_seconds=60, prompt="Hi"))
    """

    def __init__(
        self,
        persistent: bool = True,
        db_path: str | PathLike[str] = "scheduler.db",
        *,
        database_url: str | None = None,
        graph: Any = None,
        settings: Settings | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self._policy = self.settings.callback_policy()
        url = database_url or (sqlite_url(db_path) if persistent else "sqlite://")
        timeout = self.settings.sqlite_busy_timeout_seconds
        self._store = Store(url, busy_timeout=timeout, synchronous=self.settings.sqlite_synchronous)
        self._given_graph = graph
        self._graph_object: Any = None
        self._persistence: Persistence | None = None
        self._graph_lock = threading.Lock()
        self._supervisor: Supervisor | None = None
        self._stopping: Supervisor | None = None  # the one stop() is stopping
        self._events = EventBus()
        self._webhooks: Deliverer | None = None
        self._gc_frozen = False
        self._stall = StallWatch(self.settings.loop_stall_seconds)
        self._background_prune = True  # off on a test clock (scheduler.testing)
        if clock is None:  # PostgreSQL: the database's time, as every process there keeps
            postgres = self._store.engine.dialect.name == "postgresql"
            clock = DatabaseClock(self._store.database_time) if postgres else time.time
        self._clock: Callable[[], float] = clock
        self._offload = Offloader()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, graph: Any = None) -> TaskScheduler:
        """A scheduler whose database comes from ``settings`` (``SCHEDULER_DATABASE_URL``
        or ``SCHEDULER_DB_PATH``), as ``main.py`` and the CLI use it."""
        settings = settings if settings is not None else Settings()
        url = settings.database_url
        return cls(db_path=settings.db_path, database_url=url, graph=graph, settings=settings)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start scheduling (call inside a running event loop).

        Loads the graph, settles runs left by a crashed process, and starts firing. If
        another process is already active on the same database, this one stands by and
        takes over when that one stops (see :mod:`scheduler.leader`).
        """
        if self._supervisor is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise SchedulerNotRunningError("start()", message=NO_EVENT_LOOP) from None
        if self.settings.role != "all":
            from scheduler.workers import require_postgres

            require_postgres(self._store, self.settings.role)
            if self.settings.role == "worker":
                raise SchedulerError(
                    "SCHEDULER_ROLE=worker runs queued runs and schedules nothing: start it "
                    "with 'python -m scheduler worker' (or main.py), not TaskScheduler.start()"
                )
        self._store.setup()
        self.graph()  # fail now, not at the first firing
        supervisor = Supervisor(
            events=self._events,
            store=self._store,
            settings=self.settings,
            graph=self.graph,
            prune=self._prune_history,
            clock=self._clock,
        )
        supervisor.background_prune = self._background_prune
        from scheduler.webhooks import Deliverer  # (here: httpcore only where runs are made)

        self._webhooks = Deliverer(self._store, self.settings, self._clock)
        self._events.webhooks = self._webhooks
        supervisor.start()
        self._supervisor = supervisor
        _started[:] = [ref for ref in _started if ref() not in (None, self)]
        _started.append(weakref.ref(self))
        if self.settings.gc_freeze:
            gcfreeze.hold()
            self._gc_frozen = True
        self._stall.start()

    async def stop(self, *, grace_seconds: float | None = None) -> None:
        """Stop firing; let running runs finish for ``grace_seconds`` (default
        ``settings.stop_grace_seconds``), then cancel the rest, recorded ``cancelled``.
        Runs that had not started stay queued and run at the next start."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        self._stopping = supervisor  # cancel_running_runs() still reaches its runs
        try:
            await supervisor.stop(grace)
        finally:
            self._stopping = None
            if self._gc_frozen:
                self._gc_frozen = False
                gcfreeze.release()
            self._stall.stop()
            await self._close_graph_connections()
            await self._events.drain(grace)
            self._events.webhooks = None
            if self._webhooks is not None:
                await self._webhooks.close()
        logger.info("scheduler stopped")

    async def _close_graph_connections(self) -> None:
        """A graph on a LangGraph server holds HTTP connections of this event loop."""
        close = getattr(self._graph_object, "aclose", None)
        if close is not None and callable(close):
            try:
                await close()
            except Exception:  # closing must not hide the reason for the stop
                logger.exception("could not close the graph's connections")

    def close(self) -> None:
        """Close the database connections (after :meth:`stop`; reopened on next use)."""
        if self._supervisor is not None:
            raise RuntimeError("close() after stop(): the scheduler is still running")
        if self._persistence is not None:
            self._persistence.close()
            self._persistence = None
            self._graph_object = None
        self._offload.close()
        self._store.close()

    async def __aenter__(self) -> TaskScheduler:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Started and not stopped (active or standing by)."""
        return self._supervisor is not None

    @property
    def active(self) -> bool:
        """This process is the one firing tasks on its database."""
        return self._supervisor is not None and self._supervisor.active

    @property
    def store(self) -> Store:
        """The database layer, to read from (the HTTP server's threads, deliveries and cron
        listing). Change tasks and runs through this object's methods: they check, and
        keep the running scheduler informed."""
        return self._store

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` (sync or async) on the scheduler's event loop for every
        :class:`~scheduler.events.RunEvent` of the runs of this process (``started``,
        ``waiting``, ``finished``); returns the function that unsubscribes. See
        :mod:`scheduler.events`."""
        return self._events.subscribe(listener)

    def events(self) -> EventStream:
        """The run events of this process from now on (subscribed at this call), as an async
        iterator: ``async for event in scheduler.events(): ...``; ``aclose()`` ends it."""
        return self._events.stream()

    def is_active_elsewhere(self) -> bool:
        """Another process is the active scheduler of this database right now (this one,
        if started, is standing by, or was never started)."""
        if self.active:
            return False
        return scheduler_is_active(self._store)

    def graph(self) -> Any:
        """The graph runs invoke, prepared as the LangGraph server prepares it: loaded from
        ``settings.graph`` on first use (after the ``env`` of ``langgraph.json`` is set),
        with a checkpointer and a store on this scheduler's database when it has none
        (see :mod:`scheduler.persistence`)."""
        if self._graph_object is None:
            with self._graph_lock:
                if self._graph_object is None:
                    config = read_langgraph_json(Path.cwd())
                    config.apply_env()
                    loaded = self._given_graph
                    if loaded is None or isinstance(loaded, str):  # (a str is a target)
                        target = loaded or self.settings.graph or default_graph_target(Path.cwd())
                        loaded = load_graph(target)
                    from scheduler.persistence import prepare_graph  # lazily: CLI start-up

                    self._persistence = prepare_graph(
                        loaded,
                        database_url=self._store.url,
                        config=config,
                        checkpointer=self.settings.inject_checkpointer,
                        store=self.settings.inject_store,
                        sqlite_synchronous=self.settings.sqlite_synchronous,
                    )
                    self._graph_object = self._persistence.graph
        return self._graph_object

    def cancel_running_runs(self) -> None:
        """Cancel every run in flight in this process now (recorded ``cancelled``), also
        during :meth:`stop`'s grace (a second Ctrl+C)."""
        supervisor = self._supervisor or self._stopping
        if supervisor is not None:
            call_soon_threadsafe(supervisor.loop, supervisor.runner.cancel_running)

    def cancel_run(self, run_id: str) -> bool:
        """Cancel a running run, or one waiting for an answer (recorded ``cancelled``): at
        once if this process holds it (also through stop's grace); one held by another
        process (a worker, the active scheduler while this one stands by, the CLI's) is asked
        through the database, and cancels it within about ``poll_interval_seconds``. A
        waiting run no process holds is cancelled by the next one that starts; an answer
        after the request is refused. False when it is neither running nor waiting."""
        supervisor = self._supervisor or self._stopping  # (runs go on through stop's grace)
        runner = supervisor.runner if supervisor is not None else None
        if runner is not None and (runner.is_running(run_id) or runner.is_waiting(run_id)):
            self._on_loop(runner.cancel_run, run_id, through=supervisor)
            return True
        running = self._supervisor  # (a stopping one has let go of its waiting runs)
        if running is not None and running.active and self.settings.role == "all":
            return False  # the only process that runs anything, and it does not run it
        self._flush()
        return self._store.request_cancel(run_id, self._clock())

    def prune_history(self) -> int:
        """Delete final run records beyond ``history_max_runs`` per task or older than
        ``history_max_age_days`` (the running scheduler does this every 10 minutes), and
        the checkpoints of the fresh threads those runs had (:mod:`scheduler.fresh_threads`).
        Returns how many records were deleted."""
        return self._prune_history(lambda: False)

    def _prune_history(self, stopping: Callable[[], bool]) -> int:
        """:meth:`prune_history`, cut short once ``stopping()`` (the background prune, when
        the scheduler stops): between two threads' checkpoints, never between a thread's
        checkpoints and its records (those of the threads left stay for the next prune)."""
        days = self.settings.history_max_age_days
        older_than = self._clock() - days * 86400 if days else None
        self._flush()
        with self._store.transaction() as tx:
            deleted, own = tx.prune_runs(
                keep_per_task=self.settings.history_max_runs, older_than=older_than
            )
            adopted = threads_in_use(tx, own)  # a task or another run goes on there: kept
            deleted += tx.delete_final_runs(run for run, thread in own if thread in adopted)
        own = [(run, thread) for run, thread in own if thread not in adopted]
        if not own or stopping():
            return deleted
        try:
            graph = self.graph()
        except Exception as exc:  # nothing will delete them: the records go all the same
            logger.warning("checkpoints of %d pruned run(s) kept: %s", len(own), exc)
            gone = {thread for _, thread in own}
        else:
            gone = forget_threads(graph, (thread for _, thread in own), stopping=stopping)
        with self._store.transaction() as tx:
            return deleted + tx.delete_final_runs(run for run, thread in own if thread in gone)

    async def wait_idle(self) -> None:
        """Wait until no run is queued or running in this process, nor about to be: the
        runs that follow one that ended are queued by the flush that writes its outcome."""
        supervisor = self._supervisor
        if supervisor is None:
            raise SchedulerNotRunningError("wait_idle()")
        await supervisor.runner.wait_idle()
        while supervisor.run_log.unfollowed or supervisor.followers.delivering:
            try:  # (the runs it hands over are taken by the runner before it returns)
                await supervisor.run_log.aflush()
            except StorageError:  # not written yet: the background flush tries again too
                await asyncio.sleep(0.05)
            await supervisor.runner.wait_idle()

    # -- helpers --------------------------------------------------------------------------

    def _notify_changed(
        self,
        *,
        removed: Iterable[str] = (),
        links: bool = True,
        due: float | None = None,
        revision: int | None = None,
        replaced: Mapping[str, TaskDefinition] | None = None,
        paused: Iterable[str] = (),
    ) -> None:
        """Tell the running scheduler that tasks changed (which were removed; whether
        ``after`` links changed; ``due``: only new tasks came, the earliest due then;
        ``revision``: the one that change wrote, when nothing needs reloading for it;
        ``replaced``: the tasks edited, which their runs not yet started take; ``paused``:
        the tasks paused, whose runs not yet started are skipped)."""
        supervisor = self._supervisor
        if supervisor is None or not supervisor.active:
            return
        for task_id in removed:
            self._on_loop(supervisor.runner.forget_task, task_id, "the task was removed")
        if replaced:
            self._on_loop(supervisor.runner.retask, replaced)
        for task_id in paused:
            self._on_loop(supervisor.runner.pause_task, task_id)
        if links:
            supervisor.followers.refresh()
        if revision is not None:
            self._on_loop(supervisor.note_revision, revision)
        if due is None:
            supervisor.dispatcher.wakeup()
        else:
            supervisor.dispatcher.wakeup_by(due)

    def _flush(self) -> None:
        supervisor = self._supervisor
        if supervisor is not None:
            # another process active: the database is as it recovered it, read it so
            with contextlib.suppress(LeadershipLostError):
                supervisor.run_log.flush()

    def _on_loop(
        self, function: Callable[..., Any], *args: Any, through: Supervisor | None = None
    ) -> None:
        """Call ``function`` on the loop of ``through``, else the scheduler's (now if on it)."""
        supervisor = through or self._supervisor
        if supervisor is None:
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is supervisor.loop:
            function(*args)
        else:
            call_soon_threadsafe(supervisor.loop, function, *args)
