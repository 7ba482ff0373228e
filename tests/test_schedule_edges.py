"""Schedules at their edges, through the real CLI (``python -m scheduler``) on a real SQLite
file: what a new user writes and what ``next`` / ``show`` then say."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.test_cli import Cli

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 10 * * sat-sun", {"Sat", "Sun"}),
        ("0 10 * * FRI-SUN", {"Fri", "Sat", "Sun"}),
        ("0 10 * * 5-0", {"Fri", "Sat", "Sun"}),
        ("0 10 * * mon-sun", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_a_weekday_range_may_end_on_sunday(cli: Cli, expression: str, days: set[str]) -> None:
    """``sat-sun`` was refused as running backwards ("write the lower value first"): the
    advice, followed, gives ``sun-sat``, every day. Sunday ends a range as 7 (Friday to
    Sunday), as the README's ``MON``..``SUN`` and other cron readers (croniter) have it."""
    count = 2 * len(days)  # two weeks' worth, whatever day the test runs on
    shown = cli.json("next", expression, "--count", str(count), "--tz", "Europe/London")
    fired = [datetime.fromisoformat(t).strftime("%a") for t in shown["times"]]
    assert len(fired) == count and set(fired) == days
    added = cli("add", "--id", "weekend", "--schedule", expression, "--prompt", "p")
    assert added.stdout.startswith("added weekend: At 10:00")
    assert cli.json("show", "weekend")["definition"]["cron_expression"] == expression


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("0 9 * * 5#2", "day of week '5#2'"),
        ("0 9 ? * MON", "day of month '?'"),
        ("0 9 L * *", "day of month 'L'"),
        ("0 9 15W * *", "day of month '15W'"),
        ("0 9 * * 5L", "day of week '5L'"),
    ],
)
def test_extended_cron_syntax_is_refused_as_cron_naming_the_field(
    cli: Cli, schedule: str, says: str
) -> None:
    """Quartz-style ``#``, ``?``, ``L`` and ``W`` (what other schedulers take) were refused as
    "not a schedule this parser understands" (``#``, ``?``) or named lowercased (``'l'``),
    without saying that standard cron has no such thing."""
    for command in (
        ("next", schedule),
        ("add", "--id", "t", "--schedule", schedule, "--prompt", "p"),
    ):
        error = cli.fails(*command)
        assert f"invalid cron expression: {says}" in error, error
        assert "not standard cron" in error, error
    assert cli.json("list") == []


@pytest.mark.parametrize(
    ("line", "column"),
    [("schedule: */5 * * * *", 14), ("cron_expression: * * * * *", 21), ("schedule: @daily", 13)],
)
def test_an_unquoted_cron_in_a_tasks_file_says_to_quote_it(
    cli: Cli, line: str, column: int
) -> None:
    """YAML reads a value starting with ``*`` as an alias and refuses ``@``: the most common
    way to write a cron in a tasks file got PyYAML's "while scanning an alias; expected
    alphabetic or numeric character, but found '/'", with no word of what to do."""
    (cli.workdir / "tasks.yaml").write_text(f"- id: t\n  prompt: p\n  {line}\n")
    for command in ("validate", "apply"):
        error = cli(command, "tasks.yaml", status=2).stderr
        assert f"(line 3, column {column})" in error, error
        value = line.split(": ", 1)[1]
        assert f"""quote a value that starts with '*' or '@': '{value}'""" in error, error
    assert cli.json("list") == []


def test_apply_json_of_a_file_with_problems_prints_them_as_json(cli: Cli) -> None:
    """``validate --json`` printed ``{"valid": false, "problems": [...]}``, but ``apply
    --json`` printed nothing on stdout: its problems were text lines on stderr, which a
    script (README: "scripts never parse text") could not read."""
    tasks = cli.workdir / "tasks.yaml"
    tasks.write_text("- id: a\n  prompt: p\n  schedule: 0 9 * * 1-9\n")
    done = cli("apply", "tasks.yaml", "--json", status=2)
    report = json.loads(done.stdout)
    assert report == {
        "file": "tasks.yaml",
        "applied": False,
        "problems": [
            "tasks.yaml:3: entry 1 (id 'a'): schedule '0 9 * * 1-9': invalid cron expression: "
            "day of week 9 is out of range 0-7"
        ],
    }
    assert done.stderr == "error: 1 problem(s) in tasks.yaml; nothing was applied\n"
    assert cli.json("list") == []
    tasks.write_text("- id: a\n  prompt: p\n  schedule: 0 9 * * 1-5\n")
    assert cli.json("apply", "tasks.yaml")["added"] == ["a"]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SCHEDULER_TIMEZONE", "Mars/Base", "SCHEDULER_TIMEZONE: unknown time zone 'Mars/Base'"),
        (
            "SCHEDULER_MAX_RETRIES",
            "three",
            "SCHEDULER_MAX_RETRIES: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_setting_names_its_variable(cli: Cli, variable: str, value: str, says: str) -> None:
    """A bad ``SCHEDULER_*`` value was named as the field (``error: timezone: unknown time
    zone 'Mars/Base'``), even for ``next ... --tz UTC``, whose own zone was fine, and
    ``max_retries`` is a task's field and an ``add`` flag too: nothing said where to look."""
    cli.env[variable] = value
    for command in (("next", "daily", "--tz", "UTC"), ("list",), ("add", "--id", "a")):
        assert cli.fails(*command).startswith(f"error: {says}")
    service = subprocess.run(
        [PYTHON, str(ROOT / "main.py")],
        cwd=cli.workdir, env=cli.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert service.returncode == 2
    assert service.stderr.startswith(f"error: {says}"), service.stderr
    assert len(service.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--input", "--context", "--metadata"])
def test_a_json_flag_with_a_key_given_twice_is_refused(cli: Cli, flag: str) -> None:
    """``--metadata '{"a": 1, "a": 2}'`` kept the last value without a word, while the same
    object in a tasks file or ``add --file`` is refused ("the key 'a' is given twice")."""
    value = '{"messages": [], "a": 1, "a": 2}'
    error = cli.fails("add", "--id", "t", "--schedule", "daily", "--prompt", "p", flag, value)
    assert f"{flag}: the value: not valid JSON: the key 'a' is given twice" in error, error
    assert cli.json("list") == []
    error = cli.fails("answer", "0" * 24, value)
    assert "the key 'a' is given twice" in error, error
