"""Write-behind buffer for run records.

A run changes state two or three times (queued, running, final). Writing each change in its
own transaction costs more than a trivial graph run, so changes are merged per run and
written in one transaction every ``interval`` seconds, from a worker thread so the event loop
keeps going. Readers call :meth:`RunLog.flush` first, so what they read is current.

What is *not* buffered: a run's first record for a due occurrence. The dispatcher inserts it
in the same transaction that moves the task's next run time, so an occurrence can never be
consumed without a record. And a run's start: :meth:`RunLog.commit` returns only once the
``running`` mark is committed, so the graph is never called for a run that a crash could
leave looking ``queued`` (and a restart would run again). Starts that come together share
one commit.

A run's final outcome (after its retries) is marked with :meth:`RunLog.finish`: the flush
that writes it also hands it, in the same transaction, to ``follow`` (the workflows'
:mod:`scheduler.dependencies.follow`), which queues the runs of the tasks that run after
it; those are passed to ``deliver`` once committed. So an upstream's final status and its
downstream's queued run are written together, or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scheduler.enums import RunStatus
from scheduler.exceptions import LeadershipLostError, StorageError
from scheduler.pending import PendingRun
from scheduler.pools import OWN
from scheduler.records import RunRecord
from scheduler.rows import run_record
from scheduler.storage import RunRow, Store, Transaction

__all__ = ["Ended", "Follow", "RunLog"]

logger = logging.getLogger(__name__)

_ATTEMPTS = 100  # earlier attempts read for a retry, at most


@dataclass(frozen=True, slots=True)
class Ended:
    """A run's final outcome, after its retries."""

    task_id: str
    run_id: str
    status: RunStatus
    finished_at: float


Follow = Callable[[Transaction, Sequence[Ended]], list[PendingRun]]


