"""Versions: the project's requirements of the scheduler's packages that no version the
scheduler can use meets (``langgraph==0.6.10`` from ``pip freeze``), told before pip
refuses to install both."""

from __future__ import annotations

import contextlib
import re
from typing import Any

__all__ = ["canonical", "clashes"]


def canonical(name: str) -> str:
    """A distribution name compared as pip does (``Langchain_Core`` = ``langchain-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def clashes(present: list[Any], wanted: list[str]) -> list[str]:
    """Notes on the project's requirements of the scheduler's packages whose versions no
    version the scheduler needs can meet (``langgraph==0.6.10``: pip cannot install both).
    Checked on the versions either names (enough for pins and bounds)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.version import InvalidVersion, Version
    except ImportError:  # (installed with langchain-core) nothing to check with
        return []
    needed = {}
    for text in wanted:
        with contextlib.suppress(InvalidRequirement):
            needed[canonical(Requirement(text).name)] = Requirement(text)
    notes = []
    for text in present:
        try:
            theirs = Requirement(str(text))
        except InvalidRequirement:
            continue
        ours = needed.get(canonical(theirs.name))
        if ours is None or not theirs.specifier or not ours.specifier:
            continue
        if theirs.marker is not None and not theirs.marker.evaluate():
            continue  # not for this Python
        versions: set[Version] = set()
        for clause in (*theirs.specifier, *ours.specifier):
            with contextlib.suppress(InvalidVersion):  # each bound, and just above it
                release = Version(clause.version.removesuffix(".*")).release
                for parts in (release, (*release, 1), (*release[:-1], release[-1] + 1)):
                    versions.add(Version(".".join(map(str, parts))))
        if not any(
            theirs.specifier.contains(v, prereleases=True)
            and ours.specifier.contains(v, prereleases=True)
            for v in versions
        ):
            notes.append(
                f"{text} cannot be installed with the scheduler, which needs "
                f"{ours.name}{ours.specifier}: change it, or pip will refuse to install both"
            )
    return notes
