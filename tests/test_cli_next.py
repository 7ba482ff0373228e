"""``python -m scheduler next`` of a one-time time that has passed: refused as ``add``
refuses it, on the test clock (the command in process, the now ``add`` reads a schedule
against) and in a subprocess (a time of today that has always passed)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.cli import main as cli_main
from scheduler.schedules import VALIDATION_CLOCK
from scheduler.testing import TestClock
from tests.conftest import PYTHON, ROOT

# 10:00 in Paris (09:00 UTC)
TEN_IN_PARIS = "2030-01-01T09:00:00+00:00"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClock]:
    """The CLI in process on a SQLite file in ``tmp_path``, with the schedules' now on a
    test clock at :data:`TEN_IN_PARIS`."""
    monkeypatch.chdir(tmp_path)  # (no .env of the project)
    monkeypatch.setenv("SCHEDULER_DB_PATH", str(tmp_path / "scheduler.db"))
    monkeypatch.setenv("SCHEDULER_TASKS_FILE", "none")
    monkeypatch.setenv("SCHEDULER_TIMEZONE", "Europe/Paris")
    clock = TestClock(TEN_IN_PARIS)
    token = VALIDATION_CLOCK.set(lambda: clock.now)
    try:
        yield clock
    finally:
        VALIDATION_CLOCK.reset(token)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        status = cli_main(list(args))
    except SystemExit as exc:  # (an error: one line on stderr)
        status = exc.code if isinstance(exc.code, int) else 1
    done = capsys.readouterr()
    return status, done.out, done.err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_next_of_a_time_that_has_passed_says_so_and_fails_as_add_does(
    cli: TestClock, capsys: pytest.CaptureFixture[str], json_flag: list[str]
) -> None:
    """At 10:00, ``next "today at 09:00"`` printed 09:00 as the next fire time and ended
    with 0, while ``add`` refused the same schedule as not after now (exit 2)."""
    status, out, err = run(capsys, "next", "today at 09:00", *json_flag)
    assert (status, out) == (2, "")
    assert err.strip() == (
        "error: schedule 'today at 09:00': 2030-01-01 09:00+01:00 has passed in Europe/Paris "
        "(it is 2030-01-01 10:00+01:00 there now); add refuses a one-time time that is not "
        "after now"
    )
    added = run(capsys, "add", "--id", "late", "--schedule", "today at 09:00", "--prompt", "p")
    assert added[0] == 2 and "is not after now" in added[2]
    # one hour on, in the schedule's own zone: still to come, listed by both
    status, out, err = run(capsys, "next", "today at 11:00", "--json")
    assert status == 0 and json.loads(out)["times"] == ["2030-01-01T11:00:00+01:00"]
    status, out, _ = run(capsys, "next", "at 2030-01-01 09:30", "--tz", "UTC")
    assert status == 0 and "2030-01-01 09:30:00 UTC" in out
    added = run(capsys, "add", "--id", "soon", "--schedule", "today at 11:00", "--prompt", "p")
    assert added[0] == 0, added


def test_next_of_a_time_of_today_already_past_fails_in_a_subprocess(tmp_path: Path) -> None:
    """The command as people run it: midnight today (UTC) has always passed, whenever the
    test runs."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "SCHEDULER_DB_PATH": str(tmp_path / "scheduler.db"),
        "SCHEDULER_TASKS_FILE": "none",
    }
    done = subprocess.run(
        [PYTHON, "-m", "scheduler", "next", "today at 00:00", "--tz", "UTC"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, ""), done
    assert "has passed in UTC" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "scheduler.db").exists()  # a preview writes nothing
