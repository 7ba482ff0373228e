"""A LangGraph server that answers badly (compromised, or someone in between): what it says
is stored and logged bounded and printable, and no key meant for another service is sent
to it. The server is a small asyncio HTTP server on 127.0.0.1 answering the SDK's stream
request with the events each test gives; the scheduler is real (SQLite file)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import itertools
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scheduler import RunStatus, TaskDefinition, TaskScheduler, remote
from tests.conftest import make_settings

SSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
    b"content-location: /threads/t/runs/1ef00000-0000-0000-0000-000000000001\r\n\r\n"
)


RUN = re.compile(r"^GET /threads/[^/\s]+/runs/[^/\s]+ ")  # how a run ended, asked after
HISTORY = re.compile(r"^POST /threads/[^/\s]+/history ")  # where it stopped, after a success


class Hostile:
    """Answers every stream request with ``events`` (event name, data), or with ``failure``
    (a whole HTTP answer) when given; a run's ``GET`` with ``run``; the thread's history
    (read after a success, for a static breakpoint) with ``history``; keeps the requests'
    headers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.raw: list[bytes] = []  # written as they are after the events, when given
        self.failure = b""  # the whole answer to a stream request, instead of the events
        self.run: Any = {"run_id": "1ef00000-0000-0000-0000-000000000001", "status": "success"}
        self.run_failures: list[bytes] = []  # whole answers to the first GETs of the run
        self.history: Any = []  # the run's last checkpoint, if any: where it stopped
        self.answer = b"{}"  # the JSON body of another request that is not a stream
        self.answer_headers = b""  # more header lines for it
        self.headers: list[dict[str, str]] = []
        self.requests: list[str] = []  # their first lines
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in fields.items()}
        self.headers.append(headers)
        self.requests.append(head.split("\r\n")[0])
        await reader.readexactly(int(headers.get("content-length", 0)))
        if "/cancel" in head.split("\r\n")[0]:
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        elif self.run_failures and RUN.match(head):
            writer.write(self.run_failures.pop(0))
        elif head.startswith("GET") or HISTORY.match(head):
            answer = json.dumps(self.run).encode() if RUN.match(head) else self.answer
            answer = json.dumps(self.history).encode() if HISTORY.match(head) else answer
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            writer.write(self.answer_headers)
            writer.write(b"content-length: %d\r\n\r\n" % len(answer) + answer)
        elif self.failure:
            writer.write(self.failure)
        else:
            writer.write(SSE)
            for event, data in self.events:
                writer.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            for chunk in self.raw:
                writer.write(chunk)
                await writer.drain()
            writer.write(b"event: end\ndata: null\n\n")
        with contextlib.suppress(ConnectionError):  # the client may have given up on it
            await writer.drain()
        writer.close()


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server


_dbs = itertools.count()


async def _run(directory: Path, server: Hostile, target: str = "") -> Any:
    """A run of a task whose graph is ``server``'s (SCHEDULER_GRAPH=http://...#agent), or
    ``target``'s."""
    target = target or f"http://127.0.0.1:{server.port}#agent"
    database = directory / f"s{next(_dbs)}.db"
    scheduler = TaskScheduler(db_path=database, settings=make_settings(graph=target, max_retries=0))
    scheduler.start()
    try:
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
        return await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=30)
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def test_a_servers_error_is_stored_and_logged_bounded_and_printable(
    tmp_path: Path, hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "\x1b[2J\x1b[31mboom\r\n2099-01-01 INFO scheduler: forged log line\n"
    hostile.events = [("error", {"error": "X", "message": forged + "A" * 1_000_000})]
    with caplog.at_level(logging.WARNING):
        run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.FAILED
    assert len(run.error_message) <= 4000
    assert "\x1b" not in run.error_message and "\n" not in run.error_message
    assert "\\x1b[2J" in run.error_message  # shown escaped, not acted on
    logged = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert logged and all(len(m) < 5000 and "\n" not in m for m in logged)


async def test_a_servers_interrupts_are_stored_bounded(tmp_path: Path, hostile: Hostile) -> None:
    asked = [{"id": "I" * 100_000, "value": "q"}] * 100
    hostile.events = [("values", {"messages": [], "__interrupt__": asked})]
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.WAITING
    assert len(run.interrupts) == 20 and all(len(i["id"]) == 200 for i in run.interrupts)


async def test_only_langgraph_api_key_is_sent_to_the_server(
    tmp_path: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGGRAPH_API_KEY", raising=False)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-for-tracing-only")
    monkeypatch.setenv("LANGCHAIN_API_KEY", "lc-for-tracing-only")
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "ok"}]})]
    assert (await _run(tmp_path, hostile)).status is RunStatus.SUCCEEDED
    assert hostile.headers and all("x-api-key" not in h for h in hostile.headers)
    monkeypatch.setenv("LANGGRAPH_API_KEY", "lg-key")
    hostile.headers.clear()
    await _run(tmp_path, hostile)
    assert [h.get("x-api-key") for h in hostile.headers] == ["lg-key"] * 3  # stream, run, history


