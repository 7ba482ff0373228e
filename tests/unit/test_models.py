"""TaskDefinition: what it accepts (the classic recipe's fields included) and what it
rejects, each rejection naming the field and the problem."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from scheduler import Settings, TaskDefinition, TaskType

BASE: dict[str, Any] = {"id": "daily-report", "name": "Daily report", "prompt": "Report."}


def build(**fields: Any) -> TaskDefinition:
    return TaskDefinition(**{**BASE, **fields})


def test_classic_recipe_fields_are_accepted() -> None:
    task = TaskDefinition(
        id="health-check",
        name="Health Check",
        task_type=TaskType.INTERVAL,
        enabled=True,
        prompt="Check the status of all monitored services.",
        session_id="ops",
        metadata={"channel": "ops"},
        interval_seconds=300,
        result_callback="tests.callbacks:collect",
    )
    assert task.thread_id == "ops"
    assert task.session_id == "ops"
    assert task.interval_seconds == 300
    assert task.task_type is TaskType.INTERVAL


def test_task_type_is_inferred_from_the_single_schedule_field() -> None:
    assert build(cron_expression="0 9 * * *").task_type is TaskType.CRON
    assert build(interval_seconds=5).task_type is TaskType.INTERVAL
    assert build(run_at=datetime(2030, 1, 1, tzinfo=UTC)).task_type is TaskType.ONE_TIME


def test_name_defaults_to_id_and_input_can_replace_prompt() -> None:
    task = TaskDefinition(id="x", interval_seconds=5, input={"topic": "news"})
    assert task.name == "x"
    assert task.prompt is None
    assert task.input == {"topic": "news"}


def test_naive_datetimes_are_read_in_the_task_timezone() -> None:
    task = build(run_at=datetime(2030, 3, 15, 14, 0), timezone="Europe/Paris")
    assert task.run_at == datetime(2030, 3, 15, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))
    unset = build(run_at=datetime(2030, 3, 15, 14, 0)).with_timezone("America/New_York")
    assert unset.timezone == "America/New_York"
    assert unset.run_at is not None and unset.run_at.utcoffset() is not None


def test_a_naive_run_at_in_a_dst_gap_is_refused_in_the_zone_it_is_read_in() -> None:
    """As the same wall time given as a schedule's text is: in the task's zone, else the
    caller's (a tasks file, the CLI), else the zone the task gets when added."""
    gap, fold = datetime(2026, 3, 8, 2, 30), datetime(2026, 11, 1, 1, 30)
    fields = {**BASE, "run_at": gap}
    with pytest.raises(ValidationError, match=r"run_at 2026-03-08 02:30 does not exist in Am"):
        TaskDefinition.model_validate(fields, context={"timezone": "America/New_York"})
    unset = TaskDefinition.model_validate(fields)  # no zone known yet
    assert unset.run_at == gap
    with pytest.raises(ValidationError, match=r"run_at 2026-03-08 02:30 does not exist in Am"):
        unset.with_timezone("America/New_York")
    assert unset.with_timezone("Europe/Paris").run_at == datetime(2026, 3, 8, 1, 30, tzinfo=UTC)
    repeated = build(run_at=fold, timezone="America/New_York").with_timezone("UTC")
    assert repeated.run_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # its first pass
    stored = json.dumps({**fields, "run_at": gap.isoformat(), "timezone": "America/New_York"})
    from scheduler.models import STORED_CONTEXT_KEY  # a row read back keeps loading

    assert TaskDefinition.model_validate_json(stored, context={STORED_CONTEXT_KEY: True})


def test_definition_round_trips_through_json() -> None:
    task = build(
        cron_expression="0 9 * * 1-5",
        timezone="Europe/Paris",
        metadata={"a": [1, 2]},
        input={"k": "v"},
        start_date=datetime(2030, 1, 1, tzinfo=UTC),
        max_retries=2,
        priority="high",
    )
    again = TaskDefinition.model_validate_json(task.model_dump_json())
    assert again == task
    json.loads(task.model_dump_json())  # plain JSON, nothing pickled


