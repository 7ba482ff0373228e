"""Reading untrusted JSON and YAML text (tasks files, ``--input`` flags) within bounds.

``json.loads`` recurses once per nesting level, so 30,000 ``[`` end in a ``RecursionError``;
``yaml.safe_load`` expands aliases, so a "billion laughs" document of a few hundred bytes
nested inside one field makes every later step walk billions of nodes. Both loaders here
refuse such documents up front, in time proportional to the text, with a
:class:`DocumentError` that says what limit was crossed. Ordinary YAML anchors and aliases
(``<<: *defaults``) stay allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from scheduler.limits import MAX_JSON_DEPTH

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "BoundedYamlLoader",
    "DocumentError",
    "as_written",
    "compose_yaml",
    "key_given_twice",
    "load_json",
    "load_yaml",
    "read_document",
]

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
#: Nesting allowed in a whole document: a tasks file's list and task add three levels to
#: the :data:`~scheduler.limits.MAX_JSON_DEPTH` of a field.
MAX_DOCUMENT_DEPTH = MAX_JSON_DEPTH + 4
#: Nodes that aliases may add to a YAML document, all aliases together, or one per character
#: of the document if that is more: no more than the document could have written out
#: itself, so that a file of thousands of entries that each merge ``<<: *defaults`` reads.
MAX_ALIAS_NODES = 10_000

#: Python reads no int of more digits (``sys.get_int_max_str_digits``); its ValueError
#: would escape both parsers.
_NUMBER_TOO_LONG = f"a number of more than {sys.get_int_max_str_digits():,} digits"
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class DocumentError(ValueError):
    """A document that is too large, too deep, or expands too far; or does not parse."""


class _OverBudget(yaml.YAMLError):
    """A YAML document beyond the loader's bounds."""


def _check_size(text: str, what: str) -> None:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{what} is {len(text):,} characters; at most {MAX_DOCUMENT_BYTES:,} are read"
        )


def read_document(path: Path) -> str:
    """The text of a document file, which must be UTF-8; a byte order mark at its start (as
    Notepad writes) is left out, as YAML leaves it out and JSON would refuse it.

    Raises:
        OSError: It cannot be read.
        DocumentError: It is larger than any document that could be taken (read no
            further: ``/dev/zero`` never ends), or is not UTF-8 (with where the first byte
            that is not).
    """
    limit = 4 * MAX_DOCUMENT_BYTES  # (bytes: the bound is in characters, up to 4 bytes each)
    # (O_NONBLOCK: opening a FIFO with no writer would wait; read from it, once it is
    # cleared, it ends at once; a pipe, as `--file /dev/stdin`, is read as a file is)
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
        os.set_blocking(file.fileno(), True)
        data = file.read(limit + 1)  # never more than the bound, however large the file
    if len(data) > limit:
        raise DocumentError(
            f"{path} is over {limit:,} bytes; at most {MAX_DOCUMENT_BYTES:,} characters are read"
        )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DocumentError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it "
            "as UTF-8"
        ) from None


def load_json(
    text: str, *, what: str = "JSON", max_depth: int = MAX_DOCUMENT_DEPTH, unique: bool = False
) -> Any:
    """Parse JSON ``text``, refusing more than ``max_depth`` levels of nesting before
    parsing (so no ``RecursionError``); with ``unique``, refusing a key given twice in an
    object (``json.loads`` keeps the last one, unseen), as the YAML loader does.

    Raises:
        DocumentError: Too large, too deep, or not JSON (the message says where).
    """
    _check_size(text, what)
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > max_depth:
                raise DocumentError(f"{what}: nested more than {max_depth} levels deep")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys if unique else None)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what}: not valid JSON: {exc}") from None
    except _KeyTwice as exc:
        raise DocumentError(f"{what}: not valid JSON: the key {exc.key!r} is given twice") from None
    except ValueError:  # (int() refused the digits)
        raise DocumentError(f"{what}: {_NUMBER_TOO_LONG}") from None
    except RecursionError:  # brackets inside malformed strings fooled the count
        raise DocumentError(f"{what}: nested too deeply") from None


