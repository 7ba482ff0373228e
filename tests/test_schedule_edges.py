"""Schedules at their edges, through the real CLI (``python -m scheduler``) on a real SQLite
file: what a new user writes and what ``next`` / ``show`` then say."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

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