REJECTED = [
    *(
        pytest.param(
            {"id": dots, "interval_seconds": 5},
            "id",
            "not only dots",
            id=f"id {dots}",  # a URL path segment of its own: /api/tasks/.. is /api
        )
        for dots in (".", "..", "...")
    ),
    pytest.param(
        {"cron_expression": "0 25 * * *"},
        "cron_expression",
        "hour 25 is out of range 0-23",
        id="cron out of range",
    ),
    pytest.param(
        {"cron_expression": "not cron"},
        "cron_expression",
        "expected 5 fields",
        id="cron unparsable",
    ),
    pytest.param(
        {"cron_expression": "0 9 * * 8"},
        "cron_expression",
        "day of week 8 is out of range 0-7",
        id="weekday 8",
    ),
    pytest.param(
        {"task_type": "cron", "interval_seconds": 60},
        "interval_seconds",
        "does not apply to task_type 'cron'",
        id="field of another type",
    ),
    pytest.param(
        {"task_type": "cron"},
        "cron_expression",
        "required when task_type is 'cron'",
        id="cron missing",
    ),
    pytest.param(
        {"task_type": "interval"},
        "interval_seconds",
        "required when task_type is 'interval'",
        id="interval missing",
    ),
    pytest.param(
        {"task_type": "one_time"},
        "run_at",
        "required when task_type is 'one_time'",
        id="run_at missing",
    ),
    *(
        pytest.param(
            {"run_at": wall, "timezone": "America/New_York"},
            "run_at",
            "run_at 2026-03-08 02:30 does not exist in America/New_York (DST gap)",
            id=f"run_at in a DST gap ({type(wall).__name__})",  # it was moved to 03:30
        )
        for wall in (datetime(2026, 3, 8, 2, 30), "2026-03-08T02:30")
    ),
    pytest.param(
        {"task_type": "one_time", "run_at": "2030-01-01T00:00:00Z", "cron_expression": "* * * * *"},
        "cron_expression",
        "does not apply",
        id="two schedules",
    ),
    pytest.param({"interval_seconds": 0}, "interval_seconds", "at least 0.001", id="interval zero"),
    pytest.param(
        {"interval_seconds": -5}, "interval_seconds", "at least 0.001", id="interval negative"
    ),
    pytest.param(
        {"interval_seconds": 5, "timezone": "Mars/Olympus"},
        "timezone",
        "unknown time zone 'Mars/Olympus'",
        id="unknown timezone",
    ),
    pytest.param(
        {"interval_seconds": 5, "prompt": "   "}, "prompt", "prompt is empty", id="blank prompt"
    ),
    pytest.param(
        {"interval_seconds": 5, "prompt": None},
        "prompt",
        "a prompt is required",
        id="no prompt nor input",
    ),
    pytest.param({"interval_seconds": 5, "id": ""}, "id", "1-128 characters", id="empty id"),
    pytest.param(
        {"interval_seconds": 5, "id": "x" * 129}, "id", "1-128 characters", id="id too long"
    ),
    pytest.param(
        {"interval_seconds": 5, "id": "has space"}, "id", "got 'has space'", id="id with space"
    ),
    pytest.param({"interval_seconds": 5, "id": "a/b"}, "id", "got 'a/b'", id="id with slash"),
    pytest.param(
        {"interval_seconds": 5, "metadata": {"when": datetime(2030, 1, 1)}},
        "metadata",
        "JSON-serialisable",
        id="metadata not json",
    ),
    pytest.param(
        {"interval_seconds": 5, "metadata": {"x": float("nan")}},
        "metadata",
        "JSON-serialisable",
        id="metadata nan",
    ),
    pytest.param(
        {"interval_seconds": 5, "input": {"obj": object()}},
        "input",
        "JSON-serialisable",
        id="input not json",
    ),
    pytest.param(
        {
            "interval_seconds": 5,
            "start_date": "2030-01-02T00:00:00Z",
            "end_date": "2030-01-01T00:00:00Z",
        },
        "end_date",
        "is before start_date",
        id="end before start",
    ),
    pytest.param(
        {"interval_seconds": 5, "result_callback": "not a path!"},
        "result_callback",
        "is not a dotted path",
        id="callback syntax",
    ),
    pytest.param(
        {"run_at": "2030-01-01T00:00:00Z", "jitter_seconds": 5},
        "task",
        "applies to cron and interval tasks",
        id="jitter on one_time",
    ),
    pytest.param(
        {"interval_seconds": 5, "thread_id": "a", "session_id": "b"},
        "task",
        "differ",
        id="thread and session differ",
    ),
    pytest.param(
        {"interval_seconds": 5, "unknown_field": 1},
        "unknown_field",
        "Extra inputs are not permitted",
        id="unknown field",
    ),
    pytest.param(
        {"interval_seconds": 5, "max_retries": -1},
        "max_retries",
        "greater than or equal to 0",
        id="negative retries",
    ),
    pytest.param(
        {"interval_seconds": 5, "priority": "asap"},
        "priority",
        "'urgent', 'high', 'medium' or 'low'",
        id="bad priority",
    ),
]


