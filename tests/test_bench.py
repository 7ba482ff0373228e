"""The benchmark harness still works: ``python -m bench --quick``, ``python -m
bench.gc_effect`` and ``python -m bench.server_cost`` in subprocesses.

Smoke tests only: the command exits 0 and writes a table in which every row of every
scenario has a figure for this project and for the baseline (or a rate for every variant).
Timings are the benchmark's business, never a test's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.scenarios import plan

ROOT = Path(__file__).resolve().parent.parent


def _table(markdown: str) -> list[list[str]]:
    """The Markdown table's body rows, each as its cells; an empty scenario cell (same
    scenario as the row above) filled in."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    cells = [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]
    scenario = ""
    for row in cells:
        scenario = row[0] = row[0] or scenario
    return cells


def _run(*args: str) -> str:
    """Run ``python -m <args>`` from the project directory; its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    return stdout


@pytest.mark.slow
@pytest.mark.serial  # the bench measures: after the parallel tests
@pytest.mark.xdist_group("bench")  # and one bench at a time
def test_quick_bench_fills_the_columns_of_every_scenario(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    stdout = _run("bench", "--quick", "--output", str(output))

    rows = _table(output.read_text())
    scenarios = plan(quick=True)
    expected = {scenario.title: len(scenario.rows) for scenario in scenarios}
    with_baseline = {s.title for s in scenarios if any(step.side == "baseline" for step in s.steps)}
    with_bare = {s.title for s in scenarios if any(step.side == "bare" for step in s.steps)}
    assert Counter(row[0] for row in rows) == expected
    for scenario, metric, ours, baseline, bare, *_ in rows:
        assert ours, f"{scenario} / {metric}: no figure for this project"
        if scenario in with_baseline:
            assert baseline, f"{scenario} / {metric}: no figure for the baseline"
        elif scenario in with_bare:  # measured against the bare reference only (scenario 7)
            assert bare or metric == "runs that ran", f"{scenario} / {metric}: no bare figure"
    for title in expected:
        assert title in stdout


@pytest.mark.slow
@pytest.mark.serial  # the bench measures: after the parallel tests
@pytest.mark.xdist_group("bench")  # and one bench at a time
def test_gc_effect_reports_a_rate_for_every_variant() -> None:
    stdout = _run("bench.gc_effect", "-n", "100", "--repeat", "1")
    rates = dict(re.findall(r"^  (.+?) +([\d,]+) runs/s", stdout, re.MULTILINE))
    assert list(rates) == [
        "bare loop",
        "bare loop after gc.freeze()",
        "scheduler, SCHEDULER_GC_FREEZE=true",
        "scheduler, SCHEDULER_GC_FREEZE=false",
    ], stdout
    assert all(int(rate.replace(",", "")) > 0 for rate in rates.values()), stdout


@pytest.mark.slow
@pytest.mark.serial  # the bench measures: after the parallel tests
@pytest.mark.xdist_group("bench")  # and one bench at a time
def test_server_cost_reports_a_time_for_every_part() -> None:
    stdout = _run("bench.server_cost", "-n", "50")
    times = dict(re.findall(r"^(.+?) +([\d.]+) ms$", stdout, re.MULTILINE))
    assert [name.strip() for name in times] == [
        "crons.create (ASGI, in-process)",
        "TaskDefinition validation",
        "add_task on the event loop",
        "aadd_task (the async API's thread)",
        "no-op hop, the async API's thread",
        "no-op hop, asyncio.to_thread",
        "crons.search (ASGI, in-process)",
    ], stdout
    assert all(float(value) > 0 for value in times.values()), stdout
