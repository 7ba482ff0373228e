"""Web addresses the settings and task definitions name, checked and written one way:
a webhook's URL (:func:`webhook_url`) and a browser origin (:func:`origin`), both parsed as
httpx parses them (IDNA names, bracketed IPv6, default ports dropped), so what is checked
is what is sent, and what is configured is what a browser sends; and any URL as errors,
logs and reprs show it, its password hidden (:func:`redacted`).

httpx is imported when a URL is first parsed: a process that names none (the CLI's
commands, most tasks) does not load it."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from scheduler.schedule_fields import error

if TYPE_CHECKING:
    import httpx

__all__ = ["bad_port", "origin", "redacted", "server_target", "webhook_url"]

_TARGET = re.compile(r"^(?P<url>https?://[^#\s]+)(?:#(?P<assistant>[\w.:-]+))?$")
_HOST = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?$")  # a name (IDNA-encoded)


def webhook_url(value: str | None) -> str | None:
    """``value`` if it is an http(s) URL that can be sent (a pydantic after-validator)."""
    if value is None:
        return None
    import httpx

    shown = redacted(value)  # (errors reach logs and answers: never its password)
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        raise error("webhook", f"webhook {shown!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise error("webhook", f"webhook {shown!r} is not an http(s) URL with a host")
    if bad_port(url):
        raise error("webhook", f"webhook {shown!r}: port {url.port} is not one of 1-65535")
    return value


def bad_port(url: httpx.URL) -> bool:
    """``url`` names a port no connection can go to (httpx takes ``:70000`` and ``:0``;
    connecting to the first raised OverflowError, past the delivery's error handling)."""
    return url.port is not None and not 1 <= url.port <= 65535


def redacted(url: str) -> str:
    """``url`` with the password of its user info shown as ``***`` (``http://ops:***@host``),
    for an error, a log line or a repr; also when it does not parse, since that is when an
    error names it. The user info is all between ``://`` and the last ``@``: a parser would
    end it at a ``/`` or a ``?``, but an unescaped one in a password is a password all the
    same (an ``@`` in a path hides what comes before it as well)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (sep and at and colon):
        return url
    return f"{scheme}://{user}:***@{host}"


def origin(value: str) -> str:
    """``value`` as a browser sends it in ``Origin`` (``https://app.example``,
    ``http://localhost:3000``, ``http://[::1]:3000``): scheme and host in lower case, the
    name IDNA-encoded, no default port, no trailing slash; ``*`` as it is.

    Raises:
        ValueError: Not ``scheme://host[:port]`` (a path, a query, user info, a bad port).
    """
    if value == "*":
        return value
    import httpx

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


def server_target(target: str) -> tuple[httpx.URL, str]:
    """The server's URL and the assistant of ``target`` (``http(s)://host:port#assistant``).

    Raises:
        ValueError: It is not one; the message says why, never with the URL's password
            (:func:`redacted`; the loader names the URL, redacted too).
    """
    import httpx

    match = _TARGET.match(target)
    if match is None:
        raise ValueError(f"expected http(s)://host:port#assistant, got {redacted(target)!r}")
    try:
        url: httpx.URL | None = httpx.URL(match["url"].rstrip("/"))
    except httpx.InvalidURL:
        url = None
    problem = _url_problem(url, match["url"])
    if url is None or problem:
        raise ValueError(f"expected http(s)://host:port#assistant: {problem}")
    return url, match["assistant"] or "agent"


def _url_problem(url: httpx.URL | None, text: str) -> str:
    """What is wrong with the server's URL (``url``, None when ``text`` does not parse),
    said without its password: httpx quotes the part it cannot read, which an unescaped
    ``/`` in a password makes a piece of the password."""
    if url is None:
        import httpx

        try:
            httpx.URL(redacted(text))
        except httpx.InvalidURL as exc:
            return str(exc)
        return "its user name or password is not valid in a URL (percent-encode it)"
    if b"@" in url.raw_path:  # http://user:12/ab@host is host "user", port 12
        return "an '@' after the host: percent-encode '/', '?' and '@' in a password"
    host = url.raw_host.decode("ascii")
    if not host:
        return "no host"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):  # httpx takes "[bad" for the name "%5Bbad"
            return f"host {host!r} is not a host name or an IP address"
    if bad_port(url):
        return f"port {url.port} is not one of 1-65535"
    return ""
