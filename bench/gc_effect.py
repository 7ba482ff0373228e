"""What ``SCHEDULER_GC_FREEZE`` does to scenario 4: ``python -m bench.gc_effect``.

A running scheduler calls ``gc.freeze()`` by default (see ``scheduler/gcfreeze.py``); the
bare loop of scenario 4 does not, as the issue defines it. This runs scenario 4's two
measurements both ways, each in a fresh worker process as the bench does, alternating over
the repetitions: the bare loop plain and after ``gc.freeze()``, and this scheduler with the
setting on (the default) and off. The ratios it prints tell the collector's share apart from
the scheduler's own cost. Prints the median runs per second of each variant.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.scenarios import setup_margin
from bench.suite import run_worker

__all__ = ["main"]


def _variants(n: int) -> dict[str, tuple[str, dict[str, Any]]]:
    bare = {"n": n, "concurrency": 100, "warm_up": "trivial"}
    ours = {"n": n, "margin": setup_margin(n), "warm_up": "trivial"}
    return {
        "bare loop": ("bare.loop", bare),
        "bare loop after gc.freeze()": ("bare.loop", {**bare, "gc_freeze": True}),
        "scheduler, SCHEDULER_GC_FREEZE=true": ("ours.burst", ours),
        "scheduler, SCHEDULER_GC_FREEZE=false": ("ours.burst", {**ours, "gc_freeze": False}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gc_effect", description=__doc__)
    parser.add_argument("-n", type=int, default=2000, help="runs per measurement (default 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args(argv)
    variants = _variants(args.n)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as scratch:
        for rep in range(args.repeat):
            for k, (name, (measurement, params)) in enumerate(variants.items()):
                workdir = Path(scratch) / f"{rep}-{k}"
                workdir.mkdir()
                figures = run_worker(measurement, params, workdir=workdir, timeout=300)
                rates[name].append(figures["rate"])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    plain, frozen = medians["bare loop"], medians["bare loop after gc.freeze()"]
    print(f"{args.n} runs of the trivial graph, 100 at a time, median of {args.repeat}:")
    for name, rate in medians.items():
        versus = f"{rate / plain:.2f} x bare, {rate / frozen:.2f} x frozen bare"
        print(f"  {name:<38} {rate:7,.0f} runs/s  {versus}")


if __name__ == "__main__":
    main()
