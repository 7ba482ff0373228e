"""Which addresses a webhook may reach without ``SCHEDULER_WEBHOOK_ALLOW_PRIVATE``: global
ones, and an IPv6 address that carries an IPv4 one only if that one is global too; and how a
webhook's URL shows in logs."""

from __future__ import annotations

import ipaddress

import pytest

from scheduler.webhooks import _is_public, _shown


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fe80::1", "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::ffff:0:127.0.0.1", "::ffff:0:10.1.2.3",  # IPv4-translated (RFC 2765)
        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 of 127.0.0.1, 169.254.169.254
        "2002:7f00:1::", "2002:a01:203::1",  # 6to4 of 127.0.0.1, 10.1.2.3
        "64:ff9b:1::a00:1",  # a network's own NAT64 prefix
        "fec0::1",  # site-local (deprecated)
        "::", "0.0.0.0",
    ],
)  # fmt: skip
def test_private_ones_are_refused(address: str) -> None:
    assert not _is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822",
     "2002:5db8:d822::1", "::ffff:93.184.216.34", "::ffff:0:93.184.216.34"],
)  # fmt: skip
def test_global_ones_are_reached(address: str) -> None:
    assert _is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@hooks.example/h?token=t", "http://hooks.example/h"),
        ("https://u:p@ss@hooks.example:8443/a/b#frag", "https://hooks.example:8443/a/b"),
        ("http://token@[::1]:8080/hook?x=1", "http://[::1]:8080/hook"),
        ("http://user:secret@[::1/hook?t=1", "http://[::1/hook"),  # not a URL: cut alike
    ],
)  # fmt: skip
def test_a_url_in_logs_shows_no_user_info_query_or_fragment(url: str, shown: str) -> None:
    assert _shown(url) == shown
