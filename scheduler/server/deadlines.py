"""A bound on the time and the bytes a request's headers take to arrive.

uvicorn closes a connection left idle between two requests (``timeout_keep_alive``), but
it has no bound on the time a request takes to arrive: each byte received stops its
keep-alive timer, and a connection that sends nothing at all, or its headers one byte at
a time, is held for ever ("slowloris": a few hundred such connections use up the
process's file descriptors). An ASGI middleware cannot help here: the application is
called once the headers are in. So the HTTP protocol uvicorn runs (httptools, else h11)
is wrapped: from a connection's start, and from the first byte after a response, the
request's line and headers must be in within ``header_seconds`` and ``header_bytes``;
else the connection gets a 408 (or 431) and is closed (closed alone if it sent nothing).
The body has its own deadline, in the :class:`~scheduler.server.guard.Guard`, which reads
it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["MAX_HEADER_BYTES", "bounded_protocol"]

#: The most bytes a request's line and headers may take (h11's own bound is 16 KiB).
MAX_HEADER_BYTES = 64 * 1024


def bounded_protocol(
    base: type[asyncio.Protocol], *, header_seconds: float, header_bytes: int = MAX_HEADER_BYTES
) -> type[asyncio.Protocol]:
    """``base`` (one of uvicorn's HTTP/1.1 protocols: each request's headers make a new
    ``cycle``) with the deadline and the size bound on each request's headers."""

    class Bounded(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            if self._deadline is None and (cycle is None or cycle.response_complete):
                self._arm()  # a new request starts (its first byte after the last response)
            super().data_received(data)
            if self.cycle is not cycle:  # its headers are in: the application has it
                self._disarm()
            elif self._deadline is not None:
                self._waiting_bytes += len(data)
                if self._waiting_bytes > header_bytes:
                    self._refuse(431, f"the request's headers are over {header_bytes} bytes")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(header_seconds, self._expired)
            self._waiting_bytes = 0

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self._waiting_bytes:  # nothing said: closed, as an idle connection is
                self.transport.close()
                return
            self._refuse(
                408,
                f"the request's headers did not arrive within {header_seconds:g} s "
                "(SCHEDULER_HTTP_HEADER_TIMEOUT_SECONDS)",
            )

        def _refuse(self, status: int, detail: str) -> None:
            self._disarm()
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:  # (upgraded)
                return
            body = json.dumps({"detail": detail}).encode()
            reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
            transport.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            transport.close()

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
    return Bounded
