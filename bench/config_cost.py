"""What the run config alone costs LangGraph: ``python -m bench.config_cost``.

The scheduler calls ``graph.ainvoke(input, config)`` with ``configurable.thread_id``,
``run_name``, ``tags`` and ``metadata`` (see "What a firing sends to the graph" in the README).
This times a bare ``asyncio.gather`` of the same calls with no config, then adding those parts
one at a time, interleaved over the repetitions, so that the part of the scheduler's overhead
that is LangGraph's handling of the config can be told apart from the scheduler's own.
No scheduler is involved. Prints the median wall time of each variant.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from bench.workloads import set_sleep, sleepy_graph

__all__ = ["VARIANTS", "main"]

VARIANTS = ("no config", "thread_id", "+ run_name, tags", "+ metadata (as the scheduler sends)")


def _config(variant: str, i: int) -> dict[str, Any] | None:
    if variant == VARIANTS[0]:
        return None
    config: dict[str, Any] = {"configurable": {"thread_id": str(uuid.uuid4())}}
    if variant in VARIANTS[2:]:
        config.update(run_name="scheduled:task", tags=["scheduler"])
    if variant == VARIANTS[3]:
        config["metadata"] = {
            "task_id": "task",
            "task_name": "task",
            "scheduled_for": "2026-01-01T09:00:00+00:00",
            "run_id": f"run-{i}",
            "attempt": 1,
        }
    return config


async def _gather(variant: str, n: int) -> float:
    prompt = {"messages": [{"role": "user", "content": "hello"}]}
    began = time.perf_counter()
    await asyncio.gather(*(sleepy_graph.ainvoke(prompt, _config(variant, i)) for i in range(n)))
    return time.perf_counter() - began


async def _run(n: int, repeat: int) -> dict[str, float]:
    await sleepy_graph.ainvoke({"messages": [{"role": "user", "content": "warm-up"}]})
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeat):
        for variant in VARIANTS:
            times[variant].append(await _gather(variant, n))
    return {variant: statistics.median(values) for variant, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.config_cost", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="calls per gather (default 1000)")
    parser.add_argument("--sleep", type=float, default=0.5, help="the node's sleep (s)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args(argv)
    set_sleep(args.sleep)
    medians = asyncio.run(_run(args.n, args.repeat))
    base = medians[VARIANTS[0]] - args.sleep
    print(f"{args.n} calls of a graph sleeping {args.sleep:g} s, median of {args.repeat}:")
    for variant, seconds in medians.items():
        cpu = seconds - args.sleep
        print(f"  {variant:<38} {seconds:6.3f} s  (beyond the sleep: {cpu / base:.2f} x)")


if __name__ == "__main__":
    main()
