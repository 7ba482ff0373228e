"""Webhooks: when a run of a task with a ``webhook`` finishes, its record is POSTed to the
URL as JSON, signed, retried with backoff, each attempt recorded (shown on the run by the API).

The body is ``{"event": "run.finished", "task_id": ..., "run": {...the run record...}}``.
With ``SCHEDULER_WEBHOOK_SECRET`` set, ``X-Scheduler-Signature: sha256=<hex>`` is the
HMAC-SHA256 of ``<X-Scheduler-Timestamp>.<body>`` under that secret: a receiver recomputes
it, compares in constant time, and refuses old timestamps. A 2xx answer ends the delivery;
a 5xx, a 429, a network error or a failed name lookup (a temporary DNS failure, no answer in
time) is retried after ``SCHEDULER_WEBHOOK_RETRY_SECONDS``, doubled each time, up to
``SCHEDULER_WEBHOOK_ATTEMPTS``; any other answer ends it. Redirects are not followed. A
destination that resolves to a private, loopback, link-local or reserved address is refused
(recorded, not sent, not tried again) unless ``SCHEDULER_WEBHOOK_ALLOW_PRIVATE`` allows it.
The name is resolved once per attempt, for the check, on the deliverer's own threads (never
the event loop's default ones, which the run log writes through) and within the attempt's
``SCHEDULER_WEBHOOK_TIMEOUT_SECONDS``; the connection goes to the addresses it approved,
each in turn (:class:`_PinnedBackend`; the URL's name is still the ``Host`` and, over TLS,
the name the certificate must match), so a name that answers a public address to the check
and a private one a moment later (DNS rebinding) reaches nothing it should not. Deliveries
connect directly (``HTTPS_PROXY`` and the like are not used: a proxy would resolve the name
again, out of the check's reach). They run in the scheduler's process while it runs; one
not done at the stop is recorded as far as it got, and its next attempt as not sent (``the
scheduler stopped ...``), so the run shows that the receiver may not have it. Each attempt's
``at`` is in the scheduler's clock (a test clock's, a worker's database time), as a run's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from scheduler.events import RunEvent
from scheduler.pools import OWN
from scheduler.settings import Settings
from scheduler.storage import Store
from scheduler.weburls import bad_port, redacted

__all__ = ["Deliverer", "sign"]

logger = logging.getLogger(__name__)

_CONCURRENCY = 20  # attempts at once, each with a connection of its own (no pool wait)
_RESOLVERS = 8  # threads for name lookups at once: those stuck on a silent name server hold
# only these (daemon threads: one stuck does not hold the process's exit up either)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class Deliverer:
    """Delivers the ``finished`` events of tasks with a webhook (an event listener).

    Args:
        store: Where the attempts are recorded.
        settings: The webhook settings.
        clock: The scheduler's clock (UNIX seconds).
    """

    def __init__(
        self, store: Store, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._slots = asyncio.Semaphore(_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped: list[dict[str, Any]] = []  # the attempts cut short by close()
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._lookups = asyncio.Semaphore(_RESOLVERS)  # held until each lookup's thread ends

    def __call__(self, event: RunEvent) -> None:
        if event.kind != "finished" or event.task is None or event.task.webhook is None:
            return
        run = event.run.to_dict()
        body = json.dumps({"event": "run.finished", "task_id": event.task.id, "run": run}).encode()
        task = asyncio.get_running_loop().create_task(
            self._deliver(event.run.id, event.task.webhook, body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop: give deliveries in flight a moment, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        cut = list(self._tasks)
        for task in cut:
            task.cancel()
        if cut:  # each ends at its next await, noting the attempt it did not finish
            await asyncio.wait(cut, timeout=2)
        stopped, self._stopped = self._stopped, []
        for values in stopped:
            await self._write(values)
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def _deliver(self, run_id: str, url: str, body: bytes) -> None:
        settings = self._settings
        delay = settings.webhook_retry_seconds
        trying, step = 1, "before"  # the attempt, and where a stop would cut it
        try:
            parsed, refused = _parsed(url)
            if parsed is None:
                step = "recorded"
                await self._record(run_id, url, 1, None, refused)
                return
            for attempt in range(1, settings.webhook_attempts + 1):
                trying, step = attempt, "before"
                async with self._slots:  # per attempt: a delivery waiting to retry holds none
                    # the lookup and the exchange share the attempt's time
                    deadline = _now() + settings.webhook_timeout_seconds
                    addresses, error, final = await self._resolve(parsed, deadline)
                    status = None
                    if addresses:
                        step = "during"
                        status, error = await self._post(parsed, body, addresses, deadline)
                    step = "recorded"  # a stop during the record: its thread writes it
                    await self._record(run_id, url, attempt, status, error)
                if final or not self._retrying(run_id, url, attempt, status, error):
                    return
                trying, step = attempt + 1, "before"
                await asyncio.sleep(delay)
                delay *= 2
        except asyncio.CancelledError:
            if step != "recorded":
                # (cut short by the stop, or not sent before it)
                cut = self._attempt(run_id, url, trying, None, _STOPPED[step == "during"])
                self._stopped.append(cut)
            raise

    async def _resolve(
        self, parsed: httpx.URL, deadline: float
    ) -> tuple[list[str], str | None, bool]:
        """The addresses the URL's host may be reached at, None and False; or no address,
        why not, and whether that is final: True for a destination the policy refuses, False
        for a name that did not resolve (a failed attempt, tried again).

        A name is looked up on this deliverer's own threads, never the event loop's default
        ones (which the run log writes through: a silent name server would stall every
        run), and the lookup ends at ``deadline``."""
        host = parsed.raw_host.decode("ascii")
        try:
            addresses = [str(ipaddress.ip_address(host))]  # an address: nothing to look up
        except ValueError:
            try:
                port = parsed.port or (443 if parsed.scheme == "https" else 80)
                addresses = await self._lookup(host, port, deadline)
            except TimeoutError:
                seconds = self._settings.webhook_timeout_seconds
                return [], f"cannot resolve {parsed.host}: no answer within {seconds:g} s", False
            except (OSError, ValueError) as exc:
                return [], f"cannot resolve {parsed.host}: {exc}"[:500], False
        if not addresses:
            return [], f"cannot resolve {parsed.host}: no address", False
        if not self._settings.webhook_allow_private:
            for address in addresses:
                if not _is_public(ipaddress.ip_address(address)):
                    return [], (
                        f"refused: {parsed.host} is a private address ({address}); "
                        "SCHEDULER_WEBHOOK_ALLOW_PRIVATE=true allows it"
                    ), True  # fmt: skip
        return addresses, None, False

    async def _lookup(self, name: str, port: int, deadline: float) -> list[str]:
        """The addresses ``name`` resolves to (:func:`socket.getaddrinfo`, on this deliverer's
        threads); TimeoutError at ``deadline``."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[list[Any]] = loop.create_future()

        def settle(infos: list[Any], error: BaseException | None) -> None:
            self._lookups.release()
            if found.done():  # (the attempt's time ran out meanwhile)
                return
            if error is not None:
                found.set_exception(error)
            else:
                found.set_result(infos)

        def lookup() -> None:  # (on a daemon thread, which finishes on its own)
            infos: list[Any] = []
            error: BaseException | None = None
            try:
                infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except Exception as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # (the loop has closed)
                loop.call_soon_threadsafe(settle, infos, error)

        async with asyncio.timeout_at(deadline):
            await self._lookups.acquire()
            try:
                threading.Thread(target=lookup, name="webhook-dns", daemon=True).start()
            except BaseException:
                self._lookups.release()
                raise
            infos = await found
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _retrying(
        self, run_id: str, url: str, attempt: int, status: int | None, error: str | None
    ) -> bool:
        """Whether an attempt that ended so is tried again (logged when it is not)."""
        if status is not None and (200 <= status < 300):
            return False
        retry = status is None or status >= 500 or status == 429
        if retry and attempt < self._settings.webhook_attempts:
            return True
        logger.warning(
            "webhook for run %s to %s gave up after %d attempt(s): %s",
            run_id,
            _shown(url),
            attempt,
            error or f"HTTP {status}",
        )
        return False

    async def _post(
        self, parsed: httpx.URL, body: bytes, addresses: list[str], deadline: float
    ) -> tuple[int | None, str | None]:
        """POST ``body`` to the URL, connecting to ``addresses`` (those its check
        approved), the whole exchange done by ``deadline``; the answer's body is not read."""
        if self._pool is None:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=ssl.create_default_context(),
                network_backend=_PinnedBackend(),
                max_connections=_CONCURRENCY,  # (httpcore's default is 10)
            )
        timestamp = str(int(time.time()))
        headers = {
            # as httpx writes it (httpcore alone would not bracket an IPv6 address)
            "host": parsed.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": "langgraph-task-scheduler",
            "x-scheduler-timestamp": timestamp,
        }
        if self._settings.webhook_secret:
            headers["x-scheduler-signature"] = sign(self._settings.webhook_secret, timestamp, body)
        if parsed.userinfo:  # user:password@ in the URL: HTTP basic auth
            secret = f"{parsed.username}:{parsed.password or ''}"
            headers["authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        seconds = self._settings.webhook_timeout_seconds
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        pinned = _PINNED.set((parsed.raw_host.decode("ascii"), addresses))
        try:
            async with (
                asyncio.timeout_at(deadline),  # the whole attempt, however slowly it trickles
                self._pool.stream(
                    "POST", target, headers=list(headers.items()), content=body,
                    extensions={"timeout": dict.fromkeys(("connect", "read", "write"), seconds)},
                ) as response,
            ):  # fmt: skip
                status: int = response.status
        except TimeoutError:
            return None, f"TimeoutError: no answer within {seconds:g} s"
        except _TRANSPORT_ERRORS as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        finally:
            _PINNED.reset(pinned)
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    async def _record(
        self, run_id: str, url: str, attempt: int, status: int | None, error: str | None
    ) -> None:
        await self._write(self._attempt(run_id, url, attempt, status, error))

    def _attempt(
        self, run_id: str, url: str, attempt: int, status: int | None, error: str | None
    ) -> dict[str, Any]:
        """The record of an attempt, at this moment of the scheduler's clock."""
        return {
            "run_id": run_id,
            "url": redacted(url),  # (shown on the run: never the password)
            "attempt": attempt,
            "at": self._clock(),
            "status_code": status,
            "error": error,
        }

    async def _write(self, values: dict[str, Any]) -> None:
        run_id = values["run_id"]
        try:
            await OWN.run(self._store.add_delivery, values)
        except Exception:
            logger.exception("could not record a webhook delivery of run %s", run_id)


_STOPPED = (
    "not sent: the scheduler stopped before this attempt",
    "the scheduler stopped during this attempt: the receiver may or may not have it",
)


def _now() -> float:
    """The event loop's clock, which :func:`asyncio.timeout_at` deadlines are on."""
    return asyncio.get_running_loop().time()


def _parsed(url: str) -> tuple[httpx.URL | None, str | None]:
    """``url`` parsed as it is sent (an IDNA-encoded name, a bare IPv6 address) and None; or
    None and why it is refused (not a valid http(s) URL)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        return None, f"refused: not a valid URL ({exc})"
    if parsed.scheme not in ("http", "https") or not parsed.host or bad_port(parsed):
        return None, f"refused: {_shown(url)} is not an http(s) URL with a usable port"
    return parsed, None


#: The name being connected to and the addresses its check approved, for the delivery
#: running in this context.
_PINNED: contextvars.ContextVar[tuple[str, list[str]] | None] = contextvars.ContextVar(
    "webhook_pinned", default=None
)

_TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses approved for the name (:data:`_PINNED`), each in turn,
    never to what the name resolves to by then; any other name is refused."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        pinned = _PINNED.get()
        if pinned is None or pinned[0] != host:
            raise httpcore.ConnectError(f"{host} was not checked: not connecting")
        failure: Exception | None = None
        for address in pinned[1]:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # a check never approves no address
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


_EMBEDDING = (  # prefixes whose last 32 bits are an IPv4 address
    ipaddress.ip_network("64:ff9b::/96"),  # well-known NAT64
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated)
)
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # a network's own NAT64 (RFC 8215)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A destination webhooks may reach without ``SCHEDULER_WEBHOOK_ALLOW_PRIVATE``: a
    global address, and for an IPv6 one that carries an IPv4 address (mapped, translated,
    6to4, NAT64, IPv4-compatible), that IPv4 address is global too (``64:ff9b::7f00:1`` is
    127.0.0.1 through a NAT64 gateway, which ``is_global`` alone lets through)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local or address in _LOCAL_NAT64:
            return False
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and int(address) > 1 and any(address in n for n in _EMBEDDING):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return _is_public(inner)
    return address.is_global


def _shown(url: str) -> str:
    """``scheme://host[:port]/path`` of the URL, for logs: without its user info
    (``user:password@``), query or fragment, any of which may carry a secret."""
    try:
        parts = urlsplit(url)
        scheme, netloc, path = parts.scheme, parts.netloc, parts.path
    except ValueError:  # not a URL (an unclosed IPv6 bracket): cut it as urlsplit would
        scheme, _, rest = url.partition("://")
        netloc, slash, path = re.split("[?#]", rest, maxsplit=1)[0].partition("/")
        path = slash + path
    return f"{scheme}://{netloc.rpartition('@')[2]}{path}"
