"""The table: medians of the repetitions, ratio, target and verdict for every row.

A figure a side could not give (the baseline ran none of the runs whose end it would time)
shows as a dash with the reason; a partial figure (over the runs that did run) shows with its
note and gets no ratio. A figure missing from this project's side stops the bench.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from bench.measure import Result
from bench.scenarios import Row, Scenario
from bench.suite import BenchError, Outcome

__all__ = ["COLUMNS", "Line", "build", "fmt"]

COLUMNS = ("scenario", "metric", "ours", "baseline", "bare", "ratio", "target", "pass/fail")


@dataclass(frozen=True)
class Line:
    """One row of the table, as text, plus what to say when its target is not met."""

    scenario: str
    metric: str
    ours: str
    baseline: str
    bare: str
    ratio: str
    target: str
    verdict: str
    shortfall: str = ""

    def cells(self) -> tuple[str, ...]:
        return (
            self.scenario,
            self.metric,
            self.ours,
            self.baseline,
            self.bare,
            self.ratio,
            self.target,
            self.verdict,
        )


@dataclass(frozen=True)
class _Cell:
    value: float | None
    note: str
    partial: bool


def _sig(value: float, digits: int = 3) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt(value: float, unit: str) -> str:
    """``value`` (seconds for times) as the table shows it in ``unit``."""
    if unit == "count":
        return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
    if unit == "ms":
        return _sig(value * 1000)
    if unit in ("/s", "MB"):
        return f"{value:,.0f}"
    return _sig(value)


def _cell(results: list[Result], key: str, *, where: str) -> _Cell:
    if any(key not in r for r in results):
        raise BenchError(f"{where}: a repetition returned no figure {key!r}")
    values = [r[key] for r in results]
    notes = [n for n in dict.fromkeys(r.get("notes", {}).get(key, "") for r in results) if n]
    partial = any(key in r.get("partial", []) for r in results)
    value = None if any(v is None for v in values) else float(statistics.median(values))
    return _Cell(value, " / ".join(notes), partial)


def _text(cell: _Cell | None, unit: str) -> str:
    if cell is None:
        return ""
    shown = fmt(cell.value, unit) if cell.value is not None else "—"
    return f"{shown} ({cell.note})" if cell.note else shown


def _ratio(ours: _Cell, baseline: _Cell | None) -> str:
    if baseline is None or baseline.value in (None, 0) or baseline.partial or ours.partial:
        return ""
    assert ours.value is not None
    assert baseline.value is not None
    return _sig(ours.value / baseline.value, 2)


def _shortfall(row: Row, ours: float, goal: float) -> str:
    shown = fmt(ours, row.unit)
    if row.target is None:
        return ""
    if row.target.op == "<=":
        how = f"{ours / goal:.2f}x the limit" if goal else "limit is 0"
    elif row.target.op == ">=":
        how = f"{ours / goal:.0%} of the goal" if goal else ""
    else:
        how = f"off by {fmt(abs(ours - goal), row.unit)}"
    return f"{row.metric}: {shown}, target {row.target.text} (goal {fmt(goal, row.unit)}; {how})"


def _line(scenario: Scenario, row: Row, outcome: Outcome) -> Line:
    where = f"{scenario.name}, {row.metric}"
    cells = {
        side: _cell(results, row.key, where=f"{where} ({side})")
        for side, results in outcome.figures.items()
        if side != "bare" or row.bare
    }
    ours, baseline, bare = cells.get("ours"), cells.get("baseline"), cells.get("bare")
    if ours is None or ours.value is None:
        raise BenchError(f"{where}: this project's side has no figure")
    verdict = shortfall = target = ""
    if row.target is not None:
        medians = {
            k: float(statistics.median(r[k] for r in outcome.figures["ours"]))
            for k in ([row.target.key] if row.target.key else [])
        }
        bare_value = bare.value if bare is not None else None
        base = baseline.value if baseline is not None else None
        met = row.target.check(ours.value, bare=bare_value, figures=medians, baseline=base)
        verdict = "pass" if met else "FAIL"
        target = row.target.text
        if not met:
            goal = row.target.goal(bare=bare_value, figures=medians, baseline=base)
            shortfall = f"{scenario.title} — {_shortfall(row, ours.value, goal)}"
    return Line(
        scenario=scenario.title,
        metric=row.metric,
        ours=_text(ours, row.unit),
        baseline=_text(baseline, row.unit),
        bare=_text(bare, row.unit),
        ratio=_ratio(ours, baseline) if row.ratio else "",
        target=target,
        verdict=verdict,
        shortfall=shortfall,
    )


def build(outcomes: list[Outcome]) -> list[Line]:
    """The table's lines, scenario by scenario."""
    return [
        _line(outcome.scenario, row, outcome)
        for outcome in outcomes
        for row in outcome.scenario.rows
    ]
