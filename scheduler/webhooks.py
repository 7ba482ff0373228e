"""Webhooks: when a run of a task with a ``webhook`` finishes, its record is POSTed to the
URL as JSON, signed, retried with backoff, and every attempt is recorded
(``scheduler_deliveries``, shown on the run by the HTTP API).

The body is ``{"event": "run.finished", "task_id": ..., "run": {...the run record...}}``.
With ``SCHEDULER_WEBHOOK_SECRET`` set, ``X-Scheduler-Signature: sha256=<hex>`` is the
HMAC-SHA256 of ``<X-Scheduler-Timestamp>.<body>`` under that secret: a receiver recomputes
it, compares in constant time, and refuses old timestamps. A 2xx answer ends the delivery;
a 5xx, a 429 or a network error is retried after ``SCHEDULER_WEBHOOK_RETRY_SECONDS``,
doubled each time, up to ``SCHEDULER_WEBHOOK_ATTEMPTS``; any other answer ends it. Redirects
are not followed. A destination that resolves to a private, loopback, link-local or
reserved address is refused (recorded, not sent) unless ``SCHEDULER_WEBHOOK_ALLOW_PRIVATE``
allows it; otherwise the request goes to the very address that was checked (the URL's name
still in ``Host`` and, over TLS, in SNI and the certificate check), so a name that answers
a public address to the check and a private one a moment later (DNS rebinding) reaches
nothing it should not. Deliveries run in the scheduler's process while it runs; one still
retrying when the process stops is recorded as far as it got.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scheduler.events import RunEvent
from scheduler.settings import Settings
from scheduler.storage import Store

__all__ = ["Deliverer", "sign"]

logger = logging.getLogger(__name__)

_CONCURRENCY = 20


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class Deliverer:
    """Delivers the ``finished`` events of tasks with a webhook (an event listener).

    Args:
        store: Where the attempts are recorded.
        settings: The webhook settings.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._slots = asyncio.Semaphore(_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: Any = None

    def __call__(self, event: RunEvent) -> None:
        if event.kind != "finished" or event.task.webhook is None:
            return
        body = json.dumps(
            {"event": "run.finished", "task_id": event.task.id, "run": event.run.to_dict()}
        ).encode()
        task = asyncio.get_running_loop().create_task(
            self._deliver(event.run.id, event.task.webhook, body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop: give deliveries in flight a moment, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, run_id: str, url: str, body: bytes) -> None:
        settings = self._settings
        delay = settings.webhook_retry_seconds
        async with self._slots:
            for attempt in range(1, settings.webhook_attempts + 1):
                address, refused = await _destination(
                    url, allow_private=settings.webhook_allow_private
                )
                if refused is not None:
                    await self._record(run_id, url, attempt, None, refused)
                    return
                status, error = await self._post(url, body, address)
                await self._record(run_id, url, attempt, status, error)
                if status is not None and (200 <= status < 300):
                    return
                retry = status is None or status >= 500 or status == 429
                if not retry or attempt == settings.webhook_attempts:
                    logger.warning(
                        "webhook for run %s to %s gave up after %d attempt(s): %s",
                        run_id,
                        _shown(url),
                        attempt,
                        error or f"HTTP {status}",
                    )
                    return
                await asyncio.sleep(delay)
                delay *= 2

    async def _post(
        self, url: str, body: bytes, address: str | None
    ) -> tuple[int | None, str | None]:
        """POST ``body`` to ``url``, at ``address`` if given (else by the URL's name)."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False, timeout=self._settings.webhook_timeout_seconds
            )
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": "langgraph-task-scheduler",
            "x-scheduler-timestamp": timestamp,
        }
        if self._settings.webhook_secret:
            headers["x-scheduler-signature"] = sign(self._settings.webhook_secret, timestamp, body)
        extensions: dict[str, Any] = {}
        if address is not None:
            parts = urlsplit(url)
            userinfo, at, netloc = parts.netloc.rpartition("@")
            pinned = f"[{address}]" if ":" in address else address
            port = f":{parts.port}" if parts.port is not None else ""
            url = urlunsplit(parts._replace(netloc=f"{userinfo}{at}{pinned}{port}"))
            headers["host"] = netloc
            if parts.scheme == "https":
                extensions["sni_hostname"] = parts.hostname
        try:
            response = await self._client.post(
                url, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return response.status_code, error

    async def _record(
        self, run_id: str, url: str, attempt: int, status: int | None, error: str | None
    ) -> None:
        values = {
            "run_id": run_id,
            "url": url,
            "attempt": attempt,
            "at": time.time(),
            "status_code": status,
            "error": error,
        }
        try:
            await asyncio.to_thread(self._store.add_delivery, values)
        except Exception:
            logger.exception("could not record a webhook delivery of run %s", run_id)


async def _destination(url: str, *, allow_private: bool) -> tuple[str | None, str | None]:
    """Where ``url`` may be called: ``(address, None)`` to connect to the address checked
    (``None`` when private destinations are allowed: by the URL's name), or ``(None, why)``
    when it may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, f"refused: {_shown(url)} is not an http(s) URL"
    if allow_private:
        return None, None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )  # fmt: skip
    except (OSError, ValueError) as exc:  # ValueError: a port out of range
        return None, f"cannot resolve {parts.hostname}: {exc}"
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not _is_public(address):
            return None, (
                f"refused: {parts.hostname} is a private address ({address}); "
                "SCHEDULER_WEBHOOK_ALLOW_PRIVATE=true allows it"
            )
    if not addresses:
        return None, f"cannot resolve {parts.hostname}: no address"
    return str(addresses[0]), None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A destination webhooks may reach without ``SCHEDULER_WEBHOOK_ALLOW_PRIVATE``."""
    return address.is_global


def _shown(url: str) -> str:
    """The URL without its query (which may carry a token), for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
