"""Reading a stored definition back (:func:`read_stored`), quickly when it can be.

Every stored definition is read through ``TaskDefinition``'s validation with the stored
context (``rows.decode``): a list of 100,000 tasks, a dispatch of 10,000 due tasks and a
fan-out of 1,000 downstream runs each read that many rows. pydantic's own part of that is
about a third of the time; the rest is its calls into the model's 20-odd Python validators,
one call a field, most of which do nothing for a row read back. :func:`load_stored` reads
the row with the same schema stripped of those validators (pydantic's native parsing and
type checks, the same fields, defaults and model), then makes in one Python function every
check that the validators make of a stored row. Anything else takes the full validation:
a row in another form than this version writes (an older spelling to normalise, a naive
time, a ``schedule`` to expand), or one that a check refuses, whose error it words.

The known validators are listed in :data:`_KNOWN` by name: if the model gains another, the
stripped schema is not used at all (every row takes the full validation), so a check added
to the model can never be skipped here; ``tests/unit/test_stored_definitions.py`` fails
until this module makes it too.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC
from typing import Any

from pydantic_core import PydanticCustomError, SchemaValidator

from scheduler.cron import CronError, parse_cron
from scheduler.limits import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    check_datetime,
    check_number,
)
from scheduler.models import _DOTTED_PATH, _ID, CALLBACK_FIELDS, STORED_CONTEXT_KEY, TaskDefinition
from scheduler.schedule_fields import SCHEDULE_FIELDS, check_bounds
from scheduler.triggers import localize
from scheduler.weburls import webhook_url
from scheduler.zones import zone_exists

__all__ = ["load_stored", "read_stored", "stripped_validators"]

#: The validators of ``TaskDefinition`` (and of its ``After``) that :func:`_checked` stands
#: in for, for a stored row: it makes the checks of those that check anything then; those
#: that skip a stored row (control characters, JSON bounds, jitter against the interval)
#: need nothing; the normalising ones (``_normalise``, ``_none_if_empty``, ``After._forms``,
#: ``_no_date_alone``) leave the form this version writes as it is, and any other form
#: makes :func:`load_stored` answer None.
_KNOWN = frozenset(
    {
        "TaskDefinition._normalise", "TaskDefinition._check_schedule_options",
        "TaskDefinition._check_id", "TaskDefinition._check_timezone",
        "TaskDefinition._check_cron", "TaskDefinition._check_interval",
        "TaskDefinition._check_run_at", "TaskDefinition._no_date_alone",
        "TaskDefinition._localize", "TaskDefinition._check_end_after_start",
        "TaskDefinition._check_prompt", "TaskDefinition._check_json",
        "TaskDefinition._check_dotted_path", "check_jitter", "webhook_url", "_one_line",
        "_prose", "_none_if_empty", "After._forms", "After._check_ids",
    }
)  # fmt: skip

# Keys the full validation normalises (an older name, a schedule in words, a wall-clock
# time to read later): a row holding one, anywhere, is read the usual way. (Inside a JSON
# text a quote is escaped, so text within a value never matches.)
_NORMALISED = re.compile(r'"(?:session_id|schedule|_pending_wall_clock)"')

_STORED = {STORED_CONTEXT_KEY: True}
_CLOCK_FIELDS = tuple(SCHEDULE_FIELDS.values())
_ZONES: set[str] = set()  # zones found to exist
_SCHEDULE_OPTIONS = TaskDefinition.__pydantic_decorators__.model_validators[
    "_check_schedule_options"
].func


def _function_name(node: dict[str, Any]) -> str:
    function = node["function"]["function"]
    function = getattr(function, "func", function)  # (a partial)
    return str(getattr(function, "__qualname__", repr(function)))


def _strip(node: Any, found: set[str], strict: bool = False) -> Any:
    """``node`` of a core schema without its function validators (their names go to
    ``found``); ``strict``: numbers under it strict (no ``"3600"``, no ``true``)."""
    if isinstance(node, list):
        return [_strip(each, found, strict) for each in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("function-before", "function-after", "function-wrap"):
        found.add(_function_name(node))
        return _strip(node["schema"], found, strict)
    if kind == "function-plain":
        found.add(_function_name(node))
        return node
    stripped = {}
    for key, value in node.items():
        if key == "serialization":  # (not validation: kept as it is)
            stripped[key] = value
        elif key == "fields" and isinstance(value, dict):
            stripped[key] = {
                name: _strip(field, found, strict or name == "interval_seconds")
                for name, field in value.items()
            }
        else:
            stripped[key] = _strip(value, found, strict)
    if strict and kind in ("int", "float"):
        stripped["strict"] = True  # as check_number refuses them before validation
    return stripped


def _stripped() -> tuple[Any, set[str]]:
    """``TaskDefinition``'s core schema stripped (a new one: the model's is not changed),
    and the names of the validators taken out."""
    found: set[str] = set()
    return _strip(TaskDefinition.__pydantic_core_schema__, found), found


def stripped_validators() -> set[str]:
    """The names of the function validators in ``TaskDefinition``'s schema."""
    return _stripped()[1]


