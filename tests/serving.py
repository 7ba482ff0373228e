"""``python -m scheduler serve --http`` as a subprocess, for the server tests: on loopback
(or the host given), on a port the server picks itself (``HOST:0``, read from its log: a
port probed here could be taken by another test before the server binds it), the
environment without ``SCHEDULER_`` settings plus the test's own, output in ``server.log``,
ready once ``/healthz`` answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import PYTHON, ROOT

__all__ = ["ServeProcess"]


class ServeProcess:
    """The server in ``directory`` (its database ``scheduler.db`` there, no tasks file),
    with ``env`` on top; ``url`` once :meth:`wait_ready` returns; stopped with SIGTERM by
    :meth:`stop`, which returns its output."""

    def __init__(
        self,
        directory: Path,
        *,
        env: dict[str, str] | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.url = ""
        full = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")},
            "PYTHONPATH": str(ROOT),
            "SCHEDULER_DB_PATH": str(directory / "scheduler.db"),
            "SCHEDULER_TASKS_FILE": "none",
            **(env or {}),
        }
        if api_key is not None:
            full["SCHEDULER_API_KEY"] = api_key
        self.log = directory / "server.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "scheduler", "serve", "--http", f"{host}:0"],
                cwd=directory,
                env=full,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the server says where it listens and ``/healthz`` answers 200 there.

        Raises:
            AssertionError: The server exited or did not answer in time (with its output).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.stop()[-3000:]}")
            found = re.search(r"HTTP API on (http://\S+:\d+)", self.output())
            try:
                if found and httpx.get(f"{found[1]}/healthz", timeout=1).status_code == 200:
                    self.url = found[1]
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not answer:\n{self.stop()[-3000:]}")

    def output(self) -> str:
        """What it has printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()
