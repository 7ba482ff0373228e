"""Bounds on what a task may hold, checked where input enters.

Numbers must be finite, inside a documented range, and numbers (``True`` is an ``int`` in
Python, but a flag is not a count of seconds). JSON values (``input``, ``context``,
``metadata``) have a depth and a size limit. Each check raises ``ValueError`` with a message
that names the field and the bound; :class:`~scheduler.models.TaskDefinition` turns it into
a validation error on that field.

The bounds (README, "Limits"):

* ``interval_seconds``: 0.001 s to 3,660 days;
* ``timeout_seconds``, ``retry_delay_seconds``, ``misfire_grace_seconds``,
  ``waiting_timeout_seconds``: at most 366 days;
  ``jitter_seconds``: at most 1 day;
* ``max_retries``: 0-100; ``max_instances``: 1-1,000;
* datetimes (``run_at``, ``start_date``, ``end_date``): from 1970 to 2999 (UTC);
* ``input``, ``context``, ``metadata``: nested at most 32 levels, at most 256 KiB as JSON;
  the integers in ``input``, ``metadata`` and an answer within -2**63 to 2**64-1 (what
  LangGraph's checkpoints hold);
* ``prompt``: at most 100,000 characters; ``name``: 200; ``description``: 2,000;
  ``thread_id``: 255; ``cron_expression``: 256; a callback path: 256.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHECKPOINT_INTS",
    "MAX_DATETIME",
    "MAX_DURATION_SECONDS",
    "MAX_INTERVAL_SECONDS",
    "MAX_JITTER_SECONDS",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_OFFSET",
    "MIN_DATETIME",
    "MIN_INTERVAL_SECONDS",
    "REQUEST_BOUNDS",
    "TEXT_LIMITS",
    "check_datetime",
    "check_json_value",
    "check_number",
    "json_depth",
]

DAY = 86_400
MIN_INTERVAL_SECONDS = 0.001
MAX_INTERVAL_SECONDS = 3_660 * DAY
MAX_DURATION_SECONDS = 366 * DAY
MAX_JITTER_SECONDS = DAY
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 256 * 1024
#: The integers LangGraph's checkpoints hold (msgpack's int64 and uint64).
CHECKPOINT_INTS = (-(2**63), 2**64 - 1)
MAX_OFFSET = 10**9  # a list's offset in the HTTP API (a database integer holds it)
#: A cron's ``request`` (HTTP crons API): its config twice, 2 levels down (rows written
#: before 2026-12-07 hold its input, metadata and context twice too).
REQUEST_BOUNDS = {"depth": MAX_JSON_DEPTH + 2, "most": 8 * MAX_JSON_BYTES}
MIN_DATETIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DATETIME = datetime(3000, 1, 1, tzinfo=UTC)

#: Longest text per field, in characters.
TEXT_LIMITS: dict[str, int] = {
    "prompt": 100_000,
    "name": 200,
    "description": 2_000,
    "thread_id": 255,
    "cron_expression": 256,
    "timezone": 64,
    "result_callback": 256,
    "on_failure_callback": 256,
    "on_waiting_callback": 256,
}


def _plain(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"about 10^{int(value.bit_length() * 0.30103)}"  # no float: it may not fit
    if abs(value) >= 1e15:
        return f"{value:.3g}"
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1000 else f"{value:g}"


def _bound(value: float, name: str) -> str:
    text = _plain(value)
    if name.endswith("_seconds") and value >= DAY:
        text += f" s ({value / DAY:g} days)"
    return text


def check_number(
    value: Any,
    *,
    name: str,
    low: float,
    high: float,
    low_inclusive: bool = True,
    integer: bool = False,
) -> int | float:
    """``value`` as a finite number in ``[low, high]`` (``(low, high]`` unless
    ``low_inclusive``); a whole number when ``integer``.

    Raises:
        ValueError: Not a number (booleans included), not finite, not whole, or out of range;
            the message ("must be ...") leaves naming ``name`` to the caller.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # tuple: faster than a union
        kind = "a boolean" if isinstance(value, bool) else type(value).__name__
        if isinstance(value, str) and len(value) <= 40:  # as written (YAML's bare 1:30)
            kind = f"text {value!r}"
        raise ValueError(f"must be a number, got {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if integer and value != int(value):
        raise ValueError(f"must be a whole number, got {value:g}")
    too_low = value < low or (value == low and not low_inclusive)
    if too_low or value > high:
        lower = f"at least {_plain(low)}" if low_inclusive else f"greater than {_plain(low)}"
        raise ValueError(f"must be {lower} and at most {_bound(high, name)}, got {_plain(value)}")
    return int(value) if integer else value


def check_datetime(value: datetime) -> datetime:
    """An aware ``value`` between :data:`MIN_DATETIME` and :data:`MAX_DATETIME`.

    Raises:
        ValueError: It lies outside those years.
    """
    if MIN_DATETIME.year < value.year < MAX_DATETIME.year - 1:  # no offset can cross a bound
        return value
    try:
        ok = MIN_DATETIME <= value < MAX_DATETIME
    except OverflowError:
        ok = False
    if not ok:
        utc = ""  # (the bound is UTC's: 2999-12-31 23:59 at -11:00 is in 3000 there)
        with contextlib.suppress(OverflowError, ValueError):
            if value.utcoffset():
                utc = f", {value.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
        raise ValueError(f"{value.isoformat()}{utc} is outside the supported years 1970-2999")
    return value


def json_depth(value: Any, *, limit: int) -> int:
    """How deeply ``value`` nests lists and dicts, counting no further than ``limit + 1``
    (depth first, never more than ``limit + 1`` calls deep, and it stops at the first
    branch found too deep: a value nested 100,000 levels deep, or one that contains
    itself, costs about ``limit`` steps, not a crash)."""
    return _levels(value, limit) if isinstance(value, dict | list | tuple) else 0


def _levels(item: dict[Any, Any] | list[Any] | tuple[Any, ...], room: int) -> int:
    """The levels of the container ``item``, or ``room + 1`` once they exceed ``room``."""
    if room <= 0:
        return 1
    deepest = 0
    for child in item.values() if isinstance(item, dict) else item:
        if isinstance(child, dict | list | tuple):  # (scalars, most children, cost no call)
            below = _levels(child, room - 1)
            if below > deepest:
                deepest = below
                if deepest >= room:  # too deep already: no need to look at the rest
                    break
    return deepest + 1


# one encoder for every check (json.dumps with options builds a new one each call)
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def check_json_value(
    value: Any,
    *,
    depth: int = MAX_JSON_DEPTH,
    most: int = MAX_JSON_BYTES,
    checkpointed: bool = False,
) -> None:
    """``value`` is plain JSON (valid Unicode text), nested at most ``depth`` levels
    (:data:`MAX_JSON_DEPTH`) and at most ``most`` bytes (:data:`MAX_JSON_BYTES`) once
    encoded as UTF-8; ``checkpointed`` (it goes into the graph's checkpoints: an input,
    run metadata, an answer), its integers within :data:`CHECKPOINT_INTS`, or every run
    with it would fail.

    Raises:
        ValueError: It is not JSON-serialisable, too deep or too large.
    """
    # the depth first, iteratively: the encoder recurses in C, and a deep enough value
    # (with a raised recursion limit) would overflow the stack
    if json_depth(value, limit=depth) > depth:
        raise ValueError(f"nested more than {depth} levels deep")
    if checkpointed:
        _check_ints(value)
    try:
        encoded = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON-serialisable: {exc}") from None
    size = len(encoded)
    if not encoded.isascii():
        try:
            size = len(encoded.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate: "\ud800" decoded from JSON
            raise ValueError(f"holds text that is not valid Unicode ({exc.reason})") from None
    if size > most:
        raise ValueError(f"too large: {size:,} bytes as JSON, at most {most:,}")


def _check_ints(value: Any) -> None:
    """Every integer in ``value`` (nested no deeper than checked) is in CHECKPOINT_INTS."""
    low, high = CHECKPOINT_INTS
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int) and not low <= item <= high:
            # (str() of an integer of over 4,300 digits raises)
            shown = str(item) if item.bit_length() <= 256 else f"of {item.bit_length()} bits"
            raise ValueError(
                f"holds the integer {shown}, outside -2**63 to 2**64-1 (what a graph's "
                "checkpoints hold: the run would fail); give it as text"
            )
