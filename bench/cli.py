"""``python -m bench``: run the scenarios for this project, the baseline and the bare
reference, print one table, and write it with the machine's description to a Markdown file
(``bench/RESULTS.md`` for a full run)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench.report import machine, results_document, shortfalls, text_table
from bench.scenarios import GROUPS, Scenario, plan
from bench.suite import BenchError, run_scenarios
from bench.table import build

__all__ = ["DEFAULT_OUTPUT", "main"]

DEFAULT_OUTPUT = Path(__file__).with_name("RESULTS.md")
DEFAULT_REPEAT = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark this scheduler against the classic APScheduler recipe.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small N and 1 repetition (a smoke test)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"run only these scenarios: {', '.join(GROUPS)} (or burst-1000, burst-10000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"repetitions per figure (default {DEFAULT_REPEAT}; 1 with --quick)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help=f"where to write the Markdown results (default: bench/{DEFAULT_OUTPUT.name}, "
        f"only for a full run: every scenario, the issue's sizes, {DEFAULT_REPEAT} or more "
        "repetitions; a partial run writes nothing unless given this)",
    )
    return parser


def _select(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    if not names:
        return scenarios
    known = {s.group for s in scenarios} | {s.name for s in scenarios}
    unknown = sorted(set(names) - known)
    if unknown:
        raise SystemExit(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [s for s in scenarios if s.group in names or s.name in names]


def main(argv: list[str] | None = None) -> int:
    """Run the bench; exit status 0 with a table, 1 when a figure could not be measured."""
    args = _parser().parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else DEFAULT_REPEAT)
    if repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    scenarios = _select(plan(quick=args.quick), args.only)
    full = not args.quick and not args.only and repeat >= DEFAULT_REPEAT
    output = args.output if args.output is not None else (DEFAULT_OUTPUT if full else None)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    began = time.monotonic()
    try:
        outcomes = run_scenarios(scenarios, repeat=repeat)
        lines = build(outcomes)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - began
    print(
        f"\nMedian of {repeat} repetition(s); ratio = ours / baseline; "
        f"{elapsed / 60:.1f} min in all.\n"
    )
    print(text_table(lines))
    missed = shortfalls(lines)
    if missed:
        print("\nTargets not met:")
        for text in missed:
            print(f"- {text}")
    if output is not None:
        output.write_text(
            results_document(lines, command=command, repeat=repeat, elapsed=elapsed, info=machine())
        )
        print(f"\nwritten to {output}")
    return 0
