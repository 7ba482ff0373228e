"""What the crons API costs the server itself: ``python -m bench.server_cost``.

Scenario 9 measures the LangGraph SDK over HTTP, where the client's own round trip is more
than half of every call. This calls the server's ASGI application in-process (a request
scope and its body, no socket), so only the server's own work is timed: ``crons.create``
end to end and the parts of a create (the task's validation, ``add_task`` on the event
loop, ``aadd_task`` through the async API's thread, a no-op hop through that thread and
through ``asyncio.to_thread``), interleaved so that all of them see the same machine; then
``crons.search`` of the crons made. Prints the median of each, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from scheduler import TaskDefinition, TaskScheduler
from scheduler.offload import Offloader
from scheduler.server import create_app
from scheduler.server.crons import graph_id
from scheduler.settings import Settings

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
HELLO = {"messages": [{"role": "user", "content": "hi"}]}


async def _call(app: Any, path: str, body: bytes) -> int:
    """One POST through the ASGI application; its status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8123),
        "headers": [(b"host", b"127.0.0.1:8123"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # no disconnect while the request is answered
        return {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(n: int, workdir: Path) -> dict[str, list[float]]:
    shutil.copy(ROOT / "bench" / "workloads.py", workdir / "workloads.py")
    settings = Settings(
        db_path=workdir / "cost.db",
        tasks_file=None,
        graph=str(workdir / "workloads.py") + ":graph",
        http_rate_per_second=0,
    )
    scheduler = TaskScheduler.from_settings(settings)
    scheduler.start()
    app = create_app(scheduler, settings)
    assistant = graph_id(settings.graph)
    create = json.dumps(
        {"assistant_id": assistant, "schedule": "0 9 * * *", "input": HELLO, "metadata": {"i": 1}}
    ).encode()
    offload = Offloader()
    search = b'{"limit": 10}'

    def task() -> TaskDefinition:
        return TaskDefinition(
            id=str(uuid.uuid4()), cron_expression="0 9 * * *", prompt="hi", metadata={"i": 1}
        )

    async def add_on_loop() -> None:
        scheduler.add_task(task(), replace_existing=False)

    async def aadd() -> None:
        await scheduler.aadd_task(task(), replace_existing=False)

    async def status_ok(path: str, body: bytes) -> None:
        status = await _call(app, path, body)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")

    parts: dict[str, Callable[[], Awaitable[Any]]] = {
        "crons.create (ASGI, in-process)": lambda: status_ok("/runs/crons", create),
        "TaskDefinition validation": lambda: asyncio.sleep(0, task()),
        "add_task on the event loop": add_on_loop,
        "aadd_task (the async API's thread)": aadd,
        "no-op hop, the async API's thread": lambda: offload.run(int),
        "no-op hop, asyncio.to_thread": lambda: asyncio.to_thread(int),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    searches: list[float] = []
    try:
        for round_ in range(n + n // 10):  # the first tenth warms up
            for name, part in parts.items():
                began = time.perf_counter()
                await part()
                if round_ >= n // 10:
                    times[name].append(time.perf_counter() - began)
        # searches after the writes, as scenario 9 makes them (a write that is not a cron
        # of this API makes the next search read every cron again)
        for round_ in range(n + n // 10):
            began = time.perf_counter()
            await status_ok("/runs/crons/search", search)
            if round_ >= n // 10:
                searches.append(time.perf_counter() - began)
        times["crons.search (ASGI, in-process)"] = searches
    finally:
        offload.close()
        await scheduler.stop()
        scheduler.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_cost", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="calls of each (default 1000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        times = asyncio.run(_measure(args.n, Path(directory)))
    width = max(len(name) for name in times)
    for name, values in times.items():
        print(f"{name:<{width}}  {statistics.median(values) * 1000:7.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