async def test_an_event_that_never_ends_fails_the_run_instead_of_filling_memory(
    tmp_path: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "MAX_EVENT_BYTES", 1 << 20)
    line = b"data: " + b"x" * 65_530 + b"\n"  # one event's data lines, and never its end
    hostile.raw = [b"event: values\n", *[line] * 200]  # 13 MB
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.FAILED
    assert "one event of more than 1,048,576 bytes" in run.error_message


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
async def test_many_events_may_add_up_to_more_than_the_bound(
    tmp_path: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch, end: bytes
) -> None:
    monkeypatch.setattr(remote, "MAX_EVENT_BYTES", 1 << 20)
    events = [
        json.dumps({"messages": [{"type": "ai", "content": f"{i}" + "y" * 60_000}]}).encode()
        for i in range(40)  # 2.4 MB in all, each event well under the bound
    ]
    hostile.raw = [b"event: values" + end + b"data: " + data + end + end for data in events]
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    assert run.output.startswith("39y")


async def test_an_answer_that_is_not_a_stream_is_bounded_too(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "MAX_EVENT_BYTES", 1 << 20)
    graph = remote.ServerGraph(f"http://127.0.0.1:{hostile.port}#agent")
    try:
        hostile.answer = json.dumps({"values": "z" * 500_000}).encode()
        assert len((await graph.client.http.get("/threads/t"))["values"]) == 500_000
        hostile.answer = json.dumps({"values": "z" * 3_000_000}).encode()
        with pytest.raises(remote.ServerRunError, match="an answer of more than"):
            await graph.client.http.get("/threads/t")
    finally:
        await graph.aclose()


async def test_no_compressed_answer_is_asked_for_or_taken(hostile: Hostile) -> None:
    # the bound counts bytes as they come: 400 KB of gzip would be 400 MB once inflated
    graph = remote.ServerGraph(f"http://127.0.0.1:{hostile.port}#agent")
    try:
        hostile.answer = gzip.compress(json.dumps({"values": "z" * 1_000_000}).encode())
        hostile.answer_headers = b"content-encoding: gzip\r\n"
        with pytest.raises(remote.ServerRunError, match="'gzip'-encoded answer"):
            await graph.client.http.get("/threads/t")
        assert hostile.headers[-1]["accept-encoding"] == "identity"
    finally:
        await graph.aclose()


async def test_a_stream_that_ends_without_the_runs_values_fails_the_run(
    tmp_path: Path, hostile: Hostile
) -> None:
    """A run streams its state at least once; a stream that ends with none (cut short, or a
    server that ran nothing) is a failed run to retry, not a success with no output."""
    hostile.events = [("metadata", {"run_id": "r-1"})]
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.FAILED
    assert "ended without the run's values" in (run.error_message or "")


@pytest.mark.parametrize("status", ["interrupted", "error", "timeout", None])
async def test_a_run_the_server_did_not_record_a_success_fails(
    tmp_path: Path, hostile: Hostile, status: str | None
) -> None:
    """The stream ended without an ``error`` event, but the server's run did not succeed
    (cancelled there, cut short): its last values are not the run's result."""
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "halfway"}]})]
    hostile.run = {"status": status}
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.FAILED, run.output
    assert (run.error_type, run.output) == ("ServerRunError", None)
    assert f"ended {str(status)!r}, not 'success'" in run.error_message


async def test_a_run_still_running_once_its_stream_ended_fails_and_is_cancelled(
    tmp_path: Path, hostile: Hostile
) -> None:
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "halfway"}]})]
    hostile.run = {"status": "running"}
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.FAILED
    assert "still running on the server after its stream ended" in run.error_message
    assert any(r.startswith("POST /threads/") and "/cancel" in r for r in hostile.requests)


