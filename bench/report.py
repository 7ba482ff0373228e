"""Rendering the table (plain text for the terminal, Markdown for ``RESULTS.md``) and
describing the machine it was measured on."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.table import COLUMNS, Line

__all__ = [
    "PACKAGES",
    "machine",
    "markdown_table",
    "results_document",
    "shortfalls",
    "text_table",
]

PACKAGES = ("apscheduler", "sqlalchemy", "langgraph", "langchain-core", "pydantic")

LEGEND = (
    "ours = this project (`TaskScheduler`, SQLite, run history recorded); baseline = the "
    "classic recipe (`AsyncIOScheduler` + `SQLAlchemyJobStore` on SQLite, APScheduler's "
    "default job settings, one `add_job` per task); bare = the same graph calls with no "
    "scheduler. Each figure is the median of the repetitions; ratio = ours / baseline; "
    "targets and pass/fail apply to ours. A dash means the side could not produce that "
    "figure (the note says why); a figure with a note such as `12/1000 ran` covers only the "
    "runs that ran, and gets no ratio."
)

METHOD = """\
- Every measurement (ours, baseline, bare; each scenario and repetition) runs in a fresh
  `python -m bench.worker` process with its own temporary directory and database; sides run
  one after the other, alternating within each repetition. Workers log WARNING and above.
- Lateness: dispatch = scheduled time to the run's record (ours: `queued_at`; baseline:
  the `EVENT_JOB_SUBMITTED` listener, the moment the run is handed to the executor); start =
  scheduled time to the graph call starting (ours: `started_at`; baseline: the job
  function's own clock). "Finished" = due time to the last run's end.
- Baseline set-up writes its jobs' pickled states in bulk (`bench/jobseed.py`: each job is
  built by a real `add_job`; only the per-job commits are skipped). Scenario 2 times real
  `add_job` calls. What is measured is always the real recipe running.
- Scenario 5: the database is seeded once, copied per repetition, and gets its due one-time
  tasks (0.1 s apart, from just before the start) right before the measured process is
  spawned. "First firing" runs from the parent's clock just before spawning to the first
  run's start (interpreter start-up and imports included). The baseline fires only due jobs
  within its 1 s misfire grace; ours catches up the ones already due.
- Ours runs on its default settings, which include `SCHEDULER_GC_FREEZE=true`: while it
  runs, the objects alive when it started are left out of garbage collections
  (`gc.freeze()`). The bare references call `graph.ainvoke` in a plain process, as the
  issue defines them. `python -m bench.gc_effect` measures scenario 4 with the freeze on and
  off on both sides (figures in [PROFILE.md](PROFILE.md)).
"""


def machine() -> dict[str, str]:
    """CPU, memory, OS, Python and package versions of this machine."""
    info = {"cpus": str(os.cpu_count() or "?")}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    info["os"] = platform.platform()
    info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _rows(lines: Sequence[Line]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    previous = None
    for line in lines:
        cells = line.cells()
        if cells[0] == previous:
            cells = ("", *cells[1:])
        previous = line.scenario
        rows.append(cells)
    return rows


def text_table(lines: Sequence[Line]) -> str:
    """The table in aligned columns for a terminal."""
    rows = [COLUMNS, *_rows(lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4, 5}
    out = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in numeric and number else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if number == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(lines: Sequence[Line]) -> str:
    """The table in Markdown."""

    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * 4 + "---|---|"]
    out += ["| " + " | ".join(escape(c) for c in row) + " |" for row in _rows(lines)]
    return "\n".join(out)


def shortfalls(lines: Sequence[Line]) -> list[str]:
    """One sentence per target not met."""
    return [line.shortfall for line in lines if line.shortfall]


def results_document(
    lines: Sequence[Line],
    *,
    command: str,
    repeat: int,
    elapsed: float,
    info: dict[str, str],
    when: datetime | None = None,
) -> str:
    """``RESULTS.md``: the table with the date, machine, command and repetitions."""
    when = when or datetime.now(UTC)
    packages = ", ".join(f"{p} {info.get(p, '?')}" for p in PACKAGES)
    missed = shortfalls(lines)
    parts = [
        "# Benchmark results",
        "",
        f"- Command: `{command}`",
        f"- Date: {when:%Y-%m-%d %H:%M} UTC; the whole run took {elapsed / 60:.1f} min",
        f"- Repetitions: {repeat} per figure (median shown)",
        f"- Machine: {info.get('cpus')} CPUs ({info.get('cpu', 'unknown CPU')}), "
        f"{info.get('memory', '? GiB')} memory, {info.get('os')}",
        f"- Python: {info.get('python')}; {packages}",
        "",
        LEGEND,
        "",
        markdown_table(lines),
        "",
        "## Targets not met",
        "",
        *([f"- {text}" for text in missed] or ["Every target was met."]),
        "",
    ]
    if missed and Path(__file__).with_name("PROFILE.md").exists():
        parts += ["Where the time goes: [PROFILE.md](PROFILE.md).", ""]
    parts += ["## How it measures", "", METHOD]
    return "\n".join(parts)
