"""The project keeps its promises: lint and types pass, every setting is documented, and
CI runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scheduler import Settings
from tests.conftest import ROOT

LINTED = ["scheduler", "bench", "tests", "graph.py", "main.py"]


@pytest.mark.slow
def test_ruff_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *LINTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_strict_passes_on_the_package() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "scheduler"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def setting_names() -> list[str]:
    return [f"SCHEDULER_{name.upper()}" for name in Settings.model_fields]


def test_every_setting_is_in_env_example_and_readme() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in [*setting_names(), "LLM_MODEL", "AGENT_CHECKPOINT_DB"]:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"{name} missing in .env.example"
        assert f"`{name}`" in readme, f"{name} missing in README's settings table"


def test_ci_runs_the_readme_test_command() -> None:
    done = subprocess.run(
        [
            "awk",
            "/<!-- test-command/{found=1; next} found && /^```bash/{grab=1; next} "
            "grab && /^```/{exit} grab",
            "README.md",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    command = done.stdout.strip()
    assert command.endswith("python -m pytest"), command
    assert "pip install" in command
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
