"""The shipped systemd unit runs main.py, stops it with SIGTERM, and waits long enough; a
program that starts the scheduler in the background keeps its own logging."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
from pathlib import Path

from scheduler import RunStatus, Settings, TaskScheduler
from tests.conftest import ROOT, Output, default_sigint


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


def test_a_second_ctrl_c_while_the_background_scheduler_stops_cancels_its_runs(
    tmp_path: Path,
) -> None:
    """A program with the scheduler in the background, stopped at exit after a Ctrl+C,
    waits for its runs up to the grace; a second Ctrl+C there (``timeout`` sends one to the
    process and one to its group) ended in "Exception ignored in threading._shutdown ...
    KeyboardInterrupt" and left the run to be recorded interrupted at the next start. It
    cancels the runs still going now, as ``serve``'s second signal does."""
    program = tmp_path / "loop.py"
    program.write_text(
        "import time\n"
        "from scheduler import TaskDefinition\n"
        "from scheduler.service import start_in_background\n"
        "service = start_in_background(graph='tests.prompt_graphs:graph', tasks_file=None)\n"
        "service.scheduler.add_task(TaskDefinition(id='long', interval_seconds=3600,"
        " prompt='sleep:60'))\n"
        "service.scheduler.run_task_now('long')\n"
        "try:\n"
        "    while True:\n"
        "        time.sleep(0.1)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    env.update(PYTHONPATH=str(ROOT), SCHEDULER_DB_PATH=str(tmp_path / "s.db"),
               SCHEDULER_STOP_GRACE_SECONDS="60", SCHEDULER_LOG_LEVEL="INFO")  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, str(program)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    output = Output(process, process.stderr)
    try:
        for wanted in (" started \\(", "waiting up to 60.0 s"):  # then a Ctrl+C, each time
            output.wait_for(wanted)
            process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
        output.close()
    text = output.text
    assert process.returncode == 0, text
    assert "Exception ignored" not in text and "Traceback" not in text, text
    assert "cancelling the runs still going" in text
    scheduler = TaskScheduler(db_path=tmp_path / "s.db", graph=object())
    try:
        [run] = scheduler.list_runs("long")
        assert run.status is RunStatus.CANCELLED, text
    finally:
        scheduler.close()
