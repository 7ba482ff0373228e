"""Tests for scheduler.wording: schedules said in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset
from typing import Any

import pytest

from scheduler.schedules import parse_schedule
from scheduler.wording import describe
from tests.unit.test_schedules import ACCEPTED, CRON, INTERVAL, NOW, ONE_TIME, PARIS

DESCRIBED: list[tuple[dict[str, Any], str]] = [
    (
        {"cron_expression": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        "At 09:00, Monday through Friday (Europe/Paris)",
    ),
    ({"cron_expression": "30 8 * * 1"}, "At 08:30, on Monday (UTC)"),
    ({"cron_expression": "0 17 * * 1,5"}, "At 17:00, on Monday and Friday (UTC)"),
    ({"cron_expression": "0 0 * * *"}, "At 00:00, every day (UTC)"),
    ({"cron_expression": "@daily"}, "At 00:00, every day (UTC)"),
    ({"cron_expression": "*/15 * * * *"}, "Every 15 minutes (UTC)"),
    ({"cron_expression": "* * * * *"}, "Every minute (UTC)"),
    ({"cron_expression": "0 * * * *"}, "Every hour, at minute 0 (UTC)"),
    ({"cron_expression": "0 */2 * * *"}, "Every 2 hours, at minute 0 (UTC)"),
    ({"cron_expression": "15,45 * * * *"}, "Every hour, at minutes 15 and 45 (UTC)"),
    ({"cron_expression": "0 0 1 * *"}, "At 00:00, on day 1 of the month (UTC)"),
    ({"cron_expression": "0 9 1,15 * *"}, "At 09:00, on days 1 and 15 of the month (UTC)"),
    ({"cron_expression": "0 9 13 * 5"}, "At 09:00, on day 13 of the month or on Friday (UTC)"),
    ({"cron_expression": "0 10 * * 0,6"}, "At 10:00, on Saturday and Sunday (UTC)"),
    ({"cron_expression": "0 9,17 * * *"}, "At 09:00 and 17:00, every day (UTC)"),
    ({"cron_expression": "0 9 * 3-5 *"}, "At 09:00, every day, in March through May (UTC)"),
    (
        {"cron_expression": "*/15 9-17 * * 1-5", "timezone": "America/New_York"},
        "Every 15 minutes from 09:00 to 17:45, Monday through Friday (America/New_York)",
    ),
    ({"cron_expression": "*/7 * * * *"}, "Cron '*/7 * * * *' (UTC)"),
    ({"cron_expression": "0 9 */2 * 1"}, "Cron '0 9 */2 * 1' (UTC)"),
    ({"cron_expression": "0-5 9 * * *"}, "Cron '0-5 9 * * *' (UTC)"),
    ({"interval_seconds": 300}, "Every 5 minutes"),
    ({"interval_seconds": 90}, "Every 90 seconds"),
    ({"interval_seconds": 3600}, "Every hour"),
    ({"interval_seconds": 7200}, "Every 2 hours"),
    ({"interval_seconds": 86400}, "Every day"),
    ({"interval_seconds": 1209600}, "Every 2 weeks"),
    ({"interval_seconds": 1}, "Every second"),
    ({"interval_seconds": 1.5}, "Every 1.5 seconds"),
    ({"interval_seconds": 3600.0}, "Every hour"),
    (
        {"run_at": datetime(2026, 3, 15, 14, tzinfo=PARIS)},
        "Once at 2026-03-15 14:00 (Europe/Paris)",
    ),
    (
        {"run_at": datetime(2026, 3, 15, 13, tzinfo=UTC), "timezone": "Europe/Paris"},
        "Once at 2026-03-15 14:00 (Europe/Paris)",
    ),
    ({"run_at": datetime(2026, 3, 15, 14, 0, 30)}, "Once at 2026-03-15 14:00:30 (UTC)"),
    (
        {"run_at": datetime(2026, 3, 15, 14, tzinfo=fixed_offset(timedelta(hours=1)))},
        "Once at 2026-03-15 14:00 (UTC+01:00)",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), DESCRIBED)
def test_describe(fields: dict[str, Any], expected: str) -> None:
    task_type = ONE_TIME if "run_at" in fields else INTERVAL
    task_type = CRON if "cron_expression" in fields else task_type
    assert describe(task_type, **fields) == expected


def test_describe_needs_the_field_of_its_type() -> None:
    with pytest.raises(ValueError, match="a cron schedule needs cron_expression"):
        describe("cron", interval_seconds=60)


@pytest.mark.parametrize("text", [text for text, _, _ in ACCEPTED])
def test_every_parsed_schedule_can_be_described(text: str) -> None:
    parsed = parse_schedule(text, now=NOW, timezone="UTC")
    sentence = describe(
        parsed.task_type,
        cron_expression=parsed.cron_expression,
        interval_seconds=parsed.interval_seconds,
        run_at=parsed.run_at,
    )
    assert sentence
    assert not sentence.startswith("Cron '")