class _KeyTwice(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _KeyTwice(key)
        found[key] = value
    return found


def key_given_twice(text: str | bytes) -> str | None:
    """The first key given twice in an object of the JSON ``text`` (``json.loads`` keeps
    the last one, unseen), or None: also when it is no JSON, which its reader says."""
    try:
        json.loads(text, object_pairs_hook=_unique_keys)
    except _KeyTwice as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None
    return None


class BoundedYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting and alias expansion beyond a budget.

    Each alias adds the size of the node it points to (counted once per node, with the
    aliases inside it expanded); the document is refused once aliases together add more
    than :data:`MAX_ALIAS_NODES` nodes (or its length in characters, if more), or nesting
    passes :data:`MAX_DOCUMENT_DEPTH`.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._budget = max(MAX_ALIAS_NODES, len(stream))
        self._sizes: dict[int, int] = {}
        self._open: list[str | None] = []  # anchors of the collections being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if event.anchor in self._open:  # a value inside itself: endless once built
                raise _OverBudget(
                    f"alias *{event.anchor} refers to a value that contains it (near line "
                    f"{event.start_mark.line + 1})"
                )
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._alias_nodes += self._size(target)
                if self._alias_nodes > self._budget:
                    raise _OverBudget(
                        f"aliases expand to more than {self._budget:,} nodes (near line "
                        f"{event.start_mark.line + 1}); write the values out or use fewer "
                        "aliases"
                    )
        self._depth += 1
        if self._depth > MAX_DOCUMENT_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _OverBudget(
                f"nested more than {MAX_DOCUMENT_DEPTH} levels deep (line {mark.line + 1})"
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key written twice (YAML keeps the last one without a word:
        a repeated ``cron_expression`` would change the schedule unseen). Keys merged in
        with ``<<`` may be overridden, as YAML means them to be."""
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key.value!r} is given twice", key.start_mark
                    )
                seen.add((key.tag, key.value))
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return int(super().construct_yaml_int(node))
        except ValueError:  # (int() refused the digits)
            raise yaml.constructor.ConstructorError(
                None, None, _NUMBER_TOO_LONG, node.start_mark
            ) from None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The tag of a plain value, as YAML 1.1 reads it but for sexagesimal numbers:
        ``9:00`` and ``1:30`` are text, as in YAML 1.2 and JSON (YAML 1.1 read them as 540
        and 90: ``schedule: 9:00`` was refused as "got int", ``interval_seconds: 1:30``
        taken as 90 seconds unseen, where an hour and a half may have been meant)."""
        tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        if tag in _SEXAGESIMAL_TAGS and kind is yaml.ScalarNode and ":" in value:
            return "tag:yaml.org,2002:str"
        return tag

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        with self._composing(anchor):
            return super().compose_sequence_node(anchor)

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        with self._composing(anchor):
            return super().compose_mapping_node(anchor)

    @contextlib.contextmanager
    def _composing(self, anchor: str | None) -> Iterator[None]:
        self._open.append(anchor)
        try:
            yield
        finally:
            self._open.pop()

    def _size(self, node: yaml.Node) -> int:
        """Nodes in ``node`` with aliases expanded (iterative, memoised per node)."""
        pending = [node]
        while pending:
            current = pending[-1]
            if id(current) in self._sizes:
                pending.pop()
                continue
            children = _children(current)
            missing = [c for c in children if id(c) not in self._sizes]
            if missing:
                pending.extend(missing)
                continue
            pending.pop()
            self._sizes[id(current)] = min(
                1 + sum(self._sizes[id(c)] for c in children), self._budget + 1
            )
        return self._sizes[id(node)]


BoundedYamlLoader.add_constructor("tag:yaml.org,2002:int", BoundedYamlLoader.construct_yaml_int)
# YAML 1.1 (PyYAML) reads 1e3 and 1.5e3 as text: its floats need a dot and a signed
# exponent. YAML 1.2 and JSON read them as numbers, and so does a person writing
# `interval_seconds: 1e3`.
BoundedYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


_SEXAGESIMAL_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str, *, what: str = "YAML") -> Any:
    """``yaml.safe_load`` within the bounds of :class:`BoundedYamlLoader`.

    Raises:
        DocumentError: Too large, too deep, too many aliases, or not YAML.
    """
    _check_size(text, what)
    try:  # (the reader checks every character when it is made: a raw control one fails)
        loader = BoundedYamlLoader(text)
    except yaml.reader.ReaderError as exc:
        breaks = list(_LINE_BREAKS.finditer(text, 0, exc.position))  # (YAML's, as its marks)
        line = len(breaks) + 1
        column = exc.position - (breaks[-1].end() if breaks else 0) + 1
        raise DocumentError(
            f"{what}: not valid YAML/JSON: line {line}, column {column}: the character "
            f"U+{exc.character:04X} cannot be written in YAML (a control "
            "character or a noncharacter)"
        ) from None
    try:
        return loader.get_single_data()
    except _OverBudget as exc:
        raise DocumentError(f"{what}: {exc}") from None
    except yaml.YAMLError as exc:
        said = _one_line(exc) + _quote_hint(exc, text)
        raise DocumentError(f"{what}: not valid YAML/JSON: {said}") from None
    finally:
        loader.dispose()


_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _quote_hint(exc: yaml.YAMLError, text: str) -> str:
    """How to write a cron that YAML refused unquoted: ``*/5 * * * *`` starts an alias to
    YAML, and ``@daily`` starts no token at all."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return ""
    mark = exc.context_mark or exc.problem_mark
    alias = exc.context == "while scanning an alias"
    if mark is None or not (alias or (exc.problem or "").startswith("found character '@'")):
        return ""
    lines = text.splitlines()
    line = lines[mark.line][mark.column :] if mark.line < len(lines) else ""
    value = line.split(" #")[0].strip()  # (without a comment after it)
    if not value.startswith(("*", "@")) or any(c in value for c in "[]{}'"):
        value = "*/5 * * * *"  # (flow style: where the value ends is not known here)
    return f"; quote a value that starts with '*' or '@': '{value}'"


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line (it prints the marks with a caret on lines of their own)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        said = "; ".join(part for part in (exc.context, exc.problem) if part)
        return (said or type(exc).__name__) + where
    return " ".join(str(exc).split())


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (for line numbers), within the same bounds; None if the
    text does not compose."""
    if len(text) > MAX_DOCUMENT_BYTES:
        return None
    loader = BoundedYamlLoader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


_NOT_READ = {"float_parsing", "int_parsing", "bool_parsing", "float_type", "int_type"}


def as_written(error: Mapping[str, Any]) -> str:
    """``, got '1:00'`` for a pydantic error about a number (or boolean) given as text,
    to show the value as the file has it (YAML reads a bare ``1:00`` as text); else ``""``."""
    given = error.get("input")
    if error.get("type") in _NOT_READ and isinstance(given, str) and len(given) <= 40:
        return f", got {given!r}"
    return ""
