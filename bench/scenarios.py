"""The scenarios: what each one runs on every side, the rows it reports, and its targets.

``plan(quick=False)`` gives the full suite of the issue; ``plan(quick=True)`` the same
scenarios with small N (seconds in all, for CI). Targets belong to this project only; the
baseline and the bare reference are printed next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.pg import postgres_url

__all__ = ["GROUPS", "Row", "Scenario", "Step", "Target", "plan", "setup_margin"]

GROUPS = (
    "burst",
    "adds",
    "steady",
    "overhead",
    "persisted",
    "concurrency",
    "checkpointer",
    "workflows",
    "server",
    "million",
    "workers",
)


@dataclass(frozen=True)
class Target:
    """A goal for this project's figure: ``op`` against a value, a multiple of the bare
    reference, or another of this project's figures."""

    op: str  # ">=", "<=" or "=="
    value: float | None = None
    bare_factor: float | None = None
    baseline_factor: float | None = None  # a multiple of the baseline's figure
    key: str | None = None  # another figure of ours, e.g. runs done == runs due
    text: str = ""

    def check(
        self,
        ours: float,
        *,
        bare: float | None,
        figures: dict[str, float],
        baseline: float | None = None,
    ) -> bool:
        """Whether ``ours`` meets the target."""
        if self.baseline_factor is not None:
            if baseline is None:
                raise ValueError("a target relative to the baseline needs its figure")
            goal = self.baseline_factor * baseline
        elif self.bare_factor is not None:
            if bare is None:
                raise ValueError("a target relative to the bare reference needs its figure")
            goal = self.bare_factor * bare
        elif self.key is not None:
            goal = figures[self.key]
        else:
            assert self.value is not None
            goal = self.value
        if self.op == ">=":
            return ours >= goal
        if self.op == "<=":
            return ours <= goal
        return ours == goal

    def goal(
        self, *, bare: float | None, figures: dict[str, float], baseline: float | None = None
    ) -> float:
        """The number ``ours`` is compared with."""
        if self.baseline_factor is not None and baseline is not None:
            return self.baseline_factor * baseline
        if self.bare_factor is not None and bare is not None:
            return self.bare_factor * bare
        if self.key is not None:
            return figures[self.key]
        return self.value if self.value is not None else 0.0


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure (by key) of every side that has it."""

    metric: str
    key: str
    unit: str  # "count", "s", "ms", "/s" or "MB"
    target: Target | None = None
    ratio: bool = True  # print ours / baseline
    bare: bool = False  # the bare reference has this figure too


@dataclass(frozen=True)
class Step:
    """One side's measurement: ``bench.<side>.<function>(**params)`` in a worker.

    ``seed`` (params of ``<side>.seed``) builds a database once, copied for every repetition
    and then ``arm``-ed (params of ``<side>.arm``) just before the measurement, which then
    gets ``spawned_at``: the parent's clock just before it was started.
    """

    side: str  # "ours", "baseline" or "bare"
    function: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: dict[str, Any] | None = None
    arm: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scenario:
    """A scenario (or one size of it) with its steps, run in order each repetition."""

    name: str
    group: str
    title: str
    steps: tuple[Step, ...]
    rows: tuple[Row, ...]
    timeout: float = 300.0  # seconds per worker before the bench gives up


def setup_margin(n: int) -> float:
    """Seconds from set-up start to the due time: building and storing ``n`` tasks takes
    about 0.05 ms each on either side (0.15 ms allowed), plus start-up."""
    return 0.75 + n * 0.00015


def _both(function: str, params: dict[str, Any], **extra: Any) -> tuple[Step, Step]:
    return (Step("ours", function, params, **extra), Step("baseline", function, params, **extra))


def _burst(n: int, *, targets: bool) -> Scenario:
    def goal(target: Target) -> Target | None:
        return target if targets else None

    margin = setup_margin(n)
    ours = {"n": n, "margin": margin, "warm_up": "trivial"}
    return Scenario(
        name=f"burst-{n}",
        group="burst",
        title=f"1. Burst, {n:,} one-time tasks due at once",
        steps=(
            Step("bare", "gather", {"n": n, "warm_up": "trivial"}),
            *_both("burst", ours),
        ),
        rows=(
            Row("runs that ran", "ran", "count", goal(Target("==", n, text=f"{n:,}")), False),
            Row("runs missed", "missed", "count", goal(Target("==", 0, text="0")), False),
            Row(
                "runs dropped (no record)",
                "dropped",
                "count",
                goal(Target("==", 0, text="0")),
                False,
            ),
            Row("dispatch lateness p50 (s)", "dispatch_p50", "s"),
            Row(
                "dispatch lateness p99 (s)",
                "dispatch_p99",
                "s",
                goal(Target("<=", 1.0, text="<= 1 s")),
            ),
            Row("dispatch lateness max (s)", "dispatch_max", "s"),
            Row(
                "last run finished (s after due)",
                "finished",
                "s",
                goal(Target("<=", bare_factor=1.25, text="<= 1.25 x bare")),
                bare=True,
            ),
        ),
        timeout=120 + n * 0.05,
    )


def _workflow(shape: str, n: int) -> Scenario:
    what = f"a {n}-step chain" if shape == "length" else f"a 1 -> {n:,} fan-out"
    return Scenario(
        name=f"workflow-{'chain' if shape == 'length' else 'fanout'}",
        group="workflows",
        title=f"8. Workflows, {what} (tasks after tasks): an upstream's end to its "
        "downstream's start",
        steps=_both("chain", {shape: n, "warm_up": "trivial"}),
        rows=(
            Row("downstream runs due", "expected", "count", ratio=False),
            Row(
                "downstream runs missed",
                "missed",
                "count",
                Target("==", 0, text="0"),
                False,
            ),
            Row("hand-off p50 (ms)", "handoff_p50", "ms"),
            Row("hand-off p99 (ms)", "handoff_p99", "ms", Target("<=", 0.050, text="<= 50 ms")),
            Row("hand-off max (ms)", "handoff_max", "ms"),
        ),
        timeout=120 + n * 0.1,
    )


def _server(quick: bool) -> list[Scenario]:
    # quick: no minute crons (waiting for a minute boundary on both servers was half of the
    # quick run; tests/test_crons_api.py has a '* * * * *' cron fire on both)
    sdk = {"n": 10, "crons": 0} if quick else {"n": 100, "crons": 20}
    load = (
        {"n": 100, "interval": 1.0, "duration": 2.0, "rate": 200, "block": 1.0}
        if quick
        else {"n": 1000, "interval": 10.0, "duration": 20.0, "rate": 200, "block": 2.5}
    )
    half = Target("<=", baseline_factor=0.5, text="<= 0.5 x langgraph dev")
    minute = (
        ()
        if quick
        else (
            Row("run created after the minute p50 (ms)", "minute_p50", "ms"),
            Row(
                "run created after the minute p99 (ms)",
                "minute_p99",
                "ms",
                Target("<=", 0.050, text="<= 50 ms"),
            ),
        )
    )
    return [
        Scenario(
            name="sdk",
            group="server",
            title="9. The LangGraph SDK's crons API, this server against langgraph dev "
            f"(baseline column), {sdk['n']} calls each"
            + (f", {sdk['crons']} crons '* * * * *'" if sdk["crons"] else ""),
            steps=_both("sdk", sdk),
            rows=(
                Row("crons.create median (ms)", "create_p50", "ms", half),
                Row("crons.search median (ms)", "search_p50", "ms", half),
                Row("SDK round trip to a no-op server (ms)", "floor_p50", "ms"),
                Row("crons.create minus that floor (ms)", "create_server", "ms", half),
                Row("crons.search minus that floor (ms)", "search_server", "ms", half),
                *minute,
            ),
            timeout=240,
        ),
        Scenario(
            name="api-load",
            group="server",
            title=f"10. {load['n']:,} interval tasks (every {load['interval']:g} s) while the "
            f"HTTP API serves {load['rate']:g} requests/s ({load['block']:g} s blocks, each "
            "followed by as long a quiet one)",
            steps=(Step("ours", "api_load", load),),
            rows=(
                Row("requests served per second", "served", "/s", ratio=False),
                Row("start lateness p99, no API load (ms)", "quiet_p99", "ms", ratio=False),
                Row(
                    "start lateness p99, with the load (ms)",
                    "loaded_p99",
                    "ms",
                    Target("<=", 0.020, text="<= 20 ms"),
                    ratio=False,
                ),
                Row(
                    "p99 with / without the load",
                    "load_ratio",
                    "count",
                    Target("<=", 1.5, text="<= 1.5"),
                    ratio=False,
                ),
            ),
            timeout=load["duration"] * 2 + 120,
        ),
    ]


def plan(*, quick: bool = False) -> list[Scenario]:
    """Every scenario, with the issue's sizes (or small ones when ``quick``)."""
    sizes = [200] if quick else [1000, 10_000]
    adds = 1000 if quick else 10_000
    steady = (
        {"n": 50, "interval": 1.0, "duration": 2.0, "margin": 1.0}
        if quick
        else {"n": 1000, "interval": 10.0, "duration": 60.0}
    )
    overhead = 500 if quick else 2000
    persisted = 2000 if quick else 100_000
    first = {"due": 100, "step": 0.1}  # (a slow machine's start still meets one within 10 s)
    crowd, sleep = (100, 0.2) if quick else (1000, 1.0)
    seconds = f"{steady['duration']:g} s"
    sleepy = {"n": crowd, "graph": "sleepy", "sleep": sleep, "warm_up": "trivial"}
    due = {**sleepy, "margin": setup_margin(crowd)}
    scenarios = [_burst(n, targets=n == max(sizes)) for n in sizes]
    scenarios += [
        Scenario(
            name="adds",
            group="adds",
            title=f"2. Adding {adds:,} tasks",
            steps=_both("adds", {"n": adds}),
            rows=(
                Row(
                    "one by one (tasks/s)",
                    "one_by_one",
                    "/s",
                    Target(">=", 1000, text=">= 1,000/s"),
                ),
                Row(
                    "add_tasks batch (tasks/s)",
                    "batch",
                    "/s",
                    Target(">=", 10_000, text=">= 10,000/s"),
                ),
            ),
        ),
        Scenario(
            name="steady",
            group="steady",
            title=f"3. Steady state, {steady['n']:,} interval tasks (every "
            f"{steady['interval']:g} s) for {seconds}",
            steps=_both("steady", {**steady, "warm_up": "trivial"}),
            rows=(
                Row(f"runs due in {seconds}", "due", "count", ratio=False),
                Row("runs done", "done", "count", Target("==", key="due", text="= due"), False),
                Row("start lateness p50 (ms)", "start_p50", "ms"),
                Row(
                    "start lateness p99 (ms)",
                    "start_p99",
                    "ms",
                    Target("<=", 0.020, text="<= 20 ms"),
                ),
                Row("start lateness max (ms)", "start_max", "ms"),
            ),
            timeout=steady["duration"] + 120,
        ),
        Scenario(
            name="overhead",
            group="overhead",
            title=f"4. Overhead, {overhead:,} runs of the trivial graph, 100 at a time",
            steps=(
                Step("bare", "loop", {"n": overhead, "concurrency": 100, "warm_up": "trivial"}),
                *_both(
                    "burst", {"n": overhead, "margin": setup_margin(overhead), "warm_up": "trivial"}
                ),
            ),
            rows=(
                Row("runs that ran", "ran", "count", ratio=False),
                Row(
                    "runs per second (due time to last end)",
                    "rate",
                    "/s",
                    Target(">=", bare_factor=0.8, text=">= 0.8 x bare"),
                    bare=True,
                ),
            ),
        ),
        Scenario(
            name="checkpointer",
            group="checkpointer",
            title=f"7. Overhead with the injected checkpointer, {overhead:,} runs of the trivial "
            "graph, 100 at a time",
            steps=(
                Step(
                    "bare",
                    "loop",
                    {
                        "n": overhead,
                        "concurrency": 100,
                        "warm_up": "trivial",
                        "checkpointer": True,
                    },
                ),
                Step(
                    "ours",
                    "burst",
                    {
                        "n": overhead,
                        "margin": setup_margin(overhead),
                        "warm_up": "trivial",
                        "inject": True,
                    },
                ),
            ),
            rows=(
                Row("runs that ran", "ran", "count", ratio=False),
                Row(
                    "runs per second (due time to last end)",
                    "rate",
                    "/s",
                    Target(">=", bare_factor=0.9, text=">= 0.9 x bare"),
                    ratio=False,
                    bare=True,
                ),
            ),
        ),
        Scenario(
            name="persisted",
            group="persisted",
            title=f"5. {persisted:,} persisted tasks, process start to first firing",
            steps=_both(
                "persisted",
                {"expected": persisted},
                seed={"n": persisted - first["due"]},
                arm=first,
            ),
            rows=(
                Row(
                    "first firing after spawn, imports included (s)",
                    "first_firing",
                    "s",
                    Target("<=", 3.0, text="<= 3 s"),
                ),
                Row(
                    "list_tasks() / get_jobs() (s)",
                    "list",
                    "s",
                    Target("<=", baseline_factor=1.0, text="<= 1.0 x recipe"),
                ),
                Row(
                    "peak RSS (MB)",
                    "rss",
                    "MB",
                    Target("<=", baseline_factor=1.1, text="<= 1.1 x recipe"),
                ),
            ),
        ),
        Scenario(
            name="concurrency",
            group="concurrency",
            title=f"6. Concurrency, {crowd:,} runs of a graph awaiting {sleep:g} s, due at once",
            steps=(
                Step("bare", "gather", sleepy),
                Step("ours", "burst", {**due, "max_concurrent_runs": crowd}),
                Step("baseline", "burst", due),
            ),
            rows=(
                Row("runs that ran", "ran", "count", ratio=False),
                Row(
                    "all finished (s after due)",
                    "finished",
                    "s",
                    Target("<=", bare_factor=1.2, text="<= 1.2 x bare"),
                    bare=True,
                ),
            ),
        ),
        _workflow("length", 20 if quick else 100),
        _workflow("fanout", 100 if quick else 1000),
        *_server(quick),
        _million(quick, first, database="SQLite"),
        _million(quick, first, database="PostgreSQL"),
        *_workers(quick),
    ]
    return scenarios


