"""The shipped systemd unit runs main.py, stops it with SIGTERM, and waits long enough; a
program that starts the scheduler in the background keeps its own logging."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

from scheduler import Settings
from tests.conftest import ROOT


def test_systemd_unit_runs_main_py_and_stops_it_gracefully() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "langgraph-scheduler.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/.venv/bin/python main.py")
    assert service["WorkingDirectory"].startswith("%h/")
    assert service["KillSignal"] == "SIGTERM"
    grace = Settings(_env_file=None).stop_grace_seconds
    assert float(service["TimeoutStopSec"]) > grace
    assert unit["Install"]["WantedBy"] == "default.target"
    text = (ROOT / "deploy" / "langgraph-scheduler.service").read_text()
    assert text.count("# EDIT") == 3


def test_a_program_that_starts_the_scheduler_then_configures_logging_keeps_its_own(
    tmp_path: Path,
) -> None:
    """The scaffolded block runs before the program's own ``logging.basicConfig``: that
    still takes effect (format, level, file), and the scheduler's lines go there too."""
    program = tmp_path / "app.py"
    program.write_text(
        "import logging\n"
        "from scheduler.service import start_in_background\n"
        "service = start_in_background(graph='tests.prompt_graphs:graph', "
        "database_url='sqlite://', tasks_file=None)\n"
        "logging.getLogger('scheduler').info('before the program configured logging')\n"
        "logging.basicConfig(level=logging.DEBUG, format='MYAPP %(name)s %(message)s', "
        "filename='app.log')\n"
        "logging.getLogger('myapp').debug('debug line from my app')\n"
        "service.stop()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    done = subprocess.run(
        [sys.executable, str(program)], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "app.log").read_text()
    assert "MYAPP myapp debug line from my app" in log
    assert "MYAPP scheduler.task_scheduler scheduler stopped" in log  # the scheduler's, there
    assert "before the program configured logging" in done.stderr  # until then, on stderr
    assert "scheduler stopped" not in done.stderr  # not twice
