"""Subprocess entry: one measurement in a fresh interpreter, result as JSON.

``python -m bench.worker SIDE.FUNCTION --dir DIR --out FILE [--params JSON]`` runs
``bench.<SIDE>.<FUNCTION>(DIR, **params)`` (awaited if it is a coroutine function) and writes
its figures, plus the process's peak RSS, to ``FILE``. Only the measured side's module is
imported, so start-up (scenario 5) and memory are that side's own. Log records of WARNING
and above go to stderr, which the parent keeps in a log file and shows if this fails.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Any

from bench.measure import MeasurementError, Result, peak_rss_mb

__all__ = ["MEASUREMENTS", "main"]

MEASUREMENTS = {
    "ours": {
        "burst",
        "adds",
        "steady",
        "seed",
        "arm",
        "persisted",
        "chain",
        "sdk",
        "api_load",
        "workers_cpu",
        "workers_burst",
    },
    "baseline": {"burst", "adds", "steady", "seed", "arm", "persisted", "chain", "sdk"},
    "bare": {"gather", "loop"},
}


async def _warm_up(graph: str) -> None:
    """One call first, so lazy imports and caches are not charged to the measurement."""
    from bench.workloads import graph_named

    await graph_named(graph).ainvoke({"messages": [{"role": "user", "content": "warm-up"}]})


def run(name: str, workdir: Path, params: dict[str, Any]) -> Result:
    """Run measurement ``name`` (``side.function``) with ``params``; return its figures.

    ``params`` may also hold ``sleep`` (the sleepy graph's sleep) and ``warm_up`` (a graph
    name to call once before measuring); they are not passed on.
    """
    side, _, function = name.partition(".")
    if function not in MEASUREMENTS.get(side, ()):
        raise SystemExit(f"unknown measurement {name!r}")
    params = dict(params)
    sleep = params.pop("sleep", None)
    warm_up = params.pop("warm_up", None)
    if sleep is not None:
        from bench.workloads import set_sleep

        set_sleep(float(sleep))
    measure = getattr(importlib.import_module(f"bench.{side}"), function)
    if not inspect.iscoroutinefunction(measure):
        result: Result = measure(workdir, **params)
        return result

    async def main() -> Result:
        if warm_up is not None:
            await _warm_up(warm_up)
        figures: Result = await measure(workdir, **params)
        return figures

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; exit status 0 when the figures were written, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("measurement", help="side.function, e.g. ours.burst")
    parser.add_argument("--dir", type=Path, required=True, help="scratch directory")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--params", default="{}", help="keyword arguments as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        figures = run(args.measurement, args.dir, json.loads(args.params))
    except MeasurementError as exc:
        print(f"measurement failed: {exc}", file=sys.stderr)
        return 1
    figures["worker_peak_rss_mb"] = peak_rss_mb()
    args.out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
