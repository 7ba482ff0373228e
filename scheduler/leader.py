"""One active scheduler per database.

Two APScheduler processes on one job store both run every due job. So only the holder of
a lock dispatches: an exclusive ``flock`` on ``<database file>.lock`` for SQLite, a session
advisory lock for PostgreSQL. A process that cannot take the lock **stands by**: it serves
its API (changes reach the active scheduler through the database) and takes over as soon as
the lock is free, for example when the active process exits or is killed. The operating
system (or PostgreSQL) frees the lock of a killed process.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Protocol

from scheduler.storage import AdvisoryLock, Store, try_advisory_lock

__all__ = ["FileLeaderLock", "LeaderLock", "NoLeaderLock", "PostgresLeaderLock", "leader_lock_for"]

_ADVISORY_NAME = "langgraph-task-scheduler"


class LeaderLock(Protocol):
    """A lock that makes one process the active scheduler of a database."""

    def try_acquire(self) -> bool:
        """Take the lock without waiting; True if this process now holds it."""
        ...

    def is_held(self) -> bool:
        """This process still holds the lock."""
        ...

    def release(self) -> None:
        """Give the lock up (nothing happens if it is not held)."""
        ...

    def holder(self) -> str:
        """Who holds it, as far as can be told (for messages)."""
        ...


class NoLeaderLock:
    """For an in-memory database, which no other process can see."""

    def try_acquire(self) -> bool:
        return True

    def is_held(self) -> bool:
        return True

    def release(self) -> None:
        return None

    def holder(self) -> str:
        return "this process"


class FileLeaderLock:
    """An exclusive ``flock`` on a file next to the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return True

    def is_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"


class PostgresLeaderLock:
    """A PostgreSQL session advisory lock, held on a dedicated connection."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock: AdvisoryLock | None = None

    def try_acquire(self) -> bool:
        if self._lock is None:
            self._lock = try_advisory_lock(self._store, _ADVISORY_NAME)
        return self._lock is not None

    def is_held(self) -> bool:
        if self._lock is None:
            return False
        if not self._lock.is_held():
            self._lock = None
            return False
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def holder(self) -> str:
        return "another scheduler session"


def leader_lock_for(store: Store) -> LeaderLock:
    """The right lock for the store's database."""
    if store.is_memory:
        return NoLeaderLock()
    if store.sqlite_path is not None:
        return FileLeaderLock(store.sqlite_path.with_name(store.sqlite_path.name + ".lock"))
    if store.engine.dialect.name == "postgresql":
        return PostgresLeaderLock(store)
    return NoLeaderLock()


def scheduler_is_active(store: Store) -> bool:
    """Some process holds the leader lock of this database (a scheduler is running on it)."""
    lock = leader_lock_for(store)
    if isinstance(lock, NoLeaderLock):
        return False
    if lock.try_acquire():
        lock.release()
        return False
    return True
