"""Log lines: text for people (the default), or one JSON object per line for log shippers
(``SCHEDULER_LOG_FORMAT=json``).

Every log line about a run carries its ids and outcome as record attributes (``task_id``,
``run_id``, ``status``, ``attempt``, ``duration``, ``error_type``, ``thread_id``); the text
format shows them in the message, the JSON format as fields of their own.

Both write control characters escaped (:mod:`scheduler.control_characters`): a message
may hold a task's name from an older version's row or a graph's error, and an ESC sequence
or a line break in it would rewrite the terminal or forge a log line. A traceback keeps its
own line breaks.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from scheduler.control_characters import shown, shown_json

__all__ = [
    "RUN_FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "log_until_the_program_does",
    "run_fields",
]

#: The attributes a log record about a run may carry.
RUN_FIELDS = ("task_id", "run_id", "status", "attempt", "duration", "error_type", "thread_id")


def run_fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call about a run (values that are None left out)."""
    return {key: value for key, value in values.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the run
    fields the record carries, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in RUN_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = str(value) if key == "status" else value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return shown_json(json.dumps(data, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """Text lines with the message's control characters escaped, and the traceback's but
    its line breaks; each line of a traceback (or stack) indented by two spaces, so that
    only a record's first line starts a line: a line break in an exception's message (a
    graph's error) cannot write what reads as a record of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return shown(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join(f"  {shown(line)}" if line else "" for line in text.split("\n"))


def configure_logging(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level``, as text lines (time, level, source, message) or JSON
    lines; APScheduler's own chatter muted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class _UntilConfigured(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the scheduler's records while the program has no logging of its own; once
    the root logger has handlers, the records go to those (they propagate) and this one
    stays quiet."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def log_until_the_program_does(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """For a scheduler started inside another program: log the ``scheduler`` loggers to
    stderr at ``level`` until the program configures logging itself, without touching the
    root logger (a ``logging.basicConfig`` the program calls later still takes effect, and
    the scheduler's lines then go where the program's go)."""
    logger = logging.getLogger("scheduler")
    if any(isinstance(h, _UntilConfigured) for h in logger.handlers):
        return
    handler = _UntilConfigured(sys.stderr)
    handler.setFormatter(_formatter(log_format))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _formatter(log_format: Literal["text", "json"]) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