def _workers(quick: bool) -> list[Scenario]:
    """13 / 14: a scheduling leader and worker processes on PostgreSQL."""
    cpu_runs, burst = (60, 300) if quick else (400, 10_000)
    return [
        Scenario(
            name="workers-cpu",
            group="workers",
            title=f"13. {cpu_runs} runs of a graph burning 20 ms of CPU each, 1 vs 2 workers "
            "(2 runs in flight per worker; PostgreSQL, a leader beside them)",
            steps=(Step("ours", "workers_cpu", {"n": cpu_runs, "cpu_ms": 20, "concurrency": 2}),),
            rows=(
                Row("runs/s with 1 worker", "one_rate", "/s", ratio=False),
                Row("runs/s with 2 workers", "two_rate", "/s", ratio=False),
                Row("workers that ran some (of 2)", "two_workers_used", "count", ratio=False),
                Row(
                    "2 workers / 1 worker (throughput)",
                    "speedup",
                    "count",
                    Target(">=", 1.7, text=">= 1.7 x"),
                    False,
                ),
            ),
            timeout=900,
        ),
        Scenario(
            name="workers-burst",
            group="workers",
            title=f"14. {burst:,} one-time tasks due at once on PostgreSQL, a leader and 2 workers",
            steps=(Step("ours", "workers_burst", {"n": burst, "workers": 2}),),
            rows=(
                Row(
                    "runs that ran", "ran", "count", Target("==", burst, text=f"= {burst:,}"), False
                ),
                Row("missed or lost", "missed", "count", Target("==", 0, text="= 0"), False),
                Row("dispatch lateness p50 (s)", "dispatch_p50", "s", ratio=False),
                Row(
                    "dispatch lateness p99 (s)",
                    "dispatch_p99",
                    "s",
                    Target("<=", 1.0, text="<= 1 s"),
                    False,
                ),
                Row("start lateness p99 (s)", "start_p99", "s", ratio=False),
                Row("all finished (s after due)", "finished", "s", ratio=False),
                Row("workers that ran some", "workers_used", "count", ratio=False),
            ),
            timeout=900,
        ),
    ]


def _million(quick: bool, first: dict[str, Any], *, database: str) -> Scenario:
    """11 / 12: a million persisted tasks, the scheduler's own memory (no list of them)."""
    n = 5000 if quick else 1_000_000
    seed: dict[str, Any] = {"n": n - first["due"]}
    if database == "PostgreSQL":
        seed["url"] = postgres_url()
    number = 11 if database == "SQLite" else 12
    return Scenario(
        name=f"million-{database.lower()}",
        group="million",
        title=f"{number}. {n:,} persisted tasks on {database}, process start to first firing "
        f"and {first['due']} runs",
        steps=(
            Step(
                "ours",
                "persisted",
                {"expected": n, "listing": False, "armed": first["due"]},
                seed=seed,
                arm=first,
            ),
        ),
        rows=(
            Row(
                "first firing after spawn, imports included (s)",
                "first_firing",
                "s",
                Target("<=", 3.0, text="<= 3 s"),
                False,
            ),
            Row(
                "armed runs that ran",
                "ran",
                "count",
                Target("==", first["due"], text=f"= {first['due']}"),
                False,
            ),
            Row("peak RSS (MB)", "rss", "MB", Target("<=", 400, text="<= 400 MB"), False),
        ),
        timeout=600,
    )
