"""The HTTP server against hostile clients, on a real uvicorn server on a free 127.0.0.1 port
talked to through raw sockets: headers or a body sent a byte at a time, a connection that
says nothing, a header that the checks read given twice; and the rate limiter's table of
clients, which addresses cycled by one abuser must not reset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from scheduler.server.guard import Guard
from scheduler.server.http import HttpServer
from tests.conftest import SchedulerFactory, eventually


@pytest.fixture
async def serving(make_scheduler: SchedulerFactory) -> AsyncIterator[HttpServer]:
    scheduler = make_scheduler(
        http_rate_per_second=0, http_header_timeout_seconds=1, http_body_timeout_seconds=1
    )
    scheduler.start()
    server = HttpServer(scheduler, scheduler.settings, "127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()


async def answer(reader: asyncio.StreamReader, within: float = 10) -> bytes:
    """All the server sends until it closes the connection (or ``within`` s pass)."""
    return await asyncio.wait_for(reader.read(), within)


async def trickle(writer: asyncio.StreamWriter, data: bytes, closed: asyncio.Task[Any]) -> int:
    """Send ``data`` a byte every 0.1 s until the server closes (at most 150 bytes, 15 s):
    the bytes that were sent."""
    for sent, byte in enumerate(data[:150]):
        if closed.done():
            return sent
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.sleep(0.1)
    return min(len(data), 150)


@pytest.mark.parametrize("part", ["headers", "body"])
async def test_a_request_sent_a_byte_at_a_time_is_cut_off(serving: HttpServer, part: str) -> None:
    """It used to hold the connection for as long as the client went on: every byte put
    off uvicorn's keep-alive timer, and nothing bounded the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    body = b'{"id": "t", "schedule": "every 5 minutes", "prompt": "' + b"p" * 150 + b'"}'
    head = (
        b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nx-padding: " % len(body) + b"x" * 200 + b"\r\n\r\n"
    )
    started = time.monotonic()
    closed = asyncio.ensure_future(answer(reader, within=30))
    if part == "headers":
        sent = await trickle(writer, head + body, closed)
        assert sent < len(head)
    else:
        writer.write(head)
        sent = len(head) + await trickle(writer, body, closed)
        assert sent < len(head) + len(body)
    said = await closed
    took = time.monotonic() - started
    assert said.startswith(b"HTTP/1.1 408 "), said
    what = b"request body" if part == "body" else b"request's headers"
    assert b"the " + what + b" did not arrive within 1 s" in said, said
    assert took < 8, took  # 1 s allowed, on a loaded machine
    writer.close()


async def test_a_connection_that_says_nothing_is_closed(serving: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    started = time.monotonic()
    assert await answer(reader) == b""  # closed, nothing said (it asked nothing)
    assert time.monotonic() - started < 8
    writer.close()


async def test_headers_past_the_bound_are_a_431(serving: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for _ in range(80):  # 80 KiB of headers, never ended
        writer.write(b"x-filler: " + b"x" * 1000 + b"\r\n")
    try:
        await writer.drain()
        said = await answer(reader)
    except ConnectionResetError:  # closed with some of it unread: the reset can come first
        said = b"reset"
    assert said.startswith(b"HTTP/1.1 431 ") or said == b"reset", said
    writer.close()


async def test_ordinary_clients_keep_their_connection_between_requests(
    serving: HttpServer,
) -> None:
    """A keep-alive connection: a request after a pause shorter than uvicorn's keep-alive,
    and one whose headers come in pieces within the deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for pause in (0, 0.7, 0.7):
        await asyncio.sleep(pause)
        writer.write(request[:20])
        await asyncio.sleep(0.3)
        writer.write(request[20:])
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 200 "), status
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    writer.close()


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


# -- the rate limiter's table of clients --------------------------------------------------


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def status_for(guard: Guard, client: str, path: str = "/healthz") -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"host", b"127.0.0.1")],
        "client": (client, 40000),
    }
    await guard(scope, receive, send)
    status: int = sent[0]["status"]
    return status


async def test_addresses_cycled_by_one_client_do_not_reset_anothers_budget() -> None:
    """The table used to be emptied past 10,000 addresses: whoever could send from 10,001
    of them (an IPv6 /64 is plenty) gave every client a fresh budget, the abused one too."""
    guard = Guard(ok, api_key=None, max_body=1024, rate=0.01)  # one request per 100 s
    assert await status_for(guard, "192.0.2.1") == 200
    assert await status_for(guard, "192.0.2.1") == 429
    statuses = [await status_for(guard, f"2001:db8::{n:x}") for n in range(10_000)]
    assert statuses.count(200) == 9_999 and statuses[-1] == 503  # the table is full
    assert await status_for(guard, "192.0.2.1") == 429  # still spent
    assert await status_for(guard, "2001:db8::1") == 429


async def test_health_probes_have_a_budget_of_their_own() -> None:
    """A load balancer's probe comes from the address its proxied requests come from: once
    they spent the budget, /healthz answered 429 and the balancer took the server out."""
    guard = Guard(ok, api_key=None, max_body=1024, rate=0.01)  # one request per 100 s
    assert await status_for(guard, "192.0.2.1", "/api/tasks") == 200
    assert await status_for(guard, "192.0.2.1", "/api/tasks") == 429
    assert await status_for(guard, "192.0.2.1") == 200
    assert await status_for(guard, "192.0.2.1") == 429  # (its own is limited too)
    assert await status_for(guard, "192.0.2.1", "/healthz/") == 429  # (another path)


async def test_a_client_is_forgotten_once_its_budget_is_full_again() -> None:
    guard = Guard(ok, api_key=None, max_body=1024, rate=20, max_clients=2)  # a 1 s window
    assert await status_for(guard, "192.0.2.1") == 200
    assert await status_for(guard, "192.0.2.2") == 200
    assert await status_for(guard, "192.0.2.3") == 503  # both active

    async def room() -> bool:  # once the first two have been a second idle
        return await status_for(guard, "192.0.2.3") == 200

    await eventually(room, timeout=10, message="room for a new client")
    assert await status_for(guard, "192.0.2.1") == 200


async def get_from(server: HttpServer, headers: str) -> int:
    """The status of a ``GET /healthz`` sent over a raw socket with ``headers`` added."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    head = (await answer(reader)).split(b"\r\n", 1)[0]
    writer.close()
    return int(head.split()[1])


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
async def test_forwarded_addresses_count_only_from_a_trusted_proxy(
    make_scheduler: SchedulerFactory, trusted: str
) -> None:
    """uvicorn takes ``X-Forwarded-For`` from 127.0.0.1 by default: any local process could
    name a new client address in each request and pass the per-client rate. Now the header
    counts only from the proxies ``SCHEDULER_HTTP_TRUSTED_PROXIES`` names (none by default),
    and then each forwarded client has its own budget."""
    from pydantic import ValidationError

    from scheduler.settings import Settings

    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address"):
        Settings(http_trusted_proxies="10.0.0.0/8, proxy.example")
    scheduler = make_scheduler(http_rate_per_second=0.01, http_trusted_proxies=trusted)
    scheduler.start()
    server = HttpServer(scheduler, scheduler.settings, "127.0.0.1:0")
    await server.start()
    try:
        statuses = [await get_from(server, f"X-Forwarded-For: 192.0.2.{n}\r\n") for n in (1, 2, 3)]
        statuses.append(await get_from(server, "X-Forwarded-For: 192.0.2.1\r\n"))
    finally:
        await server.stop()
    assert statuses == ([200, 200, 200, 429] if trusted else [200, 429, 429, 429])