# Numbers must be finite, numbers (not booleans) and inside their documented bounds; texts
# and JSON values have size limits. Each is refused when the model is built.
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]
BOUNDS = [
    ({"interval_seconds": float("nan")}, "interval_seconds", "must be a finite number, got nan"),
    ({"interval_seconds": float("inf")}, "interval_seconds", "must be a finite number, got inf"),
    ({"interval_seconds": -float("inf")}, "interval_seconds", "finite number"),
    ({"interval_seconds": 1e20}, "interval_seconds", "at most 316,224,000 s (3660 days)"),
    ({"interval_seconds": 10**40}, "interval_seconds", "got about 10^40"),
    ({"interval_seconds": True}, "interval_seconds", "must be a number, got a boolean"),
    ({"interval_seconds": "5"}, "interval_seconds", "must be a number, got text '5'"),
    ({"interval_seconds": 1e-9}, "interval_seconds", "at least 0.001"),
    ({"interval_seconds": 5, "timeout_seconds": float("nan")}, "timeout_seconds", "finite number"),
    ({"interval_seconds": 5, "timeout_seconds": 0}, "timeout_seconds", "greater than 0"),
    ({"interval_seconds": 5, "timeout_seconds": 1e9}, "timeout_seconds", "or equal to 31622400"),
    ({"interval_seconds": 5, "retry_delay_seconds": False}, "retry_delay_seconds", "valid number"),
    (
        {"interval_seconds": 5, "misfire_grace_seconds": float("inf")},
        "misfire_grace_seconds",
        "finite",
    ),
    ({"interval_seconds": 5, "jitter_seconds": 1e6}, "jitter_seconds", "or equal to 86400"),
    (  # a delay of an interval reaches the next occurrence's time, and skipped it
        {"interval_seconds": 60, "jitter_seconds": 60},
        "jitter_seconds",
        "jitter_seconds 60 must be less than interval_seconds 60",
    ),
    ({"schedule": "every 2h", "jitter_seconds": 9000.0}, "jitter_seconds", "less than interval"),
    ({"interval_seconds": 5, "max_retries": True}, "max_retries", "valid integer"),
    ({"interval_seconds": 5, "max_retries": 2.5}, "max_retries", "valid integer"),
    ({"interval_seconds": 5, "max_retries": 101}, "max_retries", "or equal to 100"),
    ({"interval_seconds": 5, "max_instances": 0}, "max_instances", "greater than or equal to 1"),
    ({"interval_seconds": 5, "max_instances": 10**6}, "max_instances", "or equal to 1000"),
    ({"run_at": datetime(9999, 12, 31, 23, 59)}, "run_at", "outside the supported years"),
    ({"run_at": "1900-01-01T00:00:00Z"}, "run_at", "outside the supported years"),
    (  # the bound is UTC's: says where the local time lies there
        {"run_at": "2999-12-31T23:59:59-11:00"},
        "run_at",
        "2999-12-31T23:59:59-11:00, 3000-01-01 10:59 UTC, is outside the supported years",
    ),
    (
        {"interval_seconds": 5, "end_date": datetime(9999, 12, 31, tzinfo=UTC)},
        "end_date",
        "outside the supported years",
    ),
    ({"interval_seconds": 5, "prompt": "x" * 100_001}, "prompt", "at most 100000 characters"),
    ({"interval_seconds": 5, "name": "n" * 201}, "name", "at most 200 characters"),
    ({"interval_seconds": 5, "thread_id": "t" * 256}, "thread_id", "at most 255 characters"),
    ({"interval_seconds": 5, "input": {"deep": DEEP}}, "input", "nested more than 32 levels"),
    ({"interval_seconds": 5, "context": {"big": "x" * 300_000}}, "context", "too large:"),
    ({"interval_seconds": 5, "metadata": {"x": float("inf")}}, "metadata", "JSON-serialisable"),
    # every run would fail: a graph's checkpoints hold -2**63 to 2**64-1
    ({"interval_seconds": 5, "metadata": {"id": 2**64}}, "metadata", "outside -2**63 to 2**64-1"),
    ({"interval_seconds": 5, "input": {"n": [-(2**63) - 1]}}, "input", "outside -2**63 to 2**64-1"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BOUNDS)
def test_numbers_texts_and_json_values_are_bounded(
    fields: dict[str, Any], field: str, message: str
) -> None:
    test_rejected(fields, field, message)


def test_a_value_nested_far_deeper_than_python_recurses_is_refused_quickly() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested more than 32 levels"):
        build(interval_seconds=5, input=deep)


def test_a_value_that_contains_itself_is_refused_at_once() -> None:
    cyclic: dict[str, Any] = {}
    cyclic.update(a=cyclic, b=cyclic, c=[cyclic, cyclic])  # every level three times wider
    began = time.monotonic()
    with pytest.raises(ValidationError, match="nested more than 32 levels"):
        build(interval_seconds=5, input=cyclic)
    assert time.monotonic() - began < 1


@pytest.mark.parametrize(("fields", "field", "message"), REJECTED)
def test_rejected(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build(**fields)
    errors = caught.value.errors()
    located = [e for e in errors if (".".join(str(p) for p in e["loc"]) or "task") == field]
    assert located, f"no error located at {field!r}: {errors}"
    assert any(message in e["msg"] for e in located), [e["msg"] for e in located]


def test_next_run_times_is_pure_and_aware() -> None:
    task = build(interval_seconds=90)
    after = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert task.next_run_times(3, after=after) == [
        datetime(2030, 1, 1, 12, 1, 30, tzinfo=UTC),
        datetime(2030, 1, 1, 12, 3, tzinfo=UTC),
        datetime(2030, 1, 1, 12, 4, 30, tzinfo=UTC),
    ]
    once = build(run_at=datetime(2030, 1, 1, 13, tzinfo=UTC))
    assert once.next_run_times(5, after=after) == [datetime(2030, 1, 1, 13, tzinfo=UTC)]
    assert once.next_run_times(5, after=datetime(2031, 1, 1, tzinfo=UTC)) == []
    ending = build(
        interval_seconds=3600, start_date=after, end_date=datetime(2030, 1, 1, 14, tzinfo=UTC)
    )
    assert len(ending.next_run_times(10, after=after)) == 2


@pytest.mark.parametrize(
    ("moment", "valid"),
    [
        ("1969-12-31T23:00:00-05:00", True),  # 1970-01-01 04:00 UTC
        ("1970-01-01T00:30:00+01:00", False),  # 1969-12-31 23:30 UTC
        ("1970-01-01T00:00:00Z", True),
        ("2999-12-31T20:00:00Z", True),
        ("2999-12-31T23:00:00-02:00", False),  # 3000-01-01 01:00 UTC
        ("3000-01-01T00:30:00+01:00", True),  # 2999-12-31 23:30 UTC
    ],
)
def test_the_supported_years_are_checked_in_utc_at_both_ends(moment: str, valid: bool) -> None:
    fields = {"id": "edge", "task_type": "one_time", "run_at": moment, "prompt": "p"}
    if valid:
        TaskDefinition.model_validate_json(json.dumps(fields))
    else:
        with pytest.raises(ValidationError, match="outside the supported years"):
            TaskDefinition.model_validate_json(json.dumps(fields))


@pytest.mark.parametrize(("levels", "refused"), [(32, False), (33, True)])
def test_json_nesting_is_counted_in_levels_not_in_brackets(levels: int, refused: bool) -> None:
    inner: Any = {"text": "[" * 100 + "{" * 100}  # brackets inside strings are no levels
    for _ in range(levels - 2):
        inner = [inner]
    value = {"v": inner}  # the outer dict, the lists, the inner dict: ``levels`` in all
    if refused:
        with pytest.raises(ValidationError, match="nested more than 32 levels"):
            build(interval_seconds=5, input=value)
    else:
        assert build(interval_seconds=5, input=value).input == value


@pytest.mark.parametrize(
    "zone", ["localtime", "right/UTC", "posix/Europe/Paris", "posixrules", "Factory"]
)
def test_zone_files_that_are_no_zone_are_refused(zone: str) -> None:
    """``localtime`` is each machine's own setting (a task would fire at other instants on
    another machine); ``right/`` zones count leap seconds (27 s off); the others are copies
    kept for old programs, or no place at all."""
    with pytest.raises(ValidationError, match="no zone a task can mean"):
        TaskDefinition(id="t", cron_expression="0 9 * * *", prompt="p", timezone=zone)
    with pytest.raises(ValidationError, match="no zone a task can mean"):
        Settings(_env_file=None, timezone=zone)


def test_a_stored_task_with_such_a_zone_still_loads() -> None:
    """Written before those names were refused: it goes on firing (only new input, and an
    edit of it, is refused)."""
    from scheduler.models import STORED_CONTEXT_KEY

    text = json.dumps({"id": "t", "cron_expression": "0 9 * * *", "prompt": "p",
                       "timezone": "posix/Europe/Paris", "task_type": "cron"})  # fmt: skip
    task = TaskDefinition.model_validate_json(text, context={STORED_CONTEXT_KEY: True})
    assert task.timezone == "posix/Europe/Paris"
    with pytest.raises(ValidationError, match="no zone a task can mean"):
        TaskDefinition.model_validate_json(text)