async def test_an_http_error_is_stored_and_logged_bounded_and_printable(
    tmp_path: Path, hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    """An HTTP error's body (the SDK's APIStatusError's message) is the server's text too."""
    forged = "\x1b[2J\x1b[31mboom\r\n2099-01-01 INFO scheduler: forged log line\n"
    body = json.dumps({"message": forged + "A" * 1_000_000}).encode()
    hostile.failure = (
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
    )
    with caplog.at_level(logging.INFO):
        run = await _run(tmp_path, hostile)
    assert (run.status, run.error_type) == (RunStatus.FAILED, "ServerRunError")
    assert run.error_message.startswith("the server answered HTTP 500: \\x1b[2J")
    assert len(run.error_message) <= 2000
    for text in (run.error_message, run.error_traceback):
        assert "\x1b" not in text and "forged log line\n" not in text and "A" * 2000 not in text
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("scheduler")]
    assert any("HTTP 500" in m for m in logged)
    assert all("\x1b" not in m and "\n2099-01-01" not in m for m in logged)


async def test_a_password_in_the_servers_url_is_sent_but_never_logged_or_stored(
    tmp_path: Path, hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    """``http://user:password@host#agent`` (a proxy's basic auth): the password goes in the
    ``Authorization`` header, never into a log line (httpx logs each request's URL) or a run
    record (a connection error names the server)."""
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "ok"}]})]
    with socket.socket() as probe:  # a port nothing listens on: a server that is down
        probe.bind(("127.0.0.1", 0))
        down = probe.getsockname()[1]
    with caplog.at_level(logging.DEBUG):
        ok = await _run(tmp_path, hostile, f"http://ops:s3cr%40t@127.0.0.1:{hostile.port}#agent")
        failed = await _run(tmp_path, hostile, f"http://ops:s3cr%40t@127.0.0.1:{down}#agent")
    assert ok.status is RunStatus.SUCCEEDED, ok.error_message
    basic = "Basic " + base64.b64encode(b"ops:s3cr@t").decode()
    assert [h.get("authorization") for h in hostile.headers] == [basic] * 3  # stream, run, history
    assert failed.status is RunStatus.FAILED
    assert f"ConnectError from the server at http://127.0.0.1:{down}" in failed.error_message
    for text in (failed.error_message, failed.error_traceback, *caplog.messages):
        assert "s3cr" not in text, text


async def test_a_run_whose_end_cannot_be_read_for_a_moment_is_not_run_again(
    tmp_path: Path, hostile: Hostile
) -> None:
    """The stream ended; the ``GET`` of how the run ended meets a server restarting (a
    proxy's 502, a closed connection). The run succeeded there: failing it here would have
    the retry run the graph a second time on the server."""
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "done once"}]})]
    hostile.run_failures = [
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        b"",  # the connection closed without an answer
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]
    target = f"http://127.0.0.1:{hostile.port}#agent"
    settings = make_settings(graph=target, max_retries=1, retry_delay_seconds=0.1)
    scheduler = TaskScheduler(db_path=tmp_path / "once.db", settings=settings)
    scheduler.start()
    try:
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
        run = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=60)
        await asyncio.sleep(0.5)  # (a retry would be queued by now)
        runs = scheduler.list_runs("t")
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "done once"), run.error_message
    assert len(runs) == 1
    assert sum(r.startswith("POST") and "/stream" in r for r in hostile.requests) == 1


async def test_a_run_whose_end_can_never_be_read_fails(tmp_path: Path, hostile: Hostile) -> None:
    hostile.events = [("values", {"messages": [{"type": "ai", "content": "done?"}]})]
    hostile.run_failures = [b""] * 8  # every GET of the run: a closed connection
    run = await _run(tmp_path, hostile)
    assert (run.status, run.output) == (RunStatus.FAILED, None)
    assert "ended could not be read: RemoteProtocolError" in run.error_message


async def test_where_a_server_says_a_run_stopped_is_stored_bounded(
    tmp_path: Path, hostile: Hostile
) -> None:
    """A run the server records ``success`` whose last checkpoint still has nodes to run
    (a static breakpoint) waits: at most 20 nodes are kept, each at most 200 characters,
    control characters escaped; a ``next`` that is not a list is nowhere to stop."""
    hostile.events = [("values", {"messages": []})]
    hostile.history = [{"next": ["N\x1b" * 1_000] * 30, "interrupts": []}]
    run = await _run(tmp_path, hostile)
    assert run.status is RunStatus.WAITING, run.error_message
    [asked] = run.interrupts
    nodes = asked["value"]["breakpoint"]
    assert asked["id"] is None and len(nodes) == 20
    assert all(len(n) == 200 and "\x1b" not in n for n in nodes)
    hostile.history = [{"next": "publish", "interrupts": []}]
    assert (await _run(tmp_path, hostile)).status is RunStatus.SUCCEEDED
