"""The quick read of stored definitions (``scheduler.stored_definitions``): it gives what
``TaskDefinition``'s full validation with the stored context gives, or leaves the row to it.

Stored rows are untrusted (anyone with the database can write one): the random rows below
are rows this version writes, changed field by field to hostile values, and whatever the
quick read accepts must be exactly what the full validation makes of the row."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler import TaskDefinition
from scheduler import stored_definitions as stored
from scheduler.models import STORED_CONTEXT_KEY
from scheduler.rows import encode

SOON = datetime(2031, 5, 4, 9, 30, tzinfo=UTC)


def _full(text: str) -> TaskDefinition | None:
    try:
        return TaskDefinition.model_validate_json(text, context={STORED_CONTEXT_KEY: True})
    except ValidationError:
        return None


def _same(quick: TaskDefinition, full: TaskDefinition) -> bool:
    """The same model: values (with their types and offsets), fields set, private state."""
    return (
        quick.model_dump_json() == full.model_dump_json()
        and quick.model_fields_set == full.model_fields_set
        and quick.__pydantic_private__ == full.__pydantic_private__
        and quick == full
    )


def _written() -> list[str]:
    """Definitions as ``add_task`` stores them: one of each kind and option."""
    paris = "Europe/Paris"
    tasks = [
        TaskDefinition(id="c", cron_expression="0 9 * * 1-5", prompt="hi"),
        TaskDefinition(
            id="c.2", name="Morning", description="two\nlines", cron_expression="@daily",
            timezone=paris, start_date=datetime(2031, 1, 1, 8), end_date=datetime(2032, 1, 1),
            jitter_seconds=30, prompt="report", metadata={"team": {"a": [1, 2.5, None]}},
        ),
        TaskDefinition(id="i", interval_seconds=3600, prompt="x", start_date=SOON),
        TaskDefinition(id="i:2", interval_seconds=0.5, input={"messages": []}, enabled=False),
        TaskDefinition(id="o", run_at=SOON + timedelta(days=3), prompt="once", thread_id="t-1"),
        TaskDefinition(
            id="a", after={"tasks": ["c", "i"], "on": "failed", "mode": "any"}, prompt="then"
        ),
        TaskDefinition(id="a2", after="c", cron_expression="*/5 * * * *", prompt="both"),
        TaskDefinition(
            id="w", interval_seconds=60, prompt="p", webhook="https://ops:pw@example.com/h",
            result_callback="pkg.mod:done", on_failure_callback="pkg.mod.failed",
            on_waiting_callback="pkg:asked", context={"user": "u"}, request={"kind": "x"},
            overlap="queue", max_instances=3, priority="high", max_retries=2,
            retry_delay_seconds=1.5, timeout_seconds=30, misfire_grace_seconds=0,
            waiting_timeout_seconds=60,
        ),
    ]  # fmt: skip
    return [encode(task.with_timezone("UTC")) for task in tasks]


_VALUES: list[Any] = [
    None, "", " ", "x", "UTC", "Europe/Paris", "localtime", "right/UTC", "Europe/Pari",
    "posix/Europe/Paris", " 0 9 * * * ", "0 9 * * *", "61 * * * *", "@daily", "0 0 31 2 *",
    0, 1, -1, 0.5, 59, 3600, 3600.0, "3600", True, False, 10**12, float("nan"), float("inf"),
    "2030-01-01", "2030-01-01T09:00:00", "2030-01-01T09:00:00Z", "2030-01-01T09:00:00+14:00",
    "1969-12-31T23:00:00Z", "1970-01-01T00:00:00Z", "2998-06-01T00:00:00Z",
    "2999-12-31T23:59:59-12:00", "3000-01-01T00:00:00Z", "2030-03-31T02:30:00", [], ["a"], {},
    {"tasks": ["a", "a"]}, {"tasks": ["x"]}, {"tasks": "a, b"}, {"tasks": ["c"]}, {"tasks": []},
    {"tasks": ["a"], "on": "finished", "mode": "any"}, {"tasks": ["../x"]}, "ftp://x",
    "http://h:99999/", "https://example.com/h", "http://[::1]:8/h", "pkg.mod:fn", "not a path",
    "a\x01b", "\n", "interval", "cron", "one_time", "after", "weird", {"a": 1}, {"a": [1e308]},
    "t-1", ".", "..", "a" * 200, "queue", "skip", "high",
]  # fmt: skip
_KEYS = [*TaskDefinition.model_fields, "schedule", "session_id", "_pending_wall_clock", "x"]
_NEAR: dict[str, list[Any]] = {  # values close to a field's own, for half the changes
    "interval_seconds": ["3600", "60", True, 0, 59, 60, 60.0, 1e12, -5, None],
    "after": [{"tasks": ["a", "a"]}, {"tasks": ["b", "../c"]}, {"tasks": ["a"]}, ["c"], "c"],
    "cron_expression": ["0 9 * * *", "0 9 * * * ", "* * *", "@hourly", "0 0 30 2 *", None],
    "timezone": ["UTC", "Etc/GMT+2", "localtime", "right/UTC", "Mars/Base", None],
    "task_type": ["cron", "interval", "one_time", "after", None],
    "thread_id": ["", "t", None, "a\nb"],
    "prompt": ["", "  ", None, "go"],
    "input": [None, {}, {"m": 1}],
}


def _mutated(text: str, rng: random.Random) -> str:
    data = json.loads(text)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(_KEYS + list(data))
        if rng.random() < 0.2:
            data.pop(key, None)
        else:
            near = _NEAR.get(key)
            data[key] = rng.choice(near if near and rng.random() < 0.5 else _VALUES)
    return json.dumps(data)


def test_the_model_has_no_validator_it_does_not_know() -> None:
    """A validator added to the model (or to ``After``) turns the quick read off (every row
    then takes the full validation): add its checks to ``stored_definitions._checked`` and
    its name to ``_KNOWN``."""
    assert stored.stripped_validators() <= stored._KNOWN
    assert stored._validator() is not None


def test_rows_as_written_are_read_quickly_and_alike() -> None:
    for text in _written():
        full = _full(text)
        quick = stored.load_stored(text)
        assert full is not None and quick is not None, text
        assert _same(quick, full), text


def test_changed_rows_are_read_alike_or_left_to_the_full_validation() -> None:
    rng = random.Random(20261207)
    written = _written()
    quick_reads = refused = 0
    for _ in range(20000):
        text = _mutated(rng.choice(written), rng)
        full = _full(text)
        quick = stored.load_stored(text)
        if quick is not None:
            quick_reads += 1
            assert full is not None, f"read quickly, refused by the validation: {text}"
            assert _same(quick, full), text
        refused += full is None
    assert quick_reads > 500 and refused > 2000  # (both sides exercised)


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},  # the id names it
        {"thread_id": ""},  # no thread
        {"cron_expression": " 0 9 * * * "},  # stripped
        {"start_date": "2031-01-01T08:00:00"},  # naive: read in the task's zone
        {"session_id": "t-2"},  # the older name
        {"schedule": "every 5 minutes"},  # in words
    ],
)
def test_other_forms_are_left_to_the_full_validation(change: dict[str, Any]) -> None:
    data = {**json.loads(_written()[1]), **change}
    text = json.dumps(data)
    assert stored.load_stored(text) is None
    _full(text)  # (reads or refuses it, as before)


def test_an_unknown_validator_turns_the_quick_read_off(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _written()[0]
    stored._validator.cache_clear()
    monkeypatch.setattr(stored, "_KNOWN", stored._KNOWN - {"TaskDefinition._check_cron"})
    try:
        assert stored._validator() is None
        assert stored.load_stored(text) is None
    finally:
        stored._validator.cache_clear()
    monkeypatch.undo()
    assert stored.load_stored(text) is not None
