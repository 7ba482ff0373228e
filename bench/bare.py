"""The bare references: the same graph calls with no scheduler at all.

``gather`` awaits ``asyncio.gather`` of ``n`` ``graph.ainvoke`` calls (scenarios 1 and 6);
``loop`` makes ``n`` calls through a semaphore of ``concurrency`` (scenario 4, the same
concurrency as the scheduler's ``max_concurrent_runs``). ``gc_freeze=True`` first calls
``gc.freeze()``, as a running scheduler does by default (``SCHEDULER_GC_FREEZE``): not part of
the issue's bare reference, a like-for-like figure for ``bench/PROFILE.md``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any

from bench.measure import Result
from bench.workloads import graph_named

__all__ = ["gather", "loop"]

PROMPT = "hi"


def _call(graph: Any) -> Any:
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
    workdir: Path, *, n: int, concurrency: int, graph: str = "trivial", gc_freeze: bool = False
) -> Result:
    """Wall time of ``n`` calls with at most ``concurrency`` in flight, and calls per second."""
    target = graph_named(graph)
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
