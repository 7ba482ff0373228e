"""A callback module whose import has a visible side effect: it creates the file named by
``SIDE_EFFECT_MARKER``. Checking a callback without importing its module leaves no file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

marker = os.environ.get("SIDE_EFFECT_MARKER")
if marker:
    Path(marker).write_text("imported\n")


def notify(task: Any, result: Any) -> None:
    """A result callback."""
