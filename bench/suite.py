"""Running the scenarios: one fresh worker process per side, scenario and repetition.

Each worker gets its own scratch directory (and database), so memory, event loop and module
state never carry over. Sides run one after the other, never together, and alternate within
each repetition so that a change in machine load reaches every side alike. Progress goes to
stderr; any worker that fails or overruns its time stops the bench with :class:`BenchError`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import Result
from bench.pg import fresh_schema, with_schema
from bench.scenarios import Scenario, Step

__all__ = ["ROOT", "BenchError", "Outcome", "run_scenarios"]

ROOT = Path(__file__).resolve().parent.parent
_LOG_TAIL = 30


class BenchError(RuntimeError):
    """A figure could not be measured; the bench prints this instead of a table."""


@dataclass
class Outcome:
    """Every repetition's figures of one scenario, by side."""

    scenario: Scenario
    figures: dict[str, list[Result]] = field(default_factory=dict)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _environment() -> dict[str, str]:
    """The caller's environment without ``SCHEDULER_*`` settings, with the project on the
    path (the workers import ``bench`` and ``scheduler`` from it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-_LOG_TAIL:]) or "(no output)"


def run_worker(
    name: str,
    params: dict[str, Any],
    *,
    workdir: Path,
    timeout: float,
    stamp: bool = False,
) -> Result:
    """Run measurement ``name`` in a new interpreter; return its figures.

    ``stamp`` adds ``spawned_at``: this process's clock just before the worker is started.

    Raises:
        BenchError: The worker failed, overran ``timeout``, or wrote no figures.
    """
    out, log = workdir / f"{name}.json", workdir / f"{name}.log"
    if stamp:
        params = {**params, "spawned_at": time.time()}
    command = [
        sys.executable,
        "-m",
        "bench.worker",
        name,
        "--dir",
        str(workdir),
        "--out",
        str(out),
        "--params",
        json.dumps(params),
    ]
    with log.open("wb") as output:
        try:
            done = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=_environment(),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{name} {params} did not finish within {timeout:g} s; last lines of its "
                f"log:\n{_tail(log)}"
            ) from None
    if done.returncode != 0 or not out.exists():
        raise BenchError(
            f"{name} {params} failed (exit status {done.returncode}); last lines of its "
            f"log:\n{_tail(log)}"
        )
    figures: Result = json.loads(out.read_text())
    return figures


class _Templates:
    """Seeded databases, built once per side and copied for every repetition."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[str, Path] = {}

    def seed_server(self, scenario: Scenario, step: Step) -> str:
        """Seed the database at ``step.seed["url"]`` (a fresh schema) once; its URL."""
        assert step.seed is not None
        url = str(step.seed["url"])
        if f"{scenario.name}-{step.side}" not in self._built:
            seed = {k: v for k, v in step.seed.items() if k != "url"}
            self._seed(scenario, step, seed, lambda _: fresh_schema(url), scenario.timeout * 4)
        return with_schema(url)

    def _seed(
        self,
        scenario: Scenario,
        step: Step,
        seed: dict[str, Any],
        database: Callable[[Path], str],
        timeout: float,
    ) -> Path:
        """Run ``<side>.seed`` once into ``database(workdir)``; returns the database's path
        in the template directory (unused for a server's database)."""
        key = f"{scenario.name}-{step.side}"
        workdir = self._root / f"template-{key}"
        workdir.mkdir()
        template = workdir / "tasks.db"
        began = time.monotonic()
        run_worker(
            f"{step.side}.seed",
            {**seed, "db": database(template)},
            workdir=workdir,
            timeout=timeout,
        )
        _progress(
            f"[{scenario.name}] {step.side}: database of {seed['n']:,} tasks built "
            f"once in {time.monotonic() - began:.1f} s"
        )
        self._built[key] = template
        return template

    def copy(self, scenario: Scenario, step: Step, target: Path) -> None:
        assert step.seed is not None
        key = f"{scenario.name}-{step.side}"
        template = self._built.get(key)
        if template is None:
            template = self._seed(scenario, step, step.seed, str, scenario.timeout * 2)
        for suffix in ("", "-wal", "-shm"):
            source = template.with_name(template.name + suffix)
            if source.exists():
                shutil.copyfile(source, target.with_name(target.name + suffix))


def _measure(
    scenario: Scenario, step: Step, *, root: Path, rep: int, templates: _Templates
) -> Result:
    workdir = root / f"{scenario.name}-{step.side}-{rep}"
    workdir.mkdir()
    params = dict(step.params)
    stamp = False
    if step.seed is not None:
        if "url" in step.seed:  # a database server's: seeded once, then used as it is
            params["db"] = templates.seed_server(scenario, step)
        else:
            db = workdir / "tasks.db"
            templates.copy(scenario, step, db)
            params["db"] = str(db)
        if step.arm is not None:
            run_worker(
                f"{step.side}.arm",
                {**step.arm, "db": params["db"]},
                workdir=workdir,
                timeout=scenario.timeout,
            )
        stamp = True
    figures = run_worker(
        f"{step.side}.{step.function}",
        params,
        workdir=workdir,
        timeout=scenario.timeout,
        stamp=stamp,
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return figures


def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    repeat: int,
    progress: Callable[[str], None] = _progress,
) -> list[Outcome]:
    """Run every scenario ``repeat`` times; return the figures of every repetition."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        root = Path(scratch)
        templates = _Templates(root)
        for scenario in scenarios:
            outcome = Outcome(scenario)
            for rep in range(1, repeat + 1):
                for step in scenario.steps:
                    began = time.monotonic()
                    figures = _measure(scenario, step, root=root, rep=rep, templates=templates)
                    outcome.figures.setdefault(step.side, []).append(figures)
                    progress(
                        f"[{scenario.name}] {step.side} rep {rep}/{repeat}: "
                        f"{time.monotonic() - began:.1f} s"
                    )
            outcomes.append(outcome)
    return outcomes
