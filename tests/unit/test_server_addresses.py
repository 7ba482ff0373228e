"""A LangGraph server's URL (``SCHEDULER_GRAPH=http://user:password@host:port#agent``): one
that cannot be used is refused at start with the problem, and the URL it names, like every
repr of the settings, never shows the password."""

from __future__ import annotations

import pytest

from scheduler import Settings
from scheduler.exceptions import GraphLoadError
from scheduler.loader import load_graph


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://ops:s3cr3t@[bad#agent", "host '%5Bbad' is not a host name or an IP address"),
        ("http://ops:s3cr3t@host:99999#agent", "port 99999 is not one of 1-65535"),
        ("http://ops:s3cr3t@host:0", "port 0 is not one of 1-65535"),
        ("http://ops:s3cr3t@host:abc#agent", "Invalid port: 'abc'"),
        ("http://ops:s3cr3t@:2024#agent", "no host"),
        ("http://ops:s3cr3t@host:2024#a b", "expected http(s)://host:port#assistant, got"),
        ("http://ops:s3cr3t@ho st:2024#agent", "expected http(s)://host:port#assistant, got"),
        # an unescaped "/" or "?" in the password: httpx reads "ops:s3" as host and port
        ("http://ops:s3/cr3t@host:2024#agent", "user name or password is not valid in a URL"),
        ("http://ops:12/s3cr3t@host#agent", "an '@' after the host: percent-encode"),
        ("http://ops:s3?cr3t@host#agent", "user name or password is not valid in a URL"),
    ],
)
def test_a_server_url_that_cannot_be_used_is_refused_without_its_password(
    target: str, problem: str
) -> None:
    with pytest.raises(GraphLoadError) as caught:
        load_graph(target)
    message = str(caught.value)
    assert problem in message
    assert message.startswith("graph 'http://ops:***@") and "s3" not in message, message
    assert "s3" not in caught.value.target
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:s3cr3t@host:2024#agent", "http://ops:***@host:2024#agent"),
        ("http://ops:s3:cr@t@[bad", "http://ops:***@[bad"),
        ("http://ops:s3/cr3t@host", "http://ops:***@host"),
        ("http://:s3cr3t@host", "http://:***@host"),
        ("postgresql+psycopg://app:s3cr3t@db/app", "postgresql+psycopg://app:***@db/app"),
        ("http://ops@host:2024", "http://ops@host:2024"),  # a user name is no secret
        ("http://host:2024#agent", "http://host:2024#agent"),
        ("graph.py:graph", "graph.py:graph"),
    ],
)
def test_redacted_hides_the_password_of_any_url(url: str, shown: str) -> None:
    from scheduler.weburls import redacted  # (new with it: the other tests ran without)

    assert redacted(url) == shown


def test_a_good_server_url_keeps_working_and_shows_no_password() -> None:
    graph = load_graph("http://ops:s3cr%40t@[::1]:2024#asker")
    assert (graph.url, graph.assistant_id) == ("http://[::1]:2024", "asker")
    assert "s3cr" not in repr(graph)


def test_the_settings_repr_shows_no_password_or_key() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        graph="http://ops:s3cr3t@host:2024#agent",
        database_url="postgresql+psycopg://app:s3cr3t@db/app",
        api_key="s3cr3t-key",
        webhook_secret="s3cr3t-hmac",
    )
    for text in (repr(settings), str(settings)):
        assert "s3cr3t" not in text, text
        assert "graph='http://ops:***@host:2024#agent'" in text
        assert "database_url='postgresql+psycopg://app:***@db/app'" in text
        assert "api_key='***'" in text and "webhook_secret='***'" in text
    assert settings.graph == "http://ops:s3cr3t@host:2024#agent"  # the value itself is kept


@pytest.mark.parametrize("port", ["²", "٣٠٠٠", "8１23"])
def test_an_address_whose_port_is_not_ascii_digits_is_refused_as_not_host_port(port: str) -> None:
    """``str.isdigit`` takes other scripts' digits (and ``²``, which ``int`` then refuses
    with its own ValueError): an HTTP address of ``127.0.0.1:²`` got "invalid literal for
    int()", and ``127.0.0.1:٣٠٠٠`` was taken as port 3000."""
    from pydantic import ValidationError

    from scheduler.exceptions import UsageError
    from scheduler.server.http import check_address

    with pytest.raises(ValidationError, match="is not HOST:PORT"):
        Settings(http_address=f"127.0.0.1:{port}")
    with pytest.raises(UsageError, match="is not HOST:PORT"):
        check_address(f"127.0.0.1:{port}", None)
