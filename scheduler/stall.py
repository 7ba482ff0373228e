"""Saying what blocks the event loop (:class:`StallWatch`).

Everything the scheduler does happens on one event loop. An ``async def`` node that calls
blocking code (``time.sleep``, ``requests.get``, a synchronous database driver) stops all of
it: firings are late, timeouts cannot fire, the HTTP API does not answer, and nothing says
why. A thread of the watch pings the loop; when the loop has not answered for
``SCHEDULER_LOOP_STALL_SECONDS`` it logs a warning with where the loop's thread is (the
blocking call's file, line and function), once per stall, and how long the stall lasted
once the loop runs again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

__all__ = ["StallWatch"]

logger = logging.getLogger("scheduler")

_FRAMES_SHOWN = 4


class StallWatch:
    """Watches the running event loop from a daemon thread (:meth:`start` on the loop).

    Args:
        threshold: Seconds without an answer from the loop before it is reported (0: no
            watch).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching the running loop (call on it); nothing with a threshold of 0."""
        if not self.threshold:
            return
        loop = asyncio.get_running_loop()
        self._stop = threading.Event()  # (a thread of an earlier start ends on its own)
        self._thread = threading.Thread(
            target=self._watch,
            args=(loop, threading.get_ident()),
            name="scheduler-stall-watch",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends by itself: joined on the loop, it could wait for a
        ping that the loop, busy joining, does not answer)."""
        self._stop.set()
        self._thread = None

    def _watch(self, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        every = min(1.0, self.threshold / 2)
        while not self._stop.wait(every):
            if not loop.is_running():  # stopped between turns (run_until_complete): not
                if loop.is_closed():  # blocked, and nothing of it runs until it runs again
                    return
                continue
            answered = threading.Event()
            try:
                loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop is closed
                return
            began = time.monotonic()
            if answered.wait(self.threshold):
                continue
            if self._stop.is_set() or loop.is_closed():
                return
            if not loop.is_running():  # it stopped meanwhile; the ping waits for its next turn
                continue
            logger.warning(
                "the event loop has not run for %g s: something blocks it (an async node "
                "calling blocking code, such as time.sleep or requests; make it async, or "
                "make the node a plain def, which LangGraph runs on a thread). It is at:\n%s",
                self.threshold,
                _where(loop_thread),
            )
            while not answered.wait(0.5):
                if self._stop.is_set() or loop.is_closed():
                    return
            logger.warning(
                "the event loop runs again, after %.1f s blocked", time.monotonic() - began
            )


def _where(thread_id: int) -> str:
    """The innermost frames of the thread ``thread_id``, as a traceback shows them."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "  (the loop's thread is gone)"
    return "".join(traceback.format_stack(frame)[-_FRAMES_SHOWN:]).rstrip()
