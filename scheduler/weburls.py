"""Web addresses the settings and task definitions name, checked and written one way:
a webhook's URL (:func:`webhook_url`) and a browser origin (:func:`origin`), both parsed as
httpx parses them (IDNA names, bracketed IPv6, default ports dropped), so what is checked
is what is sent, and what is configured is what a browser sends."""

from __future__ import annotations

import httpx

from scheduler.schedule_fields import error

__all__ = ["bad_port", "origin", "webhook_url"]


def webhook_url(value: str | None) -> str | None:
    """``value`` if it is an http(s) URL that can be sent (a pydantic after-validator)."""
    if value is None:
        return None
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        raise error("webhook", f"webhook {value!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise error("webhook", f"webhook {value!r} is not an http(s) URL with a host")
    if bad_port(url):
        raise error("webhook", f"webhook {value!r}: port {url.port} is not one of 1-65535")
    return value


def bad_port(url: httpx.URL) -> bool:
    """``url`` names a port no connection can go to (httpx takes ``:70000`` and ``:0``;
    connecting to the first raised OverflowError, past the delivery's error handling)."""
    return url.port is not None and not 1 <= url.port <= 65535


def origin(value: str) -> str:
    """``value`` as a browser sends it in ``Origin`` (``https://app.example``,
    ``http://localhost:3000``, ``http://[::1]:3000``): scheme and host in lower case, the
    name IDNA-encoded, no default port, no trailing slash; ``*`` as it is.

    Raises:
        ValueError: Not ``scheme://host[:port]`` (a path, a query, user info, a bad port).
    """
    if value == "*":
        return value
    problem = f"{value!r} is not an origin such as 'https://app.example' or "
    problem += "'http://localhost:3000' (scheme, host and port only)"
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, ValueError):
        raise ValueError(problem) from None
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or url.userinfo
        or url.raw_path not in (b"/", b"")
        or url.fragment
    ):
        raise ValueError(problem)
    host = url.raw_host.decode("ascii").lower()
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}"
