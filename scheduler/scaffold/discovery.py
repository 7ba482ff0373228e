"""Which packages a project's build takes, so that the copied ``scheduler`` package gets
into its wheel: setuptools' automatic discovery at the root (a ``pyproject.toml`` that
names no packages, as ``uv init`` writes it) takes the one top-level package it finds and
refuses two ("Multiple top-level packages discovered in a flat-layout"); hatchling and
Poetry take the package named after the project by itself; a manifest that names its
packages gets only those."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scheduler.scaffold.versions import canonical

__all__ = ["flat_packages", "found_by_itself", "names_its_packages"]

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


def names_its_packages(project: Path, data: dict[str, Any]) -> bool:
    """The build at the project's root takes only the packages the manifest names (a
    list, an ``include`` of setuptools' discovery, setuptools' ``py-modules``) or, naming
    none, only the one hatchling or Poetry finds by itself: a wheel lacks the scheduler's
    unless it is named too."""
    tool = data.get("tool", {})
    backend = data.get("build-system", {}).get("build-backend", "setuptools")
    if "poetry" in backend:
        packages = tool.get("poetry", {}).get("packages")
        return isinstance(packages, list) or found_by_itself(project, data, "") is not None
    if "hatchling" in backend:
        wheel = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
        listed = isinstance(wheel.get("packages"), list)
        return listed or found_by_itself(project, data, "") is not None
    setuptools = tool.get("setuptools", {})
    packages = setuptools.get("packages")
    find = packages.get("find") if isinstance(packages, dict) else None
    return (
        "setuptools" in backend
        and (isinstance(packages, list) or "py-modules" in setuptools
             or (isinstance(find, dict) and bool(find.get("include"))))
    )  # fmt: skip


def found_by_itself(project: Path, data: dict[str, Any], parent: str) -> str | None:
    """The package that hatchling or Poetry takes by itself when nothing lists one: the
    one named after the project, in ``parent`` (``src/my_agent`` for ``my-agent``; ``""``:
    at the root); a wheel then holds only it, so the scaffolder lists it with the
    scheduler's."""
    poetry = data.get("tool", {}).get("poetry", {})
    name = str(data.get("project", {}).get("name") or poetry.get("name") or "")
    names = dict.fromkeys(re.sub(r"[^\w\d.]+", "_", n) for n in (name, canonical(name)))
    at_root = any((project / n / "__init__.py").is_file() for n in names)
    if parent not in ("", "src") or not name or (parent == "src" and at_root):
        return None  # (one at the root is what they take)
    base = project / parent if parent else project
    return next((n for n in names if (base / n / "__init__.py").is_file()), None)
