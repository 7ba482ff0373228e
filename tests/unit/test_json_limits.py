"""The JSON checks every input, metadata, context and cron request goes through
(``scheduler.limits``): depth counted exactly up to the limit, and bounded beyond it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler.limits import check_json_value, json_depth


def _depth(value: Any) -> int:
    """The plain definition, for values that end: 0 for a scalar, 1 + the deepest child."""
    if isinstance(value, dict):
        return 1 + max((_depth(child) for child in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_depth(child) for child in value), default=0)
    return 0


def _value(rng: random.Random, levels: int) -> Any:
    if levels == 0 or rng.random() < 0.25:
        return rng.choice([1, "x", None, 2.5, True, ""])
    children = [_value(rng, levels - 1) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        return children if rng.random() < 0.8 else tuple(children)
    return {str(i): child for i, child in enumerate(children)}


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 7, 32])
def test_the_depth_is_exact_up_to_the_limit_and_past_it_says_so(limit: int) -> None:
    rng = random.Random(limit)
    for _ in range(2000):
        value = _value(rng, rng.randint(0, 12))
        depth = _depth(value)
        found = json_depth(value, limit=limit)
        if depth <= limit:
            assert found == depth, value
        else:
            assert found == limit + 1, value


def test_values_nested_without_end_cost_about_the_limit() -> None:
    deep: list[Any] = []
    tip = deep
    for _ in range(200_000):  # far past any recursion limit
        tip.append([])
        tip = tip[0]
    itself: list[Any] = []
    itself.extend([itself, itself])  # a walk of every path would take 2**33 steps
    mapping: dict[str, Any] = {}
    mapping["a"] = mapping
    for value in (deep, itself, mapping):
        assert json_depth(value, limit=32) == 33
        with pytest.raises(ValueError, match="nested more than 32 levels deep"):
            check_json_value(value)


def test_a_deep_branch_after_shallow_ones_is_found() -> None:
    value: dict[str, Any] = {"a": [1, 2], "b": {"c": {"d": []}}, "e": "x"}
    assert json_depth(value, limit=32) == 4
    assert json_depth(value, limit=3) == 4
    assert json_depth([[], [[[[]]]], []], limit=32) == 5
