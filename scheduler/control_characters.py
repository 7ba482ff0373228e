"""Control characters in text that comes from outside: refused where a task's text enters,
escaped where stored text is shown.

Where a task is made (:class:`~scheduler.models.TaskDefinition`: Python, the tasks file,
the CLI, the REST and crons APIs, the agent tools), a name or a thread id refuses every
control character: C0 (U+0000-U+001F, NUL and ESC among them), DEL and C1 (U+0080-U+009F),
and the characters that reorder or break a line (bidirectional controls and marks, line
and paragraph separators: a name that reads as another); a prompt or a description
refuses the control characters except newline, carriage return and tab. (An id
takes only letters, digits and ``._:-`` anyway.) NUL could not be stored in PostgreSQL, and
an ESC sequence printed to a terminal can rewrite the screen.

Text already stored may hold them all: a row written by an older version or by hand, a
graph's output or error. A definition read back is not refused for it (its task keeps
firing); what the CLI prints and the text logs write is escaped instead (:func:`shown`:
``\\x1b``, ``\\n``), and so are the characters that reorder or break the text shown
(bidirectional controls, line and paragraph separators).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from scheduler.schedule_fields import STORED_CONTEXT_KEY, error

__all__ = [
    "OneLine",
    "OneLineOrNone",
    "Prose",
    "ProseOrNone",
    "ThreadIdOrNone",
    "control_problem",
    "one_line",
    "shown",
    "shown_json",
]

_CONTROL_IN_PROSE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# what a terminal must not get as it is, nor one line hold: the control characters, and
# those that reorder or break the line shown
_BIDI_AND_SEPARATORS = "\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSHOWN = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI_AND_SEPARATORS}]")
_UNSHOWN_IN_JSON = re.compile(f"[\\x7f-\\x9f{_BIDI_AND_SEPARATORS}]")  # json escapes C0
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def control_problem(value: str, *, field: str, prose: bool = False) -> str | None:
    """What is wrong with ``value`` for ``field``: a control character it must not hold
    (any, or any but newline, carriage return and tab for ``prose``), or None."""
    found = (_CONTROL_IN_PROSE if prose else _UNSHOWN).search(value)
    if found is None:
        return None
    code = ord(found.group())
    what = "a control character" if code < 0x100 else "a bidirectional control or a line separator"
    where = f"{field} holds {what} (U+{code:04X}, character {found.start() + 1})"
    if prose:
        return where + ": newline, carriage return and tab are the only ones it may hold"
    return where + ": it must be one line of printable text"


def _checked(value: str | None, info: ValidationInfo, *, prose: bool) -> str | None:
    if value is None or (info.context or {}).get(STORED_CONTEXT_KEY):
        return value  # (a row read back is shown escaped, not refused: its task runs on)
    problem = control_problem(value, field=info.field_name or "value", prose=prose)
    if problem is not None:
        raise error("control_character", problem)
    return value


def _one_line(value: str | None, info: ValidationInfo) -> str | None:
    return _checked(value, info, prose=False)


def _prose(value: str | None, info: ValidationInfo) -> str | None:
    return _checked(value, info, prose=True)


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


# (``None`` inside: a ``Field(max_length=...)`` then still bounds the text as a text)
#: Text of one line with no control character (a name, a thread id).
OneLine = Annotated[str, AfterValidator(_one_line)]
OneLineOrNone = Annotated[str | None, AfterValidator(_one_line)]
#: A task's thread id: one line; empty is none (a fresh thread per run, as runs read it).
ThreadIdOrNone = Annotated[str | None, BeforeValidator(_none_if_empty), AfterValidator(_one_line)]
#: Text that may hold newlines, carriage returns and tabs, no other control character.
Prose = Annotated[str, AfterValidator(_prose)]
ProseOrNone = Annotated[str | None, AfterValidator(_prose)]


def _escaped(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """``text`` with what one line of printable text may not hold (control characters,
    bidirectional controls, line separators) made spaces: a name made from a prompt."""
    return _UNSHOWN.sub(" ", text)


def shown(text: str) -> str:
    """``text`` safe to print on a terminal or in a log line: control characters (newlines
    too), bidirectional controls and line separators escaped as ``\\x1b``, ``\\n``,
    ``\\u202e``."""
    return _UNSHOWN.sub(_escaped, text)


def shown_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``, which escapes C0 itself) with DEL,
    C1, bidirectional controls and line separators escaped as ``\\u00XX``: still the same
    JSON (such characters are only ever inside its strings), safe on a terminal."""
    return _UNSHOWN_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