class RunLog:
    """Buffers run inserts and updates and writes them in batches.

    Args:
        store: Where to write.
        interval: Seconds between background flushes.
        owner: A worker's id, written as the ``worker`` of the runs inserted here.
    """

    def __init__(self, store: Store, *, interval: float = 0.05, owner: str | None = None) -> None:
        self._store = store
        self._owner = owner  # a worker: the runs it inserts (retries) are its own
        self._interval = interval
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._inserts: dict[str, RunRow] = {}
        self._updates: dict[str, dict[str, Any]] = {}
        self._waiters: list[asyncio.Future[None]] = []  # resolved once their flush commits
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failing = False
        self._ended: list[Ended] = []
        self.follow: Follow | None = None
        self.deliver: Callable[[list[PendingRun]], None] | None = None
        self.upstreams: frozenset[str] = frozenset()  # tasks others run after
        # gives the check of each flush's transaction, bound when the flush takes what is
        # buffered (the active scheduler's epoch then, PostgreSQL)
        self.fence: Callable[[], Callable[[Transaction], None]] | None = None
        self._refused: list[asyncio.Future[None]] = []  # commits the fence refused
        self._abandons = 0  # how many times runs were let go of (see flush)
        self._following = 0  # final outcomes a flush going on has taken (see unfollowed)

    def abandon(self, run_ids: set[str]) -> None:
        """Drop what is buffered about ``run_ids``: another process has taken them over
        (:meth:`Runner.abandon`, which records nothing more about them either; a later
        start may take the same runs again, and they are recorded as usual then)."""
        with self._lock:
            for run_id in run_ids:
                self._inserts.pop(run_id, None)
                self._updates.pop(run_id, None)
            self._ended = [e for e in self._ended if e.run_id not in run_ids]
            self._abandons += 1
            refused, self._refused = self._refused, []
        for waiter in refused:  # their runs were let go of: they never start
            _cancel_soon(waiter)

    def insert(self, row: RunRow) -> None:
        """Buffer a new run record."""
        self._own(row)
        with self._lock:
            self._inserts[row.id] = row

    def _own(self, row: RunRow) -> None:
        if self._owner is not None and row.worker is None:
            row.worker = self._owner

    def update(self, run_id: str, *, then: RunRow | None = None, **changes: Any) -> None:
        """Buffer changes to a run record (merged with earlier ones for the same run), and
        the new record ``then`` (the retry that follows) with them: a flush commits both or
        neither."""
        if then is not None:
            self._own(then)
        with self._lock:
            self._merge(run_id, changes)
            if then is not None:
                self._inserts[then.id] = then

    def finish(self, run_id: str, task_id: str, **changes: Any) -> None:
        """Buffer a run's final outcome (``status`` and ``finished_at`` among ``changes``),
        after which no retry follows: the tasks that run after ``task_id`` learn of it in
        the same transaction. Flushed at once when some do."""
        ended = Ended(task_id, run_id, RunStatus(changes["status"]), changes["finished_at"])
        with self._lock:
            self._merge(run_id, changes)
            self._ended.append(ended)
        if task_id in self.upstreams:
            self._wake.set()

    def end(self, task_id: str, change: dict[str, Any]) -> None:
        """:meth:`finish` a run of ``task_id`` with a change given as a dict with the run's
        ``id`` and its final ``status`` (as :func:`scheduler.rows.settled` makes it)."""
        values = dict(change)
        self.finish(values.pop("id"), task_id, **values)

    def change(self, change: dict[str, Any]) -> None:
        """Buffer one change given as a dict with the run's ``id`` and the columns to set
        (as :func:`scheduler.rows.settled` makes them)."""
        values = dict(change)
        self.update(values.pop("id"), **values)

    def _merge(self, run_id: str, changes: dict[str, Any]) -> None:
        row = self._inserts.get(run_id)
        if row is not None:
            for key, value in changes.items():
                setattr(row, key, value)
        else:
            self._updates.setdefault(run_id, {}).update(changes)

    async def commit(self, run_id: str, **changes: Any) -> None:
        """Record changes to a run and return once they are committed, with everything
        buffered so far (one commit serves every caller waiting at that moment). If the
        database fails, waits until a later flush succeeds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._merge(run_id, changes)
            self._waiters.append(future)
        if self._task is None:
            await self.aflush()
        else:
            self._wake.set()
        await future

    async def attempts_before(self, run_id: str) -> list[RunRecord]:
        """The attempts the retry ``run_id`` follows, newest first (the run it retries,
        that one's, ...), as stored: for a retry on a LangGraph server to find their runs
        there (:mod:`scheduler.remote_attempts`)."""

        def read() -> list[RunRecord]:
            found: list[RunRecord] = []
            row = self._store.get_run(run_id)
            while row is not None and row.retry_of is not None and len(found) < _ATTEMPTS:
                row = self._store.get_run(row.retry_of)
                found += [run_record(row)] if row is not None else []
            return found

        return await OWN.run(read)

    async def cut_off(self, run_id: str) -> list[RunRecord]:
        """The run ``run_id``, left running by a process that died, as the attempt whose
        server run a run watched again adopts (:mod:`scheduler.recovery`)."""
        row = await OWN.run(self._store.get_run, run_id)
        return [replace(run_record(row), status=RunStatus.INTERRUPTED)] if row else []

    async def stored(self, run_id: str) -> RunRecord | None:
        """The record of ``run_id`` as stored, what is buffered written first (a run that
        ended while waiting: when it started, what it asked); None if it cannot be read."""
        try:
            await self.aflush()
            row = await OWN.run(self._store.get_run, run_id)
        except StorageError:  # (the database is down, or another process is active now)
            return None
        return run_record(row) if row is not None else None

    def settle_unanswered(self, task_id: str, change: dict[str, Any]) -> RunRow | None:
        """End a waiting run of ``task_id`` now (``change``: its ``id`` and the columns to
        set, a final status among them), in a transaction of its own that also queues what
        follows it (as a flush does with a :meth:`finish`), unless it holds an answer by
        then (one given elsewhere, not yet seen here) or has ended already (its task removed
        elsewhere): then nothing is written and its stored row is returned. An answer and a
        removal are recorded in a transaction too, so exactly one of them wins. Call it off
        the event loop.

        Raises:
            StorageError: The write failed (LeadershipLostError: the fence refused it).
        """
        self.flush()  # its earlier changes first (it was recorded waiting)
        check = self.fence() if self.fence is not None else None
        ended = Ended(task_id, change["id"], RunStatus(change["status"]), change["finished_at"])
        followers: list[PendingRun] = []
        with self._store.transaction(check) as tx:
            row = tx.get_run(change["id"])
            if row is not None and (row.status != "waiting" or row.answer is not None):
                return row
            tx.update_runs([change])
            if self.follow is not None:
                followers = self._followers(tx, [ended])
        if self.follow is not None and self.deliver is not None:
            self.deliver(followers)
        return None

    def give_up(self, task_id: str, change: dict[str, Any], attempt: str) -> RunRow | None:
        """Write ``change`` (a retry that will not run: ``skipped``) and follow the attempt
        it retried as the task's final outcome, in one transaction (a fallback on
        ``failed`` learns that its upstream failed), as a retry missed after downtime
        leaves it. Returns the attempt's row when it ended final, for its failure
        callback. Call it off the event loop.

        Raises:
            StorageError: The write failed (LeadershipLostError: the fence refused it).
        """
        self.flush()  # the retry's record first (queued with the attempt's end)
        check = self.fence() if self.fence is not None else None
        followers: list[PendingRun] = []
        with self._store.transaction(check) as tx:
            tx.update_runs([change])
            row = tx.get_run(attempt)
            known = row is not None and row.status in RunStatus._value2member_map_
            if row is None or not known or not RunStatus(row.status).is_final:
                return None
            ended = Ended(task_id, attempt, RunStatus(row.status), change["finished_at"])
            if self.follow is not None:
                followers = self._followers(tx, [ended])
        if self.follow is not None and self.deliver is not None:
            self.deliver(followers)
        return row

    @property
    def pending(self) -> int:
        """Number of runs with changes not yet written."""
        with self._lock:
            return len(self._inserts) + len(self._updates)

    @property
    def unfollowed(self) -> int:
        """Final outcomes whose followers are not handed to ``deliver`` yet: buffered, or
        taken by a flush going on (another thread's, the background one's). 0 once every
        outcome marked so far was followed and its runs handed over (or was let go of)."""
        with self._lock:
            return len(self._ended) + self._following

    def flush(self) -> None:
        """Write everything buffered, in one transaction. Thread-safe.

        Raises:
            LeadershipLostError: The fence refused the write (another process is active
                now): what was buffered is dropped.
            StorageError: The write failed; the changes stay buffered for the next flush.
        """
        with self._flush_lock:
            with self._lock:
                inserts, self._inserts = self._inserts, {}
                updates, self._updates = self._updates, {}
                waiters, self._waiters = self._waiters, []
                ended, self._ended = self._ended, []
                check = self.fence() if self.fence is not None else None
                abandons = self._abandons
                self._following += len(ended)  # (until the finally below)
            try:
                followers: list[PendingRun] = []
                followed = False  # follow ran, in the transaction that committed
                if inserts or updates:
                    try:
                        with self._store.transaction(check) as tx:
                            tx.insert_runs(list(inserts.values()))
                            tx.update_runs([{"id": run_id, **c} for run_id, c in updates.items()])
                            if ended and self.follow is not None:
                                followers = self._followers(tx, ended)
                                followed = True
                    except LeadershipLostError:
                        # another process took over, and recovered the database as it was: what
                        # was not written here is its to decide. A start waiting for this commit
                        # is never told it was made (the graph is not called): its run is let go
                        # of when the supervisor notices (abandon)
                        with self._lock:
                            if abandons == self._abandons:
                                self._refused.extend(waiters)
                                waiters = []
                        for waiter in waiters:  # their runs were let go of meanwhile
                            _cancel_soon(waiter)
                        raise
                    except StorageError:
                        with self._lock:
                            self._ended[:0] = ended
                            inserts.update(self._inserts)
                            self._inserts = inserts
                            for run_id, later in self._updates.items():
                                updates.setdefault(run_id, {}).update(later)
                            self._updates = updates
                            self._waiters[:0] = waiters
                        raise
                for waiter in waiters:
                    _resolve_soon(waiter)
                if followed and self.deliver is not None:
                    self.deliver(followers)
            finally:  # followed and handed over, or back in _ended, or dropped
                with self._lock:
                    self._following -= len(ended)

    def _followers(self, tx: Transaction, ended: Sequence[Ended]) -> list[PendingRun]:
        """The runs ``follow`` queues. A database error fails the whole flush (a deadlock,
        a timeout: on PostgreSQL the transaction is aborted, and its commit would undo the
        records silently); they stay buffered and are written with their followers by the
        next flush. A bug in ``follow`` is logged and undone to a savepoint: the records
        are written without followers, never lost."""
        assert self.follow is not None
        try:
            with tx.savepoint():
                return self.follow(tx, ended)
        except (StorageError, *self._store.database_errors):
            raise
        except Exception:
            logger.exception("could not queue the runs that follow %d finished run(s)", len(ended))
            return []

    def start(self) -> None:
        """Start flushing in the background (inside a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._flush_forever(), name="scheduler-runlog"
            )

    def kick(self) -> None:
        """Flush soon instead of waiting for the next tick (call from the event loop)."""
        self._wake.set()

    async def aflush(self) -> None:
        """Flush from a worker thread."""
        await OWN.run(self.flush)

    async def _flush_forever(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
            # that comes as the event is set, and close() then waited for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.aflush()
            except StorageError as exc:
                if not self._failing:
                    logger.warning("cannot write run history yet (will retry): %s", exc)
                self._failing = True
                await asyncio.sleep(min(1.0, self._interval * 10))
            else:
                if self._failing:
                    logger.info("run history is being written again")
                self._failing = False

    async def close(self) -> None:
        """Stop the background flush and write what is left (a start the fence refused is
        cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.aflush()
        finally:
            with self._lock:
                refused, self._refused = self._refused, []
            for waiter in refused:
                waiter.cancel()


def _cancel_soon(future: asyncio.Future[None]) -> None:
    """Cancel ``future`` from any thread (nothing happens if its loop has closed)."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(future.cancel)


def _resolve_soon(future: asyncio.Future[None]) -> None:
    """Mark ``future`` done from any thread (nothing happens if its loop has closed)."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(resolve)
