"""The bare references: the same graph calls with no scheduler at all.

``gather`` awaits ``asyncio.gather`` of ``n`` ``graph.ainvoke`` calls (scenarios 1 and 6);
``loop`` makes ``n`` calls through a semaphore of ``concurrency`` (scenarios 4 and 7, the
same concurrency as the scheduler's ``max_concurrent_runs``; 7 with a checkpointer).
``gc_freeze=True`` first calls ``gc.freeze()``, as a running scheduler does by default
(``SCHEDULER_GC_FREEZE``): not part of the issue's bare reference, a like-for-like figure
for ``bench/PROFILE.md``.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from pathlib import Path
from typing import Any

from bench.measure import Result
from bench.workloads import graph_named

__all__ = ["gather", "loop"]

PROMPT = "hi"


def _call(graph: Any) -> Any:
    if graph.checkpointer is not None:  # a thread of its own per call, as a run gets
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        return graph.ainvoke({"messages": [{"role": "user", "content": PROMPT}]}, config)
    return graph.ainvoke({"messages": [{"role": "user", "content": PROMPT}]})


async def gather(
    workdir: Path, *, n: int, graph: str = "trivial", gc_freeze: bool = False
) -> Result:
    """Wall time of ``asyncio.gather`` of ``n`` calls (``finished``) and calls per second."""
    target = graph_named(graph)
    if gc_freeze:
        gc.freeze()
    began = time.perf_counter()
    await asyncio.gather(*(_call(target) for _ in range(n)))
    wall = time.perf_counter() - began
    return {"finished": wall, "rate": n / wall}


async def loop(
    workdir: Path,
    *,
    n: int,
    concurrency: int,
    graph: str = "trivial",
    gc_freeze: bool = False,
    checkpointer: bool = False,
) -> Result:
    """Wall time of ``n`` calls with at most ``concurrency`` in flight, and calls per second.

    ``checkpointer``: the graph compiled with the checkpointer the scheduler injects into a
    graph without one (LangGraph's ``SqliteSaver`` on a SQLite file, its async methods on
    worker threads), each call on a thread of its own (scenario 7)."""
    target = graph_named(graph)
    if checkpointer:
        from scheduler import SqliteCheckpointer

        target = target.copy(update={"checkpointer": SqliteCheckpointer(workdir / "bare.db")})
    if gc_freeze:
        gc.freeze()
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await _call(target)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - began
    return {"finished": wall, "rate": n / wall}
