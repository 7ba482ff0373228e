"""The HTTP server against hostile clients, on a real uvicorn server on a free 127.0.0.1 port
talked to through raw sockets: a header that the checks read given twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from scheduler.server.http import HttpServer
from tests.conftest import SchedulerFactory


@pytest.fixture
async def serving(make_scheduler: SchedulerFactory) -> AsyncIterator[HttpServer]:
    scheduler = make_scheduler(http_rate_per_second=0)
    scheduler.start()
    server = HttpServer(scheduler, scheduler.settings, "127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()


async def answer(reader: asyncio.StreamReader, within: float = 10) -> bytes:
    """All the server sends until it closes the connection (or ``within`` s pass)."""
    return await asyncio.wait_for(reader.read(), within)


# -- a header the checks read, given twice ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", [("Host", "evil.example"), ("Host", "127.0.0.1")]),
        ("GET", [("Host", "127.0.0.1"), ("Host", "evil.example")]),
        ("POST", [("Host", "127.0.0.1"), ("Origin", "https://evil.example"), ("Origin", "{own}")]),
        (
            "POST",
            [("Host", "127.0.0.1"), ("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Site", "none")],
        ),
    ],
    ids=["host, own last", "host, own first", "origin, own last", "sec-fetch-site"],
)
async def test_a_request_with_a_checked_header_given_twice_is_a_400(
    serving: HttpServer, method: str, headers: list[tuple[str, str]]
) -> None:
    """The last one counted: a rebound DNS name's page (Host) or another site's (Origin)
    passed by sending this server's own name after its own."""
    own = f"http://127.0.0.1:{serving.port}"
    lines = "".join(f"{k}: {v.format(own=own)}\r\n" for k, v in headers)
    body = '{"id": "twice", "schedule": "every 5 minutes", "prompt": "p"}' * (method == "POST")
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    writer.write(
        f"{method} /api/tasks HTTP/1.1\r\n{lines}content-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
    )
    said = await answer(reader)
    assert said.startswith(b"HTTP/1.1 400 "), said
    name = headers[-1][0].lower().encode()
    assert b"the " + name + b" header is given twice" in said, said
    writer.close()
