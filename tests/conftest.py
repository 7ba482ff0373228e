"""Shared fixtures: settings isolated from the environment, a scheduler factory on a real
SQLite file, a helper to wait for conditions, and the PostgreSQL URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduler import Settings, TaskScheduler
from scheduler.settings import sqlite_url
from tests import prompt_graphs

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "SCHEDULER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SCHEDULER_TEST_REQUIRE_POSTGRES") == "1"


def make_settings(**overrides: Any) -> Settings:
    """Settings that ignore ``.env`` and the caller's environment defaults."""
    values: dict[str, Any] = {
        "poll_interval_seconds": 0.1,
        "stop_grace_seconds": 2,
        "tasks_file": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


SchedulerFactory = Callable[..., TaskScheduler]


@pytest.fixture
async def make_scheduler(tmp_path: Path) -> AsyncIterator[SchedulerFactory]:
    """Build schedulers on a SQLite file in ``tmp_path``; stopped after the test."""
    created: list[TaskScheduler] = []

    def make(
        *,
        db: str = "scheduler.db",
        graph: Any = prompt_graphs.graph,
        persistent: bool = True,
        **overrides: Any,
    ) -> TaskScheduler:
        scheduler = TaskScheduler(
            persistent, tmp_path / db, graph=graph, settings=make_settings(**overrides)
        )
        created.append(scheduler)
        return scheduler

    yield make
    for scheduler in created:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        await asyncio.sleep(interval)


@pytest.fixture
def postgres_url() -> str:
    """A reachable PostgreSQL URL; skips (or fails in CI) when there is none."""
    try:
        import psycopg

        dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3):
            pass
    except Exception as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL required (SCHEDULER_TEST_REQUIRE_POSTGRES=1) but {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"sched_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


PYTHON = sys.executable


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskScheduler]:
    """A scheduler (not started) on a SQLite file, and on PostgreSQL (a schema of its own),
    for tests of what its store reads and writes."""
    url = (
        sqlite_url(tmp_path / "scheduler.db")
        if request.param == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    made = TaskScheduler(database_url=url)
    try:
        yield made
    finally:
        made.close()


@contextlib.asynccontextmanager
async def loop_gaps(every: float = 0) -> AsyncIterator[list[float]]:
    """The times between turns of this event loop, seen by a task that sleeps ``every``
    seconds, while the block runs (its largest: how long the loop stalled)."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(every)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticking = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        ticking.cancel()


def default_sigint() -> None:
    """``preexec_fn`` of a child that is sent Ctrl+C: SIGINT as in a terminal. A shell's
    background job (a test run started with ``&``) starts with it ignored, and Python
    leaves an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Output:
    """What a child process writes to ``stream``, collected line by line by a thread, so
    that a wait for a line has a deadline even if the child never writes it."""

    def __init__(self, process: subprocess.Popen[str], stream: IO[str] | None) -> None:
        assert stream is not None
        self.process, self.lines = process, list[str]()
        self._stream = stream
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """The first line matching ``pattern`` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text}")

    def close(self) -> None:
        """After the process ended: the rest of its output read."""
        self._reader.join(timeout=5)
        self._stream.close()

    @property
    def text(self) -> str:
        return "".join(self.lines)


class LangGraphDev:
    """A real ``langgraph dev`` server (``langgraph-cli[inmem]``), offline on 127.0.0.1, on
    ``tests/langgraph.json``'s graphs, in a directory of its own; stopped by the fixture."""

    def __init__(self, directory: Path) -> None:
        import re
        import shutil
        import socket
        import subprocess
        import threading
        import time

        for name in ("langgraph.json", "server_graphs.py"):
            shutil.copy(ROOT / "tests" / name, directory / name)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.log: list[str] = []
        env = {
            **os.environ,
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGSMITH_TRACING": "false",
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            str(Path(sys.executable).with_name("langgraph")),
            "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: self.log.extend(stdout), daemon=True).start()
        deadline = time.monotonic() + 90
        self.url = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            text = "".join(self.log)
            found = re.search(r"API: \S*(http://127\.0\.0\.1:\d+)", re.sub(r"\x1b\[\d+m", "", text))
            if found and "Application started up" in text:
                self.url = found.group(1)  # read, not assumed: a busy port moves
                break
            time.sleep(0.1)
        if not self.url:
            self.stop()
            raise RuntimeError("langgraph dev did not start:\n" + "".join(self.log)[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except Exception:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="session")
def langgraph_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LangGraphDev]:
    """A running ``langgraph dev`` for the whole session (skipped where the CLI is not
    installed, never in CI)."""
    if not Path(sys.executable).with_name("langgraph").exists():
        if REQUIRE_POSTGRES:  # CI installs the dev extras: the CLI must be there
            pytest.fail("langgraph-cli[inmem] is not installed (pip install -e '.[dev]')")
        pytest.skip("langgraph-cli[inmem] is not installed")
    server = LangGraphDev(tmp_path_factory.mktemp("langgraph-dev"))
    try:
        yield server
    finally:
        server.stop()
