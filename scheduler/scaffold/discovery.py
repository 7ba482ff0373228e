"""setuptools' automatic discovery at a project's root (a ``pyproject.toml`` that names no
packages, as ``uv init`` writes it): it takes the one top-level package it finds, and
refuses two ("Multiple top-level packages discovered in a flat-layout"), so the copied
``scheduler`` package beside the project's own one must be listed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["flat_packages"]

# the directories setuptools' flat-layout discovery leaves out (FlatLayoutPackageFinder)
_LEFT_OUT = {"ci", "bin", "debian", "doc", "docs", "documentation", "manpages", "news"}
_LEFT_OUT |= {"newsfragments", "changelog", "test", "tests", "unit_test", "unit_tests"}
_LEFT_OUT |= {"example", "examples", "scripts", "tools", "util", "utils", "python", "build"}
_LEFT_OUT |= {"dist", "venv", "env", "requirements", "tasks", "fabfile", "site_scons"}
_LEFT_OUT |= {"benchmark", "benchmarks", "exercise", "exercises", "htmlcov"}


def flat_packages(project: Path, data: dict[str, Any], package: str) -> list[str]:
    """The project's own top-level packages at its root, when setuptools discovers its
    packages by itself (its backend, no ``packages`` or ``py-modules`` setting); none
    otherwise, or when there is none besides ``package``."""
    backend = data.get("build-system", {}).get("build-backend", "setuptools")
    setuptools = data.get("tool", {}).get("setuptools", {})
    if "setuptools" not in backend or {"packages", "py-modules"} & set(setuptools):
        return []
    return sorted(
        init.parent.name
        for init in project.glob("*/__init__.py")
        if init.parent.name.isidentifier()
        and init.parent.name != package
        and init.parent.name not in _LEFT_OUT
        and not init.parent.name.startswith("_")
    )
