"""The threads a run gets of its own, and what becomes of them.

A task without a ``thread_id`` runs each time on a fresh thread, as a stateless run does
on the LangGraph server. The checkpointer keeps that thread's checkpoints (what an
``interrupt()`` is answered from), and nothing else ever reads them once the run is over:
left alone, they would fill the database at every firing, long after the run's record was
pruned. So a fresh thread is named after its run (:func:`fresh_thread`: a UUID derived
from the run id, which only the scheduler makes), and when history pruning deletes a
run's record, :func:`forget_threads` deletes the checkpoints of the fresh threads among
them. A thread a task names, or one a run was given, is never one of them, whatever
becomes of its records.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["forget_threads", "fresh_thread", "is_fresh"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5b0c5a3e-4f1e-4d8e-9a41-6b3f2f6b7c11")


def fresh_thread(run_id: str) -> str:
    """The fresh thread of run ``run_id`` (a UUID, as the LangGraph server wants):
    ``str(uuid.uuid5(_NAMESPACE, run_id))``, made without the ``UUID`` object (a third of
    the cost of each of a fan-out's thousand starts on the event loop)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE.bytes + run_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def is_fresh(run_id: str, thread_id: str | None) -> bool:
    """Whether ``thread_id`` is the fresh thread of run ``run_id``."""
    return thread_id is not None and thread_id == fresh_thread(run_id)


def forget_threads(
    graph: Any, threads: Iterable[str], *, stopping: Callable[[], bool] = lambda: False
) -> set[str]:
    """Delete the checkpoints of ``threads`` in ``graph``'s checkpointer (none: a remote
    graph, or one compiled without a checkpointer). Returns the threads done with: deleted,
    or never to be (a checkpointer that cannot delete, said in the log). A failure stops
    there, as ``stopping()`` does before each thread (the scheduler stops: its checkpointer
    is closed next): the threads not returned are for the next prune (their runs' records
    stay)."""
    wanted = list(threads)
    delete = getattr(getattr(graph, "checkpointer", None), "delete_thread", None)
    if not callable(delete):
        return set(wanted)
    done: set[str] = set()
    for thread_id in wanted:
        if stopping():
            logger.info(
                "pruning stopped with the scheduler: the checkpoints and records of %d "
                "run(s) are kept until the next prune",
                len(wanted) - len(done),
            )
            break
        try:
            delete(thread_id)
        except NotImplementedError:
            logger.info("the checkpointer cannot delete threads: checkpoints of pruned runs kept")
            return set(wanted)
        except Exception as exc:
            logger.warning(
                "could not delete the checkpoints of thread %s (%s): the records of %d run(s) "
                "are kept until the next prune",
                thread_id,
                exc,
                len(wanted) - len(done),
            )
            break
        done.add(thread_id)
    return done
