"""Edits to a TOML file that keep everything else exactly as written.

``tomllib`` reads TOML but cannot write it, and writing it back from data would reformat
the user's file. :class:`TomlText` finds where each table, key and value is in the text,
so that an edit inserts a few characters and leaves every other byte alone. Every edit
returns new text; callers re-read the result with ``tomllib`` to check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TomlText", "TomlTextError", "toml_key", "toml_string"]

_KEY_PART = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^.\s]+')
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ONE_LINE_MAX = 88  # a one-line array that would grow longer becomes one item per line


class TomlTextError(ValueError):
    """The text is not TOML this module can follow."""


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, quoted otherwise."""
    return name if _BARE_KEY.match(name) else toml_string(name)


def _key_parts(raw: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(raw.strip()))


@dataclass(frozen=True)
class _Entry:
    path: tuple[str, ...]  # table + key
    table: tuple[str, ...]
    value_start: int
    value_end: int
    end: int  # after the entry's line (and its newline)


@dataclass(frozen=True)
class _Table:
    name: tuple[str, ...]
    header_end: int


class TomlText:
    """Where things are in a TOML document.

    Args:
        text: The document.

    Raises:
        TomlTextError: A string, array or inline table is not closed.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.entries: list[_Entry] = []
        self.tables: dict[tuple[str, ...], _Table] = {}
        self._parse()

    # -- scanning --------------------------------------------------------------------------

    def _eol(self, i: int) -> int:
        j = self.text.find("\n", i)
        return len(self.text) if j < 0 else j + 1

    def _skip(self, i: int) -> int:
        """Skip whitespace, newlines and comments."""
        text = self.text
        while i < len(text):
            if text[i] in " \t\r\n":
                i += 1
            elif text[i] == "#":
                i = self._eol(i)
            else:
                break
        return i

    def _string_end(self, i: int) -> int:
        text, quote = self.text, self.text[i]
        if text.startswith(quote * 3, i):
            j = i + 3
            while True:
                k = text.find(quote * 3, j)
                if k < 0:
                    raise TomlTextError(f"unclosed multi-line string at offset {i}")
                if quote == '"' and _escaped(text, k):
                    j = k + 1
                    continue
                while text.startswith(quote, k + 3) and k + 3 < len(text):
                    k += 1
                return k + 3
        j = i + 1
        while j < len(text):
            char = text[j]
            if quote == '"' and char == "\\":
                j += 2
                continue
            if char == quote:
                return j + 1
            if char == "\n":
                break
            j += 1
        raise TomlTextError(f"unclosed string at offset {i}")

    def _key_end(self, i: int) -> int:
        """Offset of the ``=`` that ends the key starting at ``i``."""
        text = self.text
        while i < len(text):
            if text[i] in "\"'":
                i = self._string_end(i)
            elif text[i] == "=":
                return i
            elif text[i] == "\n":
                break
            else:
                i += 1
        raise TomlTextError(f"a key without '=' at offset {i}")

    def _value_end(self, i: int) -> int:
        text = self.text
        if i >= len(text):
            raise TomlTextError("a key without a value at the end")
        if text[i] in "\"'":
            return self._string_end(i)
        if text[i] in "[{":
            return self.items(i)[0] + 1
        j = i
        while j < len(text) and text[j] not in ",]}#\r\n":
            j += 1
        return len(text[:j].rstrip())

    def items(self, start: int) -> tuple[int, list[tuple[int, int]], bool]:
        """The array or inline table opening at ``start``: the offset of its closing
        bracket, the span of each item, and whether it holds comments."""
        text = self.text
        close = "]" if text[start] == "[" else "}"
        spans: list[tuple[int, int]] = []
        comments = False
        i = start + 1
        while True:
            j = self._skip(i)
            comments = comments or "#" in text[i:j]
            i = j
            if i >= len(text):
                raise TomlTextError(f"unclosed {text[start]} at offset {start}")
            if text[i] == close:
                return i, spans, comments
            if text[i] == ",":
                i += 1
                continue
            item = i
            if close == "}":
                i = self._skip(self._key_end(i) + 1)
            i = self._value_end(i)
            spans.append((item, i))

    def _parse(self) -> None:
        text, i = self.text, 0
        table: tuple[str, ...] = ()
        self.tables[()] = _Table((), 0)
        while True:
            i = self._skip(i)
            if i >= len(text):
                return
            if text[i] == "[":
                end = self._eol(i)
                header = text[i:end].split("#", 1)[0].strip()
                table = _key_parts(header.strip("[]"))
                self.tables.setdefault(table, _Table(table, end))
                i = end
                continue
            equals = self._key_end(i)
            key = _key_parts(text[i:equals])
            value = self._skip_inline(equals + 1)
            value_end = self._value_end(value)
            end = self._eol(value_end)
            self.entries.append(_Entry(table + key, table, value, value_end, end))
            i = end

    def _skip_inline(self, i: int) -> int:
        while i < len(self.text) and self.text[i] in " \t":
            i += 1
        return i

    # -- finding -------------------------------------------------------------------------

    def entry(self, *path: str) -> _Entry | None:
        """The entry whose full dotted path is ``path``, e.g. ``("project", "dependencies")``."""
        return next((entry for entry in self.entries if entry.path == path), None)

    def table_end(self, *name: str) -> int | None:
        """Where a new key of table ``name`` goes: after its last entry (None: no table)."""
        table = self.tables.get(name)
        if table is None:
            return None
        ends = [entry.end for entry in self.entries if entry.table == name]
        return max(ends) if ends else table.header_end

    # -- editing -------------------------------------------------------------------------

    def _insert(self, at: int, text: str) -> str:
        before = self.text[:at]
        if before and not before.endswith("\n"):
            text = self.newline + text
        return before + text + self.text[at:]

    def add_key(self, table: tuple[str, ...], key: str, value: str) -> str:
        """Add ``key = value`` (both already TOML) at the end of ``table``, creating the
        table at the end of the document when it does not exist."""
        nl = self.newline
        at = self.table_end(*table)
        if at is None:
            header = f"{nl}[{'.'.join(toml_key(part) for part in table)}]{nl}"
            return self._insert(len(self.text), f"{header}{key} = {value}{nl}")
        return self._insert(at, f"{key} = {value}{nl}")

    def append_items(self, entry: _Entry, values: list[str]) -> str:
        """Append ``values`` (TOML) to the array of ``entry``: one per line in a multi-line
        array (its indentation kept); a one-line array stays on one line while it is short,
        else becomes one item per line."""
        nl, text = self.newline, self.text
        close, spans, comments = self.items(entry.value_start)
        if "\n" not in text[entry.value_start : close] and not comments:
            items = [text[a:b] for a, b in spans] + values
            line_start = text.rfind("\n", 0, entry.value_start) + 1
            one_line = text[line_start : entry.value_start] + "[" + ", ".join(items) + "]"
            if len(one_line) <= _ONE_LINE_MAX:
                return text[:line_start] + one_line + text[close + 1 :]
            body = "".join(f"    {item},{nl}" for item in items)
            return text[: entry.value_start] + f"[{nl}{body}]" + text[close + 1 :]
        indent = "    "
        if spans:
            lead = text[text.rfind("\n", 0, spans[0][0]) + 1 : spans[0][0]]
            indent = lead if lead and not lead.strip() else indent
        last = spans[-1][1] if spans else entry.value_start + 1
        comma = "" if not spans or text[last:close].lstrip().startswith(",") else ","
        close_line = text.rfind("\n", 0, close) + 1
        added = "".join(f"{indent}{value},{nl}" for value in values)
        if not text[close_line:close].strip() and close_line > last:
            return text[:last] + comma + text[last:close_line] + added + text[close_line:]
        return text[:last] + comma + nl + added.rstrip("\r\n").rstrip(",") + nl + text[last:]

    def add_inline_item(self, entry: _Entry, key: str, value: str) -> str:
        """Add ``key = value`` to the inline table of ``entry``."""
        close, spans, _ = self.items(entry.value_start)
        if not spans:
            return self.text[:close] + f" {key} = {value} " + self.text[close:]
        last = spans[-1][1]
        return self.text[:last] + f", {key} = {value}" + self.text[last:]


def _escaped(text: str, index: int) -> bool:
    """The character at ``index`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
