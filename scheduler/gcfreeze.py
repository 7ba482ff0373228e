"""Keep the garbage collector off what lives as long as the scheduler: ``gc.freeze()``.

Every full collection walks every object the collector tracks. In a scheduler process most
of them are the modules, classes and functions of LangGraph, LangChain, pydantic,
SQLAlchemy and APScheduler, loaded once and never freed, and a run of a small graph
allocates enough to start a collection every few runs. Measured with ``python -m bench
--only overhead``, those walks were the largest part of what the scheduler added to a
trivial run. ``gc.freeze()`` moves every object alive at that moment to a permanent
generation that collections skip; ``gc.unfreeze()`` hands them back.

The first running scheduler in a process freezes, the last one to stop unfreezes. Objects
frozen that become unreachable are still freed by reference counting; only garbage in
reference cycles among them waits until the unfreeze. ``SCHEDULER_GC_FREEZE=false`` turns
this off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hold", "paused", "release"]

_lock = threading.Lock()
_holders = 0


@contextmanager
def paused() -> Iterator[None]:
    """No collections while a long list of records is built: each collection would walk the
    records built so far, and building them makes no reference cycles (measured on a list of
    100,000 tasks: a tenth of the time). The collector's state is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def hold() -> None:
    """A scheduler starts: freeze what is alive now if no other scheduler holds it."""
    global _holders
    with _lock:
        _holders += 1
        if _holders == 1:
            gc.freeze()


def release() -> None:
    """A scheduler that called :func:`hold` stopped: unfreeze when it was the last."""
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0:
            gc.unfreeze()
