"""Changes made through the CLI reach a running ``python main.py`` without a restart, and
SIGTERM stops it gracefully."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.test_cli import Cli

pytestmark = pytest.mark.slow


def count_runs(db: Path, task_id: str, status: str = "succeeded") -> int:
    connection = sqlite3.connect(db, timeout=10)
    try:
        query = "SELECT COUNT(*) FROM scheduler_runs WHERE task_id = ? AND status = ?"
        return int(connection.execute(query, (task_id, status)).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the process has not created its tables yet
    finally:
        connection.close()


def wait_until(check: object, timeout: float, message: str) -> float:
    """Seconds it took until ``check()`` was true."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {message}")
        time.sleep(0.05)
    return time.monotonic() - started


def test_cli_changes_reach_a_running_main_py(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    log: list[str] = []
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "main.py")],
        cwd=tmp_path,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("scheduler running" in line for line in log), 30, "start")
        cli("add", "--id", "tick", "--schedule", "every 1 second", "--prompt", "tick")
        took = wait_until(lambda: count_runs(cli.db, "tick") >= 1, 10, "first firing")
        assert took <= 3.0, f"first firing took {took:.1f} s"
        assert any("task tick run" in line and "succeeded" in line for line in log)

        cli("pause", "tick")
        time.sleep(1.0)  # let the pause reach it (poll interval 0.5 s) and a run in flight end
        paused_count = count_runs(cli.db, "tick")
        time.sleep(2.5)
        assert count_runs(cli.db, "tick") == paused_count, "a paused task fired"

        cli("resume", "tick")
        wait_until(lambda: count_runs(cli.db, "tick") > paused_count, 3, "resumed firing")

        cli("add", "--id", "later", "--schedule", "@yearly", "--prompt", "later")
        cli("run", "later")
        wait_until(lambda: count_runs(cli.db, "later") == 1, 3, "run now from the CLI")

        cli("edit", "tick", "--schedule", "every 1 hour")
        time.sleep(1.0)
        edited_count = count_runs(cli.db, "tick")
        time.sleep(2.0)
        assert count_runs(cli.db, "tick") == edited_count, "the edit did not take effect"

        cli("remove", "tick", "--yes")
        assert "tick" not in {t["id"] for t in cli.json("list")}
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        reader.join(timeout=5)
        assert process.stdout is not None
        process.stdout.close()
    text = "".join(log)
    assert status == 0, text
    assert "SIGTERM received: stopping gracefully" in text
    assert "scheduler stopped" in text
    assert "Traceback" not in text


def test_serve_command_runs_the_scheduler_until_sigterm(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (tmp_path / "tasks.yaml").write_text("- id: hello\n  schedule: every 1 second\n  prompt: hi\n")
    env = {**cli.env, "SCHEDULER_TASKS_FILE": "tasks.yaml"}
    process = subprocess.Popen(
        [PYTHON, "-m", "scheduler", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: count_runs(cli.db, "hello") >= 1, 30, "a firing of the file's task")
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        assert process.stderr is not None
        log = process.stderr.read()
        process.stderr.close()
    assert status == 0, log
    assert "applied tasks.yaml: 1 added" in log
