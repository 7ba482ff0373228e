"""Output of the CLI: Rich tables and colours on a terminal, plain tab-separated text when
piped, JSON with ``--json``. Whatever it prints is safe on a terminal: stored text (a
task's name from an older version's row, a run's error or output) may hold control
characters, and they are shown escaped (:func:`~scheduler.control_characters.shown`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from scheduler.control_characters import shown, shown_json
from scheduler.enums import RunStatus
from scheduler.records import Notice, RunRecord, TaskInfo
from scheduler.wording import describe_task

__all__ = ["Output"]

_STATE_STYLES = {
    "active": "green",
    "paused": "yellow",
    "disabled": "dim",
    "completed": "blue",
    "error": "bold red",
    "succeeded": "green",
    "running": "cyan",
    "queued": "cyan",
    "failed": "red",
    "timed_out": "red",
    "interrupted": "red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "missed": "yellow",
}


def when(moment: datetime | None, zone: Any = None) -> str:
    """A datetime for people: ``2026-03-15 14:00:05 CET`` (in ``zone`` if given)."""
    if moment is None:
        return "-"
    if zone is not None:
        moment = moment.astimezone(zone)
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname()}"


def schedule_text(task: TaskInfo) -> str:
    if task.definition is None:
        return "(cannot be loaded)"
    return describe_task(task.definition)


def task_zone(task: TaskInfo) -> Any:
    return task.definition.zone() if task.definition is not None else None


class Output:
    """Where a command writes: a terminal gets Rich, a pipe gets plain text."""

    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.rich = self.stream.isatty() and not as_json
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)

    def result(self, data: Any) -> None:
        """What a command did, as JSON, with ``--json`` (nothing otherwise: its lines say it)."""
        if self.as_json:
            self.json(data)

    def run(self, run: RunRecord) -> None:
        """One run: a table row, or a JSON object with ``--json``."""
        if self.as_json:
            self.json(run.to_dict())
        else:
            self.runs([run])

    def json(self, data: Any) -> None:
        self.stream.write(shown_json(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")

    def line(self, text: str = "", style: str | None = None) -> None:
        """A line for people (on stderr with ``--json``: stdout is the JSON alone)."""
        text = shown(text)
        if self.as_json:
            print(text, file=sys.stderr)
        elif self.rich:
            self.console.print(text, style=style, markup=False)
        else:
            self.stream.write(text + "\n")

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        styles: dict[int, bool] | None = None,
    ) -> None:
        """A table; columns listed in ``styles`` are coloured by their value."""
        rows = [[shown(cell) for cell in row] for row in rows]  # (a tab too: one cell)
        if not self.rich:
            self.stream.write("\t".join(headers) + "\n")
            for row in rows:
                self.stream.write("\t".join(row) + "\n")
            return
        table = Table(header_style="bold", box=None, pad_edge=False)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            cells = [
                f"[{_STATE_STYLES.get(cell, '')}]{cell}[/]"
                if styles and index in styles and _STATE_STYLES.get(cell)
                else cell.replace("[", r"\[")
                for index, cell in enumerate(row)
            ]
            table.add_row(*cells)
        self.console.print(table)

    def notices(self, notices: Sequence[Notice]) -> None:
        """Problems with a source of tasks, after a listing (on stderr for ``--json``, so
        the JSON stays what scripts parse)."""
        for notice in notices:
            text = f"note: {notice.message} (since {notice.since:%Y-%m-%d %H:%M} UTC)"
            if self.as_json:
                print(shown(text), file=sys.stderr)
            else:
                self.line(text, style="bold yellow")

    # -- tasks and runs -------------------------------------------------------------------

    def tasks(self, tasks: Sequence[TaskInfo]) -> None:
        if self.as_json:
            self.json([{**t.to_dict(), "schedule": schedule_text(t)} for t in tasks])
            return
        if not tasks:
            self.line("no tasks")
            return
        rows = [
            [
                t.id,
                t.name,
                schedule_text(t),
                when(t.next_run, task_zone(t)),
                t.state.value,
                t.last_status.value if t.last_status else "-",
                t.source,
            ]
            for t in tasks
        ]
        self.table(
            ["ID", "NAME", "SCHEDULE", "NEXT RUN", "STATE", "LAST STATUS", "SOURCE"],
            rows,
            styles={4: True, 5: True},
        )

    def runs(self, runs: Sequence[RunRecord]) -> None:
        if self.as_json:
            self.json([r.to_dict() for r in runs])
            return
        if not runs:
            self.line("no runs")
            return
        rows = []
        for run in runs:
            duration = run.duration_seconds
            detail = run.error_message or (run.output or "")
            if run.status is RunStatus.WAITING and run.interrupts:
                asked = [
                    json.dumps(i.get("value") if isinstance(i, dict) else i) for i in run.interrupts
                ]
                detail = "asks: " + "; ".join(asked)
            rows.append(
                [
                    run.id,
                    run.task_id,
                    run.status.value,
                    when(run.scheduled_for),
                    f"{duration:.2f}s" if duration is not None else "-",
                    str(run.attempt),
                    " ".join(detail.split())[:80],
                ]
            )
        self.table(
            ["RUN", "TASK", "STATUS", "SCHEDULED FOR", "TOOK", "ATTEMPT", "OUTPUT / ERROR"],
            rows,
            styles={2: True},
        )

    def task_detail(
        self,
        task: TaskInfo,
        upcoming: Sequence[datetime],
        runs: Sequence[RunRecord],
        *,
        upstream: Sequence[str] = (),
        downstream: Sequence[str] = (),
    ) -> None:
        if self.as_json:
            self.json(
                {
                    **task.to_dict(),
                    "schedule": schedule_text(task),
                    "upstream": list(upstream),
                    "downstream": list(downstream),
                    "next_runs": [t.isoformat() for t in upcoming],
                    "runs": [r.to_dict() for r in runs],
                }
            )
            return
        self.line(f"{task.id}: {task.name}", style="bold")
        self.line(f"  state:     {task.state.value}", style=_STATE_STYLES.get(task.state.value))
        self.line(f"  schedule:  {schedule_text(task)}")
        self.line(f"  source:    {task.source}")
        if upstream:
            self.line(f"  runs after:      {', '.join(upstream)}")
        if downstream:
            self.line(f"  run after it:    {', '.join(downstream)}")
        if task.error:
            self.line(f"  error:     {task.error}", style="red")
        if task.definition is not None:
            self.line("  definition:")
            for key, value in task.definition.model_dump(mode="json", exclude_none=True).items():
                if value in ({}, ""):
                    continue
                rendered = (
                    json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
                )
                self.line(f"    {key}: {rendered}")
        self.line("  next runs:")
        zone = task_zone(task)
        for moment in upcoming:
            self.line(f"    {when(moment, zone)}")
        if not upcoming:
            self.line("    (none)")
        self.line(f"  recent runs ({task.run_count} recorded):")
        if runs:
            self.runs(runs)
        else:
            self.line("    (none)")