@functools.cache
def _validator() -> SchemaValidator | None:
    """The stripped schema's validator; None when the model has a validator not in
    :data:`_KNOWN` (every row then takes the full validation)."""
    schema, found = _stripped()
    return None if found - _KNOWN else SchemaValidator(schema)


def read_stored(text: str) -> TaskDefinition:
    """The definition stored as ``text`` (JSON), as ``TaskDefinition``'s validation with
    the stored context reads it (:func:`load_stored` first).

    Raises:
        pydantic.ValidationError: It does not validate.
    """
    # (the validator itself, not model_validate_json: a list of 100,000 calls this)
    return load_stored(text) or TaskDefinition.__pydantic_validator__.validate_json(
        text, context=_STORED
    )


def load_stored(text: str) -> TaskDefinition | None:
    """The definition stored as ``text`` (JSON), as ``TaskDefinition``'s validation with
    the stored context reads it, when it is in the form this version writes and passes
    every check that validation makes of it; else None (read it the usual way)."""
    validator = _validator()
    if validator is None or _NORMALISED.search(text):
        return None
    try:
        task = validator.validate_json(text)
    except Exception:  # (its error is worded by the full validation)
        return None
    try:
        return task if _checked(task) else None
    except (PydanticCustomError, ValueError, TypeError, OverflowError, CronError):
        return None


def _checked(task: TaskDefinition) -> bool:
    """``task`` passes the checks the validators make of a stored row, and none of them
    would have changed it. (Raises what a check raises: the caller takes that as False.)"""
    if not task.name or task.thread_id == "" or not _ID.match(task.id):
        return False  # (a name the id fills in, a thread id read as none)
    zone = task.timezone
    if zone is not None and zone not in _ZONES:
        if not zone_exists(zone, stored=True):
            return False
        _ZONES.add(zone)  # (only names of zones: a few hundred at most)
    wanted = SCHEDULE_FIELDS.get(task.task_type)  # None: TaskType.AFTER, no clock
    for field in _CLOCK_FIELDS:
        if (getattr(task, field) is not None) != (field == wanted):
            return False
    cron = task.cron_expression
    if cron is not None:
        if cron != cron.strip():
            return False  # (stripped by the full validation)
        parse_cron(cron)
    interval = task.interval_seconds
    if interval is not None:
        check_number(
            interval, name="interval_seconds", low=MIN_INTERVAL_SECONDS, high=MAX_INTERVAL_SECONDS
        )
    for moment in (task.run_at, task.start_date, task.end_date):
        if moment is not None:
            if moment.tzinfo is None:
                return False  # (read in the task's zone by the full validation)
            check_datetime(localize(moment, UTC))
    if task.end_date is not None:
        check_bounds(task.start_date, task.end_date, task.timezone)
    if task.prompt is None and task.input is None:
        return False
    if task.prompt is not None and not task.prompt.strip():
        return False
    for field in CALLBACK_FIELDS:
        path = getattr(task, field)
        if path is not None and not _DOTTED_PATH.match(path):
            return False
    if task.webhook is not None:
        webhook_url(task.webhook)
    after = task.after
    if after is not None:  # (pydantic reads a nested model with its own validator: again)
        ids = after.tasks
        if len(set(ids)) != len(ids) or not all(_ID.match(each) for each in ids):
            return False
    _SCHEDULE_OPTIONS(task)  # the model's own after-validator (an after on itself, say)
    return True
