"""What every request passes before it reaches an endpoint: the API key (``x-api-key``, the
LangGraph SDK's header, ``Authorization: Bearer``, or the dashboard's cookie), a refusal of
writes sent by a browser page of another site, a bound on the body's size, and a
per-client rate (a token bucket). A plain ASGI middleware, so a body is counted as it
arrives, chunked or not.

Another site's page can make the user's browser POST to this server (a form, or ``fetch``
with a ``text/plain`` body: no CORS preflight), and without a key a loopback server would
act on it: create a cron, run a task, answer a waiting run. Browsers say where a request
comes from (``Sec-Fetch-Site``, else ``Origin``); a write that a browser sends from any
other origin than this server's own (or one of ``SCHEDULER_HTTP_CORS_ORIGINS``) is refused
with 403, as Go's ``http.CrossOriginProtection`` does. Programs (the SDK, curl) send
neither header and pass. A request that gives one of the headers these checks read twice
(``Host``, ``Origin``, ``Sec-Fetch-Site``, the key's) is refused with 400: the checks and
what is behind them could read different ones."""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import math
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser

__all__ = [
    "COOKIE",
    "OPEN_PATHS",
    "Guard",
    "cookie_of_key",
    "is_loopback",
    "loopback_host",
    "same_origin",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "scheduler_key"
# Liveness probes carry no key; /login checks the key it is given itself.
OPEN_PATHS = frozenset({"/healthz", "/login"})
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# the headers the checks below read: a request that gives one twice is refused (400)
_ONCE = frozenset({"host", "origin", "sec-fetch-site", "x-api-key", "authorization", "cookie"})


class _TooLarge(HTTPException):
    """A body past the bound, found while it is read: the app answers it 413 (its body
    parsing lets an HTTPException through) unless it has answered already."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class _TooSlow(HTTPException):
    """A body that did not arrive in time: answered 408, as :class:`_TooLarge`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {seconds:g} s "
            "(SCHEDULER_HTTP_BODY_TIMEOUT_SECONDS)",
        )


