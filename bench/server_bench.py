"""Scenarios 9 and 10: the HTTP server.

9. The LangGraph SDK against this scheduler's server (``python -m scheduler serve --http``)
   and against the reference, a real ``langgraph dev`` (``langgraph-cli[inmem]``, offline),
   both on the trivial graph in a ``langgraph.json``: median latency of ``crons.create`` and
   ``crons.search``, and how late a ``* * * * *`` cron's run is created after the minute
   (``created_at`` of the run, as the SDK lists it, one run per cron, ``n`` crons on threads).
   Each side also measures the SDK's round trip to a no-op ASGI server on uvicorn (the floor
   no server can beat), one floor call before each measured call so that both see the same
   machine, and the calls minus that floor: the server's own share.
10. This scheduler alone: start lateness of interval tasks while a separate process sends the
   HTTP API ``rate`` requests per second, against the same without the load: blocks with
   the load and without alternate, so that a noisy minute of the machine falls on both.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import MeasurementError, Result, lateness, percentile

__all__ = ["api_load", "langgraph_sdk", "reference_sdk"]

ROOT = Path(__file__).resolve().parent.parent
HELLO = {"messages": [{"role": "user", "content": "hi"}]}


def _project(workdir: Path) -> None:
    shutil.copy(ROOT / "bench" / "workloads.py", workdir / "workloads.py")
    (workdir / "langgraph.json").write_text(
        json.dumps({"dependencies": ["."], "graphs": {"trivial": "./workloads.py:graph"}})
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    env.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT)
    return env


# An ASGI application that answers every request at once with a small JSON body: what the
# SDK's own round trip costs (client, HTTP, uvicorn) with no server work at all.
_NOOP = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"cron_id": "x"}'})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class _Server:
    def __init__(self, workdir: Path, *, reference: bool | None) -> None:
        _project(workdir)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = "/ok" if reference else "/healthz" if reference is False else "/"
        if reference is None:  # the no-op floor
            command = [sys.executable, "-c", _NOOP, str(port)]
        elif reference:
            command = [str(Path(sys.executable).with_name("langgraph")), "dev", "--no-browser",
                       "--no-reload", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        else:
            command = [sys.executable, "-m", "scheduler", "serve", "--http", f"127.0.0.1:{port}"]
        env = {
            **_env(),
            "SCHEDULER_DB_PATH": str(workdir / "ours.db"),
            "SCHEDULER_TASKS_FILE": "none",
            "SCHEDULER_LOG_LEVEL": "WARNING",
            "SCHEDULER_HTTP_RATE_PER_SECOND": "0",
        }
        self.log = (workdir / "server.log").open("w")
        self.process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    async def ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        path = self.ready_path
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise MeasurementError(f"the server exited ({self.process.returncode})")
                try:
                    if (await client.get(self.url + path, timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise MeasurementError("the server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


async def _sdk(workdir: Path, *, n: int, crons: int, reference: bool) -> Result:
    from langgraph_sdk import get_client

    (workdir / "floor").mkdir()
    noop = _Server(workdir / "floor", reference=None)
    server = _Server(workdir, reference=reference)
    try:
        await noop.ready()
        await server.ready()
        async with get_client(url=server.url) as client, get_client(url=noop.url) as bare:
            body = {"assistant_id": "trivial", "schedule": "0 9 * * *", "input": HELLO}
            floors: list[float] = []

            async def floor() -> None:  # the SDK's round trip, with no server work
                began = time.perf_counter()
                await bare.http.post("/runs/crons", json=body)
                floors.append(time.perf_counter() - began)

            for _ in range(3):  # warm-up: imports, first connections
                made = await client.crons.create("trivial", schedule="0 9 * * *", input=HELLO)
                await client.crons.search(limit=10)
                await client.crons.delete(made["cron_id"])
                await floor()
            floors.clear()
            creates, searches, ids = [], [], []
            for i in range(n):
                await floor()
                began = time.perf_counter()
                made = await client.crons.create(
                    "trivial", schedule="0 9 * * *", input=HELLO, metadata={"i": i}
                )
                creates.append(time.perf_counter() - began)
                ids.append(made["cron_id"])
            for _ in range(n):
                await floor()
                began = time.perf_counter()
                await client.crons.search(limit=10)
                searches.append(time.perf_counter() - began)
            for cron_id in ids:
                await client.crons.delete(cron_id)
            late = await _minute_lateness(client, crons) if crons else []
    finally:
        server.stop()
        noop.stop()
    least = statistics.median(floors)
    figures: Result = {
        "create_p50": statistics.median(creates),
        "search_p50": statistics.median(searches),
        "floor_p50": least,
        "create_server": statistics.median(creates) - least,
        "search_server": statistics.median(searches) - least,
        "crons": crons,
    }
    if late:
        figures.update(lateness(late, "minute"))
    return figures


async def _minute_lateness(client: Any, crons: int) -> list[float]:
    """Create ``crons`` thread crons ``* * * * *`` just after a minute starts; after the
    next minute, how late each one's first run was created."""
    now = time.time()
    if now % 60 > 45:  # too close to the next minute to set up before it
        await asyncio.sleep(61 - now % 60)
    threads = [await client.threads.create() for _ in range(crons)]
    made = [
        await client.crons.create_for_thread(
            t["thread_id"], "trivial", schedule="* * * * *", input=HELLO
        )
        for t in threads
    ]
    boundary = (time.time() // 60 + 1) * 60
    found: dict[str, float] = {}
    deadline = boundary + 60
    while time.time() < deadline and len(found) < crons:
        await asyncio.sleep(1)
        if time.time() < boundary:
            continue
        for thread in threads:
            if thread["thread_id"] in found:
                continue
            runs = await client.runs.list(thread["thread_id"])
            times = [datetime.fromisoformat(r["created_at"]).timestamp() for r in runs]
            times = [t for t in times if t >= boundary - 1]
            if times:
                found[thread["thread_id"]] = min(times) - boundary
    for cron in made:
        await client.crons.delete(cron["cron_id"])
    if len(found) < crons:
        raise MeasurementError(f"only {len(found)}/{crons} crons made a run within a minute")
    return list(found.values())


async def langgraph_sdk(workdir: Path, *, n: int, crons: int) -> Result:
    """This scheduler's server (ours)."""
    return await _sdk(workdir, n=n, crons=crons, reference=False)


async def reference_sdk(workdir: Path, *, n: int, crons: int) -> Result:
    """``langgraph dev`` (the reference)."""
    return await _sdk(workdir, n=n, crons=crons, reference=True)


# -- scenario 10 ----------------------------------------------------------------------------

# The load generator: ``rate`` requests per second in blocks of ``block`` s, each followed by
# as long a pause, for ``seconds`` in all; prints the blocks it loaded (wall-clock times) and
# the rate it reached in them.
_LOAD = """
import json, sys, time, httpx
url, rate, seconds, block = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
paths = ["/api/tasks/s0", "/api/runs?limit=10", "/healthz", "/api/tasks/s1"]
done, blocks, busy = 0, [], 0.0
with httpx.Client(base_url=url, timeout=10) as c:
    c.get("/healthz").raise_for_status()  # (the connection made before the first block)
    end = time.time() + seconds
    while time.time() + block <= end:
        began, start, sent = time.time(), time.monotonic(), 0
        while (now := time.monotonic()) - start < block:
            due = start + sent / rate
            if due > now:
                time.sleep(due - now)
            c.get(paths[done % len(paths)]).raise_for_status()
            sent += 1
            done += 1
        busy += time.monotonic() - start
        blocks.append([began, time.time()])
        time.sleep(block)
print(json.dumps({"blocks": blocks, "served": done / busy}))
"""


async def api_load(
    workdir: Path, *, n: int, interval: float, duration: float, rate: float, block: float
) -> Result:
    """``n`` interval tasks for ``2 * duration`` s with the HTTP server on, while a separate
    process sends ``rate`` requests per second in blocks of ``block`` s, each followed by as
    long a pause: start lateness in the loaded blocks against the quiet ones between them,
    so that both see the machine of the same minute."""
    from bench.ours import _at, _graph, _settings, _ts
    from scheduler import RunStatus, TaskDefinition, TaskScheduler
    from scheduler.server import HttpServer

    port = _free_port()
    settings = _settings(http_rate_per_second=0)
    scheduler = TaskScheduler(
        db_path=workdir / "ours.db", graph=_graph("trivial"), settings=settings
    )
    scheduler.start()
    http = HttpServer(scheduler, settings, f"127.0.0.1:{port}")
    await http.start()
    start = time.time() + 1.5
    step = interval / n
    scheduler.add_tasks(
        [
            TaskDefinition(
                id=f"s{i}", interval_seconds=interval, start_date=_at(start + i * step), prompt="hi"
            )
            for i in range(n)
        ]
    )
    await asyncio.sleep(max(0.0, start - time.time()))
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LOAD, f"http://127.0.0.1:{port}", str(rate),
        str(2 * duration), str(block), stdout=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    output, _ = await load.communicate()
    await http.stop()
    await scheduler.stop(grace_seconds=5)
    runs = [r for r in scheduler.list_runs(limit=None) if r.status is RunStatus.SUCCEEDED]
    scheduler.close()
    if load.returncode != 0:
        raise MeasurementError(f"the load generator failed ({load.returncode})")
    told = json.loads(output.decode().strip().splitlines()[-1])
    margin = 0.25  # past each edge of a block: the load's start and end are neither
    loaded_blocks = [(lo + margin, hi - margin) for lo, hi in told["blocks"]]
    quiet_blocks = [(hi + margin, hi + block - margin) for _, hi in told["blocks"]]

    def late(blocks: list[tuple[float, float]]) -> list[float]:
        return [
            _ts(r.started_at) - _ts(r.scheduled_for)
            for r in runs
            if any(lo <= _ts(r.scheduled_for) < hi for lo, hi in blocks)
        ]

    quiet, loaded = late(quiet_blocks), late(loaded_blocks)
    if not quiet or not loaded:
        raise MeasurementError("no runs in a window")
    figures: Result = {"served": told["served"]}
    figures.update(lateness(quiet, "quiet"))
    figures.update(lateness(loaded, "loaded"))
    figures["load_ratio"] = percentile(loaded, 99) / max(percentile(quiet, 99), 1e-6)
    return figures
