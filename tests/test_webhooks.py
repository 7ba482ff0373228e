"""Webhooks to a real local receiver (an HTTP server on 127.0.0.1): the signature verifies,
a 500 is retried, every attempt is recorded and shown on the run; private destinations are
refused unless allowed; a cron's ``webhook`` is the task's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler import TaskDefinition, TaskScheduler
from scheduler.exceptions import describe_errors
from scheduler.server import create_app
from scheduler.testing import clocked_scheduler
from tests import prompt_graphs
from tests.conftest import PYTHON, ROOT, SchedulerFactory, eventually


class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200); keeps them."""

    def __init__(self, statuses: list[int], host: str = "127.0.0.1") -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # (the default listen backlog is 5: twenty deliveries connecting at once to a
            # receiver whose accepting thread is slow, on a loaded machine, had their
            # connections dropped and retried by the kernel a second or more later)
            request_queue_size = 128

        server_class = Server
        if ":" in host:

            class Server6(Server):
                address_family = socket.AF_INET6

            server_class = Server6
        self.server = server_class((host, 0), Handler)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.server.server_port}/hook?token=t"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([500])
    yield server
    server.close()


async def test_a_delivery_is_signed_retried_and_recorded(
    make_scheduler: SchedulerFactory, receiver: Receiver
) -> None:
    scheduler = make_scheduler(
        webhook_secret="shh", webhook_allow_private=True, webhook_retry_seconds=0.05
    )
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="report", interval_seconds=3600, prompt="hi", webhook=receiver.url)
    )
    run_id = scheduler.run_task_now("report")
    await eventually(lambda: len(receiver.received) >= 2, message="two delivery attempts")
    app = create_app(scheduler, scheduler.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as c:
        run = await eventually(
            lambda: _with_deliveries(c, run_id, 2), message="both attempts recorded"
        )
    headers, body = receiver.received[-1]
    expected = hmac.new(
        b"shh", headers["x-scheduler-timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["x-scheduler-signature"], f"sha256={expected}")
    sent = json.loads(body)
    assert sent["event"] == "run.finished" and sent["task_id"] == "report"
    assert sent["run"]["id"] == run_id and sent["run"]["status"] == "succeeded"
    assert receiver.received[0][1] == body  # the retry sends the same record
    attempts = [(d["attempt"], d["status_code"], d["error"]) for d in run["deliveries"]]
    assert attempts == [(1, 500, "HTTP 500"), (2, 200, None)]


async def deliveries_of(scheduler: Any, task_id: str, url: str) -> list[dict[str, Any]]:
    """The delivery attempts of a run of a new task ``task_id`` with webhook ``url`` (once
    one is recorded)."""
    task = TaskDefinition(id=task_id, interval_seconds=3600, prompt="hi", webhook=url)
    scheduler.add_task(task)
    run_id = scheduler.run_task_now(task_id)
    found: list[dict[str, Any]] = await eventually(
        lambda: scheduler._store.deliveries(run_id), message=f"a delivery of {task_id}"
    )
    return found


async def _with_deliveries(client: httpx.AsyncClient, run_id: str, n: int) -> Any:
    run = (await client.get(f"/api/runs/{run_id}")).json()
    return run if len(run["deliveries"]) >= n else None


async def test_private_destinations_are_refused_unless_allowed(
    make_scheduler: SchedulerFactory, receiver: Receiver
) -> None:
    scheduler = make_scheduler()  # webhook_allow_private is off by default
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="report", interval_seconds=3600, prompt="hi", webhook=receiver.url)
    )
    run_id = scheduler.run_task_now("report")
    [refused] = await eventually(
        lambda: scheduler._store.deliveries(run_id), message="the refusal recorded"
    )
    assert refused["status_code"] is None and "private address" in refused["error"]
    assert receiver.received == []


async def test_a_crons_webhook_is_delivered(
    make_scheduler: SchedulerFactory, receiver: Receiver
) -> None:
    receiver.statuses.clear()
    scheduler = make_scheduler(webhook_allow_private=True)
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as c:
        cron = (
            await c.post(
                "/runs/crons",
                json={"assistant_id": "agent", "schedule": "0 9 * * *", "webhook": receiver.url,
                      "input": {"messages": [{"role": "user", "content": "hi"}]}},
            )
        ).json()  # fmt: skip
        assert cron["payload"]["webhook"] == receiver.url
        assert (await c.get(f"/api/tasks/{cron['cron_id']}")).json()["definition"]["webhook"]
        run = (await c.post(f"/api/tasks/{cron['cron_id']}/run")).json()
    await eventually(lambda: receiver.received, message="the cron's delivery")
    assert json.loads(receiver.received[0][1])["run"]["id"] == run["id"]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """Names ending in ``.test`` resolve to the answers listed for them (each one or more
    comma-separated addresses), one lookup after another (the last one from then on), as a
    DNS server with a zero TTL can answer; other names as usual. The answer ``EAI_AGAIN`` is
    a temporary failure, ``silent`` a name server that does not answer (the lookup blocks
    until the test ends, then fails). ``names["lookups"]`` keeps the names looked up."""
    real = socket.getaddrinfo
    names: dict[str, list[str]] = {"lookups": []}
    ended = threading.Event()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):  # anyio (under httpx) asks with the name IDNA-encoded
            host = host.decode("ascii")
        if isinstance(host, str) and host.endswith(".test"):
            names["lookups"].append(host)
            answers = names[host]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if answer in ("EAI_AGAIN", "silent"):
                ended.wait(60 if answer == "silent" else 0)
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            return [i for a in answer.split(",") for i in real(a, port, *args, **kwargs)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield names
    ended.set()


async def test_a_name_rebound_after_the_check_reaches_nothing_private(
    make_scheduler: SchedulerFactory, receiver: Receiver, resolver: dict[str, list[str]]
) -> None:
    """The check sees a public address, the connection would see 127.0.0.1: the request
    goes to the public address checked (unreachable offline), never to the receiver."""
    resolver["rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    port = receiver.server.server_port
    scheduler = make_scheduler(webhook_attempts=1, webhook_timeout_seconds=1)
    scheduler.start()
    [attempt] = await deliveries_of(scheduler, "r", f"http://rebind.test:{port}/hook")
    assert attempt["status_code"] is None and attempt["error"]
    assert receiver.received == []
    assert resolver["lookups"] == ["rebind.test"]  # looked up once: the check


async def test_a_checked_address_gets_the_request_under_its_name(
    make_scheduler: SchedulerFactory,
    receiver: Receiver,
    resolver: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request to the address checked keeps the URL's name as Host, its path, query,
    user info and signature (the receiver on 127.0.0.1 counts as public for this test
    only); the attempt recorded on the run names the URL without its password."""
    import scheduler.webhooks

    monkeypatch.setattr(scheduler.webhooks, "_is_public", lambda address: True)
    receiver.statuses.clear()
    resolver["hooks.test"] = ["127.0.0.1", "10.1.2.3"]  # later lookups would go elsewhere
    port = receiver.server.server_port
    tasks = make_scheduler(webhook_secret="s3cret")
    tasks.start()
    url = f"http://ops:hunter2@hooks.test:{port}/hook?token=t"
    tasks.add_task(TaskDefinition(id="h", interval_seconds=3600, prompt="hi", webhook=url))
    run_id = tasks.run_task_now("h")
    await eventually(lambda: receiver.received, message="the delivery")
    headers, body = receiver.received[0]
    assert headers["host"] == f"hooks.test:{port}"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"ops:hunter2").decode()
    expected = hmac.new(b"s3cret", headers["x-scheduler-timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert headers["x-scheduler-signature"] == f"sha256={expected}"
    assert json.loads(body)["run"]["id"] == run_id
    [delivered] = await eventually(
        lambda: tasks._store.deliveries(run_id), message="the delivery recorded"
    )
    assert (delivered["status_code"], delivered["url"]) == (200, url.replace("hunter2", "***"))
    assert resolver["lookups"] == ["hooks.test"]


async def test_each_address_checked_is_tried_and_names_go_out_idna_encoded(
    make_scheduler: SchedulerFactory,
    receiver: Receiver,
    resolver: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name whose first address is down is delivered at the next one; a name in another
    script is resolved and sent as its IDNA (xn--) form."""
    import scheduler.webhooks

    monkeypatch.setattr(scheduler.webhooks, "_is_public", lambda address: True)
    receiver.statuses.clear()
    resolver["xn--bcher-kva.test"] = ["127.0.0.2,127.0.0.1"]  # nothing listens on .2
    port = receiver.server.server_port
    tasks = make_scheduler(webhook_attempts=1)
    tasks.start()
    url = f"http://user:p%40ss@bücher.test:{port}/hook?q=1"
    [delivered] = await deliveries_of(tasks, "i", url)
    assert (delivered["status_code"], delivered["error"]) == (200, None)
    [(headers, _)] = receiver.received
    assert headers["host"] == f"xn--bcher-kva.test:{port}"
    assert headers["authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def _run_hooked_to(
    make_scheduler: SchedulerFactory, receiver: Receiver, name: str, **settings: Any
) -> tuple[TaskScheduler, str]:
    """A started scheduler and a run of a task whose webhook is the receiver under ``name``."""
    receiver.statuses.clear()
    scheduler = make_scheduler(webhook_allow_private=True, webhook_retry_seconds=0.05, **settings)
    scheduler.start()
    port = receiver.server.server_port
    scheduler.add_task(
        TaskDefinition(id="t", interval_seconds=3600, prompt="hi",
                       webhook=f"http://{name}:{port}/hook")
    )  # fmt: skip
    return scheduler, scheduler.run_task_now("t")


async def test_a_temporary_dns_failure_is_a_failed_attempt_tried_again(
    make_scheduler: SchedulerFactory, receiver: Receiver, resolver: dict[str, list[str]]
) -> None:
    """A lookup that fails for now (EAI_AGAIN) is not a refusal: it is recorded and the
    delivery is tried again, as after a network error."""
    resolver["flaky.test"] = ["EAI_AGAIN", "127.0.0.1"]
    scheduler, run_id = _run_hooked_to(make_scheduler, receiver, "flaky.test")
    attempts = await eventually(
        lambda: _attempts(scheduler, run_id, 2), message="the attempt after the failure"
    )
    assert attempts[0][:2] == (1, None) and "Temporary failure" in attempts[0][2]
    assert attempts[0][2].startswith("cannot resolve flaky.test")
    assert attempts[1] == (2, 200, None)
    assert len(receiver.received) == 1


async def test_a_lookup_is_bounded_by_the_attempts_timeout(
    make_scheduler: SchedulerFactory, receiver: Receiver, resolver: dict[str, list[str]]
) -> None:
    """A name server that does not answer fails the attempt at the timeout; the next
    attempt looks the name up again."""
    resolver["slow.test"] = ["silent", "127.0.0.1"]
    scheduler, run_id = _run_hooked_to(
        make_scheduler, receiver, "slow.test", webhook_timeout_seconds=0.5
    )
    attempts = await eventually(
        lambda: _attempts(scheduler, run_id, 2), message="both attempts recorded"
    )
    assert attempts == [
        (1, None, "cannot resolve slow.test: no answer within 0.5 s"),
        (2, 200, None),
    ]
    assert resolver["lookups"] == ["slow.test", "slow.test"]


async def test_names_that_get_no_answer_hold_up_no_run_and_not_the_stop(
    make_scheduler: SchedulerFactory, resolver: dict[str, list[str]]
) -> None:
    """More deliveries stuck in DNS than the event loop has default threads (which the
    run log writes through): a run without a webhook still starts and ends, and the stop
    ends the deliveries, recorded as not sent."""
    many = min(32, (os.cpu_count() or 1) + 4) + 2  # the default threads, and more
    scheduler = make_scheduler(webhook_timeout_seconds=60)
    scheduler.start()
    for i in range(many):
        resolver[f"h{i}.silent.test"] = ["silent"]
    scheduler.add_tasks(
        TaskDefinition(id=f"h{i}", interval_seconds=3600, prompt="hi",
                       webhook=f"http://h{i}.silent.test/hook")
        for i in range(many)
    )  # fmt: skip
    hooked = [scheduler.run_task_now(f"h{i}") for i in range(many)]
    await eventually(lambda: len(resolver["lookups"]) >= 6, message="the lookups under way")
    scheduler.add_task(TaskDefinition(id="plain", interval_seconds=3600, prompt="hi"))
    plain = scheduler.run_task_now("plain")
    await eventually(
        lambda: scheduler.get_run(plain).status.value == "succeeded", message="the other run"
    )
    began = time.monotonic()
    await scheduler.stop(grace_seconds=0)
    assert time.monotonic() - began < 15
    stopped = (1, None, "not sent: the scheduler stopped before this attempt")
    assert all(_attempts(scheduler, run_id, 1) == [stopped] for run_id in hooked)


async def test_logs_show_no_user_info_or_query_of_a_url(
    make_scheduler: SchedulerFactory, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery that gives up logs its URL as scheme://host:port/path: no password, no
    token in the query."""
    port = receiver.server.server_port
    scheduler = make_scheduler(webhook_allow_private=True, webhook_attempts=1)
    scheduler.start()
    url = f"http://hookuser:S3cretPassw0rd@127.0.0.1:{port}/hook?token=QUERYTOKEN"
    [attempt] = await deliveries_of(scheduler, "u", url)
    assert attempt["status_code"] == 500
    await eventually(lambda: "gave up" in caplog.text, message="the log line")
    assert f"to http://127.0.0.1:{port}/hook gave up" in caplog.text
    for secret in ("hookuser", "S3cretPassw0rd", "QUERYTOKEN"):
        assert secret not in caplog.text


def _attempts(scheduler: Any, run_id: str, n: int) -> list[tuple[Any, Any, Any]] | None:
    """The run's delivery attempts (attempt, status, error) once there are ``n``."""
    found = [
        (d["attempt"], d["status_code"], d["error"]) for d in scheduler._store.deliveries(run_id)
    ]
    return found if len(found) >= n else None


async def test_an_ipv6_address_is_sent_in_brackets(make_scheduler: SchedulerFactory) -> None:
    receiver = Receiver([], host="::1")
    try:
        scheduler = make_scheduler(webhook_allow_private=True)
        scheduler.start()
        task = TaskDefinition(id="v6", interval_seconds=3600, prompt="hi", webhook=receiver.url)
        scheduler.add_task(task)
        scheduler.run_task_now("v6")
        await eventually(lambda: receiver.received, message="the delivery")
        assert receiver.received[0][0]["host"] == f"[::1]:{receiver.server.server_port}"
    finally:
        receiver.close()


def test_a_webhook_that_cannot_be_sent_is_refused_when_the_task_is_made() -> None:
    from pydantic import ValidationError

    for url in ("http://[::1/", "http://[::1]x/", "http://a.example/\x01x", "http://:80/"):
        with pytest.raises(ValidationError, match="webhook"):
            TaskDefinition(id="w", interval_seconds=60, prompt="p", webhook=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://ops:hunter2@h.example:70000/x",
        "http://ops:hunter2@[::1/x",
        "http://ops:hunter2@:80/",
    ],
)
def test_a_refused_webhook_url_is_named_without_its_password(url: str) -> None:
    """The error names the URL, as ``ops:***@``: it goes to logs, the CLI and 422 answers."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        TaskDefinition(id="w", interval_seconds=60, prompt="p", webhook=url)
    assert "ops:***@" in describe_errors(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("port", [0, 65536, 70000])
async def test_a_webhook_port_no_connection_can_go_to_is_a_422(
    make_scheduler: SchedulerFactory, port: int
) -> None:
    """httpx takes any port number: ``:70000`` was kept, and its delivery died of an
    OverflowError in the connect, with no attempt recorded on the run."""
    scheduler = make_scheduler(webhook_allow_private=True, http_rate_per_second=0)
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as api:
        made = await api.post(
            "/api/tasks",
            json={
                "id": "w",
                "interval_seconds": 60,
                "prompt": "p",
                "webhook": f"http://127.0.0.1:{port}/h",
            },
        )
    assert made.status_code == 422, made.text
    assert made.json()["detail"].startswith("webhook:") and "1-65535" in made.text
    assert scheduler.list_tasks() == []


async def test_a_receiver_that_trickles_is_cut_off_at_the_timeout(
    make_scheduler: SchedulerFactory,
) -> None:
    """The timeout bounds the whole attempt, not each read: a receiver that sends a byte
    every 0.2 s does not hold a delivery slot for ever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        listener.settimeout(10)
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n" * 100:
                if stop.is_set():
                    return
                connection.sendall(bytes([byte]))
                time.sleep(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        scheduler = make_scheduler(
            webhook_allow_private=True, webhook_attempts=1, webhook_timeout_seconds=0.5
        )
        scheduler.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        began = time.monotonic()
        [attempt] = await deliveries_of(scheduler, "slow", url)
        assert attempt["status_code"] is None and "within 0.5 s" in attempt["error"]
        assert time.monotonic() - began < 5
    finally:
        stop.set()
        listener.close()


async def one_goes_out_past(
    scheduler: Any,
    url: str,
    n: int,
    busy: Callable[[], bool],
    answering: Receiver,
    *,
    within: float,
) -> None:
    """Runs of ``n`` tasks whose webhook is ``url`` (until ``busy()``), then one whose
    webhook answers: its delivery must arrive ``within`` seconds."""
    scheduler.add_tasks(
        TaskDefinition(id=f"s{i}", interval_seconds=3600, prompt="hi", webhook=url)
        for i in range(n)
    )
    for i in range(n):
        scheduler.run_task_now(f"s{i}")
    await eventually(busy, message=f"{n} deliveries under way to {url}")
    scheduler.add_task(
        TaskDefinition(id="ok", interval_seconds=3600, prompt="hi", webhook=answering.url)
    )
    scheduler.run_task_now("ok")
    await eventually(lambda: answering.received, timeout=within, message="the other delivery")


async def test_deliveries_waiting_to_retry_do_not_hold_up_the_others(
    make_scheduler: SchedulerFactory,
) -> None:
    """Twenty receivers that fail (more than deliveries may run at once), each delivery
    waiting 10 s to retry: a delivery to a receiver that answers goes out at once."""
    failing = Receiver([500] * 30)
    answering = Receiver([])
    try:
        scheduler = make_scheduler(
            webhook_allow_private=True, webhook_retry_seconds=10, webhook_attempts=2
        )
        scheduler.start()
        await one_goes_out_past(
            scheduler, failing.url, 25, lambda: len(failing.received) >= 25, answering, within=5
        )
    finally:
        failing.close()
        answering.close()


async def test_a_delivery_cut_short_by_the_stop_is_recorded_as_not_sent(
    make_scheduler: SchedulerFactory,
) -> None:
    """The scheduler stops while one delivery waits to retry and another waits for its
    receiver: each shows on its run how far it got, not a silent end."""
    failing = Receiver([500] * 5)
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        scheduler = make_scheduler(
            webhook_allow_private=True,
            webhook_retry_seconds=30,
            webhook_attempts=3,
            webhook_timeout_seconds=60,
        )
        scheduler.start()
        silent = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        scheduler.add_tasks(
            [
                TaskDefinition(id="retry", interval_seconds=3600, prompt="hi", webhook=failing.url),
                TaskDefinition(id="hang", interval_seconds=3600, prompt="hi", webhook=silent),
            ]
        )
        retried = scheduler.run_task_now("retry")
        hung = scheduler.run_task_now("hang")
        await eventually(lambda: scheduler._store.deliveries(retried), message="attempt 1")
        await eventually(
            lambda: scheduler.get_run(hung).status.value == "succeeded", message="the run"
        )
        await asyncio.sleep(0.3)  # its delivery is connected, waiting for an answer
        began = time.monotonic()
        await scheduler.stop(grace_seconds=0)
        assert time.monotonic() - began < 10
        attempts = [
            (d["attempt"], d["status_code"], d["error"])
            for d in scheduler._store.deliveries(retried)
        ]
        assert attempts == [
            (1, 500, "HTTP 500"),
            (2, None, "not sent: the scheduler stopped before this attempt"),
        ]
        [cut] = scheduler._store.deliveries(hung)
        assert (cut["attempt"], cut["status_code"]) == (1, None)
        assert cut["error"].startswith("the scheduler stopped during this attempt")
    finally:
        failing.close()
        listener.close()


_STUCK_AT_EXIT = """
import asyncio, socket, sys, time
from pathlib import Path
real = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):  # a name server that never answers (for 40 s)
    if str(host).endswith(".silent.test"):
        time.sleep(40)
    return real(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from scheduler import TaskDefinition, TaskScheduler
from tests import prompt_graphs
from tests.conftest import make_settings
async def main():
    settings = make_settings(webhook_timeout_seconds=0.5, webhook_attempts=1)
    scheduler = TaskScheduler(True, Path(sys.argv[1]), graph=prompt_graphs.graph, settings=settings)
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi",
                                      webhook="https://hook.silent.test/x"))
    scheduler.start()
    await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
    await asyncio.sleep(1)  # its delivery's lookup is stuck by now
    await scheduler.stop()
asyncio.run(main())
"""


def test_a_lookup_stuck_on_a_silent_name_server_does_not_hold_up_the_exit(
    tmp_path: Path,
) -> None:
    """The lookups ran on a thread pool's threads, which Python joins at exit: a process
    stopped cleanly stayed until the name server gave up."""
    began = time.monotonic()
    subprocess.run(
        [PYTHON, "-c", _STUCK_AT_EXIT, str(tmp_path / "s.db")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=90, check=True,
    )  # fmt: skip
    assert time.monotonic() - began < 25, "the exit waited for the stuck lookup"


async def test_receivers_that_never_answer_do_not_hold_up_a_delivery_to_another(
    make_scheduler: SchedulerFactory,
) -> None:
    """Ten deliveries to a receiver that takes the connection and never answers held every
    connection the deliverer's pool had (10, while 20 deliveries may run at once): a
    delivery to a receiver that answers waited for one of them to time out, and with
    runs coming steadily, was itself cut off at the timeout. It goes out at once now."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []

    def take() -> None:  # accept each connection, read nothing, answer nothing
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=take, daemon=True).start()
    answering = Receiver([])
    try:
        scheduler = make_scheduler(
            webhook_allow_private=True, webhook_attempts=1, webhook_timeout_seconds=6
        )
        scheduler.start()
        silent = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        await one_goes_out_past(scheduler, silent, 10, lambda: len(held) >= 10, answering, within=3)
    finally:
        listener.close()
        for connection in held:
            connection.close()
        answering.close()


async def test_on_the_test_clock_an_attempt_is_stamped_with_its_time(
    receiver: Receiver, tmp_path: Path
) -> None:
    """Every record of a clocked scheduler is in the test clock's time but its webhook
    attempts', which were stamped with the wall clock's (2026 among 2030's runs)."""
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z", db_path=tmp_path / "s.db",
        webhook_allow_private=True, webhook_retry_seconds=0.05,
    ) as (scheduler, clock):  # fmt: skip
        scheduler.add_task(
            TaskDefinition(id="r", interval_seconds=3600, prompt="hi", webhook=receiver.url)
        )
        run_id = scheduler.run_task_now("r")
        await clock.advance(seconds=1)
        attempts = await eventually(
            lambda: [d for d in scheduler._store.deliveries(run_id)] or None,
            message="the attempts recorded",
        )
        run = scheduler.get_run(run_id)
        assert run.finished_at is not None
        for attempt in attempts:
            assert abs(attempt["at"] - run.finished_at.timestamp()) < 60, attempt
