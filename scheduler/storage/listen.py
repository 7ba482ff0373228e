"""The ``LISTEN`` side of the channel that wakes workers when runs are queued for them
(PostgreSQL; the ``NOTIFY`` is :func:`scheduler.storage.workers.notify`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from scheduler.storage.store import Store, translated

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "langgraph_scheduler_runs"


class Listener:
    """A dedicated connection that ``LISTEN`` s on :data:`CHANNEL` in a thread and calls
    ``wake`` (from that thread) for each notification of its schema; reconnects after
    errors."""

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="scheduler-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=3)

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with translated(self._store):
                    raw = self._store.engine.raw_connection()
            except Exception:
                self._stopped.wait(1.0)
                continue
            try:
                conn: Any = raw.driver_connection  # (None once detached)
                raw.detach()
                conn.autocommit = True
                conn.execute(f"LISTEN {CHANNEL}")
                ours = ("", conn.execute("SELECT current_schema()").fetchone()[0])
                self._wake()  # anything queued while not listening
                while not self._stopped.is_set():
                    for notice in conn.notifies(timeout=0.5, stop_after=1):
                        if notice.payload in ours:  # (not another schema's queue)
                            self._wake()
            except Exception:
                self._stopped.wait(1.0)
            finally:
                with contextlib.suppress(Exception):
                    raw.close()
