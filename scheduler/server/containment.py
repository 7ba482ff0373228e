"""A search's ``metadata`` filter, matched as the LangGraph server matches it (PostgreSQL's
``@>`` on JSON): each key of an object with a value that holds the wanted one (deep), each
item of an array held by some item, else equal (``true`` is not ``1``).

Searches are answered on the event loop, so a match has a bound: matched item by item, an
array of 100,000 wanted items against a cron's array of 40,000 took hours, and nothing
fired meanwhile. The wanted scalars of an array are looked up in a set of the value's
(linear), and one search takes at most :data:`MAX_STEPS` steps over all the values it
looks at; past that it is refused (:class:`FilterTooLargeError`, a 422 naming the field).
Within the bound, :meth:`MetadataFilter.select` lets the loop run every :data:`SLICE`
steps (a match of a few tenths of a second held it all along).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["MAX_STEPS", "SLICE", "FilterTooLargeError", "MetadataFilter"]

#: Steps (a value compared, an array item indexed) one search may take: a few tenths of a
#: second; a filter of a few keys over 10,000 crons takes under 50,000.
MAX_STEPS = 1_000_000
#: Steps matched between two turns of the event loop: a few milliseconds.
SLICE = 10_000

T = TypeVar("T")

_SCALARS = (str, int, float, bool, type(None))


class FilterTooLargeError(ValueError):
    """A filter that would take more than :data:`MAX_STEPS` steps to match."""

    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field}: too large a filter to match (more than {MAX_STEPS:,} comparisons "
            "against the stored values); give fewer array items"
        )


def _key(value: Any) -> tuple[str, Any]:
    """A scalar as a set member that keeps JSON's kinds apart (``true`` is not ``1``, and
    ``1`` is ``1.0``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


class MetadataFilter:
    """Whether values hold ``wanted``, for one search, within :data:`MAX_STEPS` steps.

    Args:
        wanted: The filter (``{}`` holds in every object).
        field: The request field it came from, named in the error.
    """

    def __init__(self, wanted: Any, *, field: str = "metadata") -> None:
        self.wanted = wanted
        self.field = field
        self.steps = 0

    def matches(self, value: Any) -> bool:
        """``value`` holds the filter.

        Raises:
            FilterTooLargeError: The search has taken more than :data:`MAX_STEPS` steps.
        """
        return self._holds(value, self.wanted)

    async def select(self, items: Iterable[T], value: Callable[[T], Any]) -> list[T]:
        """The items whose ``value(item)`` holds the filter, in order; the event loop runs
        every :data:`SLICE` steps (``items`` must not change meanwhile: a copy, if it may).

        Raises:
            FilterTooLargeError: As :meth:`matches`.
        """
        chosen: list[T] = []
        pause = self.steps + SLICE
        for item in items:
            if self._holds(value(item), self.wanted):
                chosen.append(item)
            if self.steps >= pause:
                pause = self.steps + SLICE
                await asyncio.sleep(0)
        return chosen

    def _step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise FilterTooLargeError(self.field)

    def _holds(self, value: Any, wanted: Any) -> bool:
        self._step()
        if isinstance(wanted, dict):
            return isinstance(value, dict) and all(
                key in value and self._holds(value[key], item) for key, item in wanted.items()
            )
        if isinstance(wanted, list):
            return isinstance(value, list) and self._array_holds(value, wanted)
        if isinstance(value, bool) or isinstance(wanted, bool):
            return value is wanted
        return bool(value == wanted)

    def _array_holds(self, value: list[Any], wanted: list[Any]) -> bool:
        self._step(len(value) + len(wanted))
        scalars = [item for item in wanted if isinstance(item, _SCALARS)]
        if scalars:  # a scalar is held only by an equal item: one set, not a scan per item
            have = {_key(item) for item in value if isinstance(item, _SCALARS)}
            if not all(_key(item) in have for item in scalars):
                return False
        nested = [item for item in wanted if not isinstance(item, _SCALARS)]
        containers = [item for item in value if not isinstance(item, _SCALARS)] if nested else []
        return all(any(self._holds(have, item) for have in containers) for item in nested)
