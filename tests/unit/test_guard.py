"""``same_origin``: which pages may send the dashboard's forms and the writes of an older
browser (``scheduler/server/guard.py``)."""

from __future__ import annotations

import pytest

from scheduler.server.guard import same_origin


@pytest.mark.parametrize(
    ("source", "host", "same"),
    [
        ("http://127.0.0.1:8123", "127.0.0.1:8123", True),
        ("http://127.0.0.1:8123/tasks/a", "127.0.0.1:8123", True),  # a Referer
        ("HTTP://LocalHost:8123", "localhost:8123", True),
        ("http://[::1]:8123", "[::1]:8123", True),
        # a port left out is the page's scheme's default: a proxy that passes Host on as
        # $host:$server_port (the dashboard's buttons answered 403 behind it)
        ("https://example.com", "example.com:443", True),
        ("https://example.com:443", "example.com", True),
        ("http://example.com", "example.com:80", True),
        ("https://example.com", "example.com", True),
        ("https://example.com", "example.com:80", False),
        ("http://example.com", "example.com:443", False),
        ("http://127.0.0.1:8123", "127.0.0.1:8124", False),
        ("http://127.0.0.1:8123", "127.0.0.1", False),
        ("http://evil.example", "127.0.0.1:8123", False),
        ("http://127.0.0.1.evil.example:8123", "127.0.0.1:8123", False),
        ("null", "null", False),  # a sandboxed frame, a data: URL
        ("", "127.0.0.1", False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", False),  # not a port
        ("http://127.0.0.1:8123", "127.0.0.1:abc", False),
        ("data:text/html,x", "127.0.0.1", False),
    ],
)
def test_same_origin(source: str, host: str, same: bool) -> None:
    assert same_origin(source, host) is same
