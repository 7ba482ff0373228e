"""The graph id the crons API answers for the scheduler's graph: the ``langgraph.json`` entry
that names the same file and attribute, however ``SCHEDULER_GRAPH`` spells it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.server.crons import graph_id

GRAPHS = '{"graphs": {"sleeper": "./spy.py:sleeper", "asker": "./spy.py:asker"}}'


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("./spy.py:sleeper", "sleeper"),
        ("spy.py:asker", "asker"),
        ("spy:asker", "asker"),  # a module name
        ("{dir}/spy.py:sleeper", "sleeper"),  # absolute: it was "agent" (a wrong assistant)
        ("spy.py:asker ", "asker"),  # a space at the end: it was "agent"
        ("other.py:sleeper", "agent"),  # none of them
        ("http://127.0.0.1:2024#asker", "agent"),  # a LangGraph server's graph
    ],
)
def test_the_graph_is_found_however_its_target_is_written(
    tmp_path: Path, target: str, expected: str
) -> None:
    (tmp_path / "langgraph.json").write_text(GRAPHS)
    assert graph_id(target.format(dir=tmp_path), tmp_path) == expected
