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