class Guard:
    """ASGI middleware: key, size and rate checks in front of ``app``.

    Args:
        app: The application.
        api_key: The key requests must carry; None: no key needed.
        max_body: Largest body accepted, in bytes (413 beyond).
        rate: Requests per second per client address (429 beyond); 0: no limit.
            ``/healthz`` has a budget of its own per address: a probe sent from an address
            that other requests spent (a proxy's, a load balancer's) is not refused.
        trusted_origins: Browser origins whose pages may write too, as the settings
            normalise them (``*``: every one); their CORS preflights need no key.
        body_seconds: How long a request's body may take to arrive once its headers are in
            (408 beyond).
        max_clients: Client addresses the rate is kept for. A client is forgotten once its
            budget is full again (no request for a second, at least 1/rate s), so that
            forgetting it changes nothing; while every one of them is active, a new address
            is answered 503 (addresses cycled by one abuser cannot reset the others').
    """

    def __init__(
        self,
        app: App,
        *,
        api_key: str | None,
        max_body: int,
        rate: float,
        trusted_origins: Iterable[str] = (),
        body_seconds: float = 30.0,
        max_clients: int = 10_000,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body = max_body
        self.rate = rate
        self.trusted_origins = frozenset(trusted_origins)
        self.body_seconds = body_seconds
        self.max_clients = max_clients
        # client -> (tokens, at): the least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes one: refused before any key check
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        twice = None
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            if name in headers and name in _ONCE:
                twice = name
            headers[name] = value.decode("latin-1")
        limited = self._take(scope) if self.rate else None
        if limited is not None:
            await self._refuse(send, headers, *limited)
            return
        if twice is not None:  # which one would a check read, which one a proxy or the app?
            await self._refuse(
                send, headers, 400, f"the {twice} header is given twice; send it once"
            )
            return
        if self.api_key is None and not loopback_host(headers.get("host", "")):
            # without a key the server listens on loopback only; a page that points its own
            # name at 127.0.0.1 (DNS rebinding) still sends its own Host: refuse it
            await self._refuse(
                send, headers, 403, "without an API key only loopback host names are served"
            )
            return
        if scope["method"] not in _SAFE_METHODS:
            refused = self._cross_site(headers)
            if refused is not None:
                await self._refuse(send, headers, 403, refused)
                return
        preflight = (  # a trusted page's browser asking CORS (its middleware answers)
            scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
            and self._trusted(headers.get("origin"))
        )
        if self.api_key is not None and scope["path"] not in OPEN_PATHS and not preflight:
            given = _key_of(headers)
            if given is None:
                await self._refuse(send, headers, 401, "an API key is required (x-api-key header)")
                return
            if not hmac.compare_digest(given, self.api_key.encode()):
                await self._refuse(send, headers, 403, "the API key is not valid")
                return
        length = headers.get("content-length")
        if length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > self.max_body
        ):
            await self._refuse(
                send, headers, 413, f"the request body is larger than {self.max_body} bytes"
            )
            return
        received = 0
        started = False
        deadline = asyncio.get_running_loop().time() + self.body_seconds
        body_read = False

        async def bounded_receive() -> Message:
            nonlocal received, body_read
            if body_read:  # (then the app waits for the disconnect: no deadline)
                return await receive()
            try:  # (a timeout context, not wait_for: no task made for each receive)
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow(self.body_seconds) from None
            body_read = message["type"] != "http.request" or not message.get("more_body")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge(self.max_body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (_TooLarge, _TooSlow) as exc:
            if not started:
                await self._refuse(send, headers, exc.status_code, exc.detail)

    async def _refuse(self, send: Send, headers: dict[str, str], status: int, detail: str) -> None:
        """Answer ``status`` with ``detail`` before the app: with the CORS headers its
        middleware would give a trusted page (else its browser sees a network error, not
        "the key is missing" or "slow down"), and when to try again after a 429 or 503."""
        extra: list[tuple[bytes, bytes]] = []
        origin = headers.get("origin")
        if origin is not None and self._trusted(origin):
            allowed = "*" if "*" in self.trusted_origins else origin
            extra += [(b"access-control-allow-origin", allowed.encode("latin-1"))]
            extra += [(b"vary", b"Origin")]
        if status in (429, 503):
            wait = 1 if not self.rate else max(1, math.ceil(1 / self.rate))
            extra.append((b"retry-after", str(wait).encode()))
        await _reply(send, status, detail, extra)

    def _trusted(self, origin: str | None) -> bool:
        trusted = self.trusted_origins
        return origin is not None and ("*" in trusted or origin in trusted)

    def _cross_site(self, headers: dict[str, str]) -> str | None:
        """Why a write is refused as sent by another site's page, else None."""
        origin = headers.get("origin")
        if self._trusted(origin):
            return None
        site = headers.get("sec-fetch-site")
        if site is not None:  # every current browser sends it
            allowed = site in ("same-origin", "none")  # this server's pages, or typed by the user
        else:  # an older browser sends Origin; programs (the SDK, curl) send neither
            allowed = origin is None or same_origin(origin, headers.get("host", ""))
        if allowed:
            return None
        return (
            f"cross-site request refused: a page of {origin or 'another site'} cannot change "
            "anything here (allow its origin with SCHEDULER_HTTP_CORS_ORIGINS)"
        )

    def _take(self, scope: Scope) -> tuple[int, str] | None:
        """None if the client may go on, else the refusal: its rate spent (429), or a new
        client while every known one is active (503)."""
        client = (scope.get("client") or ("?", 0))[0]
        if scope["path"] == "/healthz":  # its own budget: a probe is not refused for others
            client += " /healthz"
        now = time.monotonic()
        burst = max(1.0, self.rate)  # below 1 a second: one request, then one more per 1/rate s
        buckets = self._buckets
        known = buckets.pop(client, None)  # (put back last: the most recently seen)
        if known is None:
            window = burst / self.rate  # after it with no request, a budget is full again
            while buckets and now - next(iter(buckets.values()))[1] >= window:
                buckets.popitem(last=False)  # forgotten as it is: it would start full
            if len(buckets) >= self.max_clients:
                return 503, "too many clients at once: try again in a second"
        tokens, at = known or (burst, now)
        tokens = min(burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            buckets[client] = (tokens, now)
            return 429, "too many requests: slow down (SCHEDULER_HTTP_RATE_PER_SECOND)"
        buckets[client] = (tokens - 1, now)
        return None


def is_loopback(name: str) -> bool:
    """``name`` (a host name, or an address: IPv6 without brackets) is this machine's
    loopback: ``localhost`` or a loopback address, nothing that merely starts like one
    (``127.0.0.1.attacker.example`` is a name anyone can point anywhere)."""
    if name.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)  # (read on every request; a client sends one or two)
def loopback_host(header: str) -> bool:
    """A ``Host`` header (``name[:port]``, ``[v6][:port]``) that names the loopback."""
    try:
        name = urlsplit(f"//{header}").hostname
    except ValueError:
        return False
    return name is not None and is_loopback(name)


def same_origin(source: str, host: str) -> bool:
    """``source`` (an ``Origin`` or a ``Referer``) is a page of the server ``host`` (the
    request's ``Host``) names; ``null`` (a sandboxed frame, a data: URL) never is. A port
    left out is the default one of the page's scheme (a proxy may pass ``Host`` on as
    ``example.com:443`` where the browser's ``Origin`` is ``https://example.com``)."""
    if source == "null":
        return False
    try:
        page, served = urlsplit(source), urlsplit(f"//{host}")
        default = _DEFAULT_PORTS.get(page.scheme.lower())
        same_port = (page.port or default) == (served.port or default)
    except ValueError:  # a port that is not one
        return False
    return page.hostname is not None and page.hostname == served.hostname and same_port


def _sent(text: str) -> bytes:
    """Header text as the bytes the client sent (headers are decoded as latin-1: a key
    that is not ASCII arrives as its UTF-8 bytes)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _key_of(headers: dict[str, str]) -> bytes | None:
    """The key a request carries, as bytes to compare with the key's UTF-8 bytes."""
    if "x-api-key" in headers:
        return _sent(headers["x-api-key"])
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return _sent(authorization[7:].strip())
    if "cookie" in headers:  # parsed as browsers send it: another app's odd cookie beside
        cookie = cookie_parser(headers["cookie"]).get(COOKIE)  # ours does not hide it
        return None if cookie is None else urllib.parse.unquote(cookie).encode()
    return None


def cookie_of_key(key: str) -> str:
    """The dashboard cookie's value for ``key``: percent-encoded UTF-8, plain ASCII (a cookie
    that is not ASCII came back as another text, and a non-ASCII key never matched)."""
    return urllib.parse.quote(key, safe="")


async def _reply(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
