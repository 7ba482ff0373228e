"""The dashboard in a real headless Chromium (Playwright), against a real
``python -m scheduler serve --http`` subprocess running ``tests.prompt_graphs:graph``.

Skipped where Chromium or Playwright is not installed, except in CI
(``SCHEDULER_TEST_REQUIRE_POSTGRES=1``), where that fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REQUIRE_POSTGRES
from tests.serving import ServeProcess

# one xdist worker runs every test of the module (--dist loadgroup): one browser (a module
# fixture), started once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboard")]

CHROMIUM = "/usr/bin/chromium"
FINAL = {"succeeded", "failed", "timed_out", "cancelled", "interrupted", "skipped", "missed"}


def _missing(reason: str) -> None:
    if REQUIRE_POSTGRES:  # CI installs Chromium (.ci/run) and the dev extras
        pytest.fail(f"{reason} (required with SCHEDULER_TEST_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


class Dashboard:
    """``python -m scheduler serve --http 127.0.0.1:PORT`` in ``directory``, its output in
    ``server.log``; :meth:`api` calls its REST API; stopped with SIGTERM."""

    def __init__(self, directory: Path, *, api_key: str | None = None) -> None:
        self.headers = {"x-api-key": api_key} if api_key is not None else {}
        self.server = ServeProcess(
            directory, env={"SCHEDULER_GRAPH": "tests.prompt_graphs:graph"}, api_key=api_key
        )
        self.server.wait_ready()
        self.url = self.server.url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = httpx.request(method, f"{self.url}/api{path}", headers=self.headers, **kwargs)
        assert reply.is_success, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json()

    def final_runs(self, task_id: str, count: int) -> list[dict[str, Any]]:
        """The task's runs, newest first, once ``count`` of them are final."""

        def done() -> list[dict[str, Any]] | None:
            runs: list[dict[str, Any]] = self.api("GET", "/runs", params={"task_id": task_id})[
                "items"
            ]
            return runs if sum(r["status"] in FINAL for r in runs) >= count else None

        return wait_for(done, f"{count} final runs of {task_id}")

    def stop(self) -> None:
        self.server.stop()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system's: Playwright's own browsers are not downloaded)."""
    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if executable is None:
        _missing(f"Chromium is not installed ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context's page; its console errors (a script that fails, a blocked
    style or script) are in ``page.errors``."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    server = Dashboard(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_tasks_runs_and_buttons(dashboard: Dashboard, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    hostile = '<script>window.pwned = 1</script><b id="injected">bold</b>'
    dashboard.api("POST", "/tasks", json={"id": "bad", "interval_seconds": 3600, "prompt": "fail"})
    good_task = {"id": "good", "name": hostile, "interval_seconds": 3600, "prompt": "hi"}
    dashboard.api("POST", "/tasks", json=good_task)
    for task_id in ("bad", "good"):
        dashboard.api("POST", f"/tasks/{task_id}/run")
    failed = dashboard.final_runs("bad", 1)[0]
    assert failed["status"] == "failed"
    assert dashboard.final_runs("good", 1)[0]["status"] == "succeeded"

    page.goto(f"{dashboard.url}/")
    bad, good = page.locator('tr[data-task="bad"]'), page.locator('tr[data-task="good"]')
    expect(bad).to_have_class("failing")
    expect(bad.locator("td.last-status")).to_have_text("failed")
    expect(bad.locator("td.last-status span")).to_have_css("color", "rgb(176, 0, 32)")
    expect(good).not_to_have_class("failing")
    expect(good.locator("td.last-status")).to_have_text("succeeded")
    expect(good.locator("td").nth(2)).to_have_text("Every hour")
    expect(good.locator("td").nth(1)).to_have_text(hostile)  # shown as text, not run
    assert page.locator("#injected").count() == 0
    assert page.evaluate("window.pwned") is None

    good.get_by_role("button", name="Pause").click()
    expect(page).to_have_url(f"{dashboard.url}/")
    expect(good.locator("td.state")).to_have_text("paused")
    assert dashboard.api("GET", "/tasks/good")["state"] == "paused"

    good.get_by_role("button", name="Run now").click()  # a paused task still runs on demand
    runs = dashboard.final_runs("good", 2)
    assert [r["trigger"] for r in runs] == ["manual", "manual"]
    assert runs[0]["status"] == "succeeded"

    dashboard.api("POST", "/tasks/good/resume")  # the table follows without a reload
    expect(good.locator("td.state")).to_have_text("active")
    expect(good.get_by_role("button", name="Pause")).to_be_visible()

    page.get_by_role("link", name="good", exact=True).click()
    expect(page).to_have_url(f"{dashboard.url}/tasks/good")
    expect(page.locator("#runs tr[data-run]")).to_have_count(2)
    expect(page.locator(f'#runs tr[data-run="{runs[0]["id"]}"]')).to_contain_text("succeeded")
    expect(page.locator("#upcoming li")).to_have_count(5)
    expect(page.locator("#definition")).to_contain_text("hi")

    page.goto(f"{dashboard.url}/tasks/bad")
    failing_row = page.locator(f'#runs tr[data-run="{failed["id"]}"]')
    expect(failing_row).to_have_class("failing")
    expect(failing_row).to_contain_text("failing on command")
    failing_row.get_by_role("link").click()
    expect(page).to_have_url(f"{dashboard.url}/runs/{failed['id']}")
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("#run-error")).to_have_text("CommandError: failing on command")
    expect(page.locator("#run-traceback")).to_contain_text("raise CommandError")

    page.goto(f"{dashboard.url}/")
    path = tmp_path / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    assert page.errors == []


def test_refuses_cross_site_and_unknown(dashboard: Dashboard) -> None:
    dashboard.api("POST", "/tasks", json={"id": "t", "interval_seconds": 60, "prompt": "hi"})
    pause = f"{dashboard.url}/tasks/t/pause"
    for headers in ({"origin": "http://evil.example"}, {"referer": "http://evil.example/"}, {}):
        reply = httpx.post(pause, headers=headers)
        assert reply.status_code == 403, headers
    assert dashboard.api("GET", "/tasks/t")["state"] == "active"
    rebound = httpx.get(f"{dashboard.url}/", headers={"host": "evil.example"})
    assert rebound.status_code == 403  # DNS rebinding, with no API key to stop it

    same = httpx.post(pause + "?back=task", headers={"origin": dashboard.url})
    assert same.status_code == 303
    assert same.headers["location"] == "/tasks/t"
    assert dashboard.api("GET", "/tasks/t")["state"] == "paused"

    page = httpx.get(f"{dashboard.url}/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # a monitor's HEAD of the pages: 200 with no body (it was 405, GET only)
    for path in ("/", "/fragments/tasks", "/tasks/t"):
        head = httpx.head(f"{dashboard.url}{path}")
        assert (head.status_code, head.content) == (200, b""), path
    for path in ("/tasks/nope", "/runs/nope"):
        missing = httpx.get(f"{dashboard.url}{path}")
        assert missing.status_code == 404
        assert "nope" in missing.text
    unknown = httpx.post(f"{dashboard.url}/tasks/nope/run", headers={"origin": dashboard.url})
    assert unknown.status_code == 404

    # a webhook's password is not shown (a run's deliveries showed it as ***, its task page
    # in clear)
    hook = "https://ops:hunter2@hooks.example/in"
    dashboard.api(
        "POST", "/tasks", json={"id": "w", "interval_seconds": 60, "prompt": "hi", "webhook": hook}
    )
    shown = httpx.get(f"{dashboard.url}/tasks/w").text
    assert "hunter2" not in shown
    assert "https://ops:***@hooks.example/in" in shown


def test_login_with_api_key(tmp_path: Path, page: Any) -> None:
    from playwright.sync_api import expect

    from scheduler.server.guard import OPEN_PATHS

    if "/login" not in OPEN_PATHS:
        pytest.xfail("guard.py does not let /login through yet (add it to OPEN_PATHS)")
    server = Dashboard(tmp_path, api_key="k")
    try:
        server.api("POST", "/tasks", json={"id": "keyed", "interval_seconds": 60, "prompt": "hi"})
        assert httpx.get(f"{server.url}/").status_code == 401
        assert page.goto(f"{server.url}/").status == 401
        assert page.goto(f"{server.url}/login?key=wrong").status == 403
        assert page.context.cookies() == []

        reply = page.goto(f"{server.url}/login?key=k")
        assert reply.status == 200
        expect(page).to_have_url(f"{server.url}/")
        (cookie,) = page.context.cookies()
        assert (cookie["name"], cookie["value"], cookie["path"]) == ("scheduler_key", "k", "/")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        row = page.locator('tr[data-task="keyed"]')
        row.get_by_role("button", name="Pause").click()
        expect(row.locator("td.state")).to_have_text("paused")
        assert server.api("GET", "/tasks/keyed")["state"] == "paused"
    finally:
        server.stop()


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """A page server on ``localhost`` (another site than ``127.0.0.1`` to a browser, and
    loopback too, so no local-network rule of the browser stops its requests first):
    ``serve(html)`` answers ``html`` at the URL it returns."""
    import http.server
    import threading

    pages: list[bytes] = []

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(pages[-1])

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        pages.append(html.encode())
        return f"http://localhost:{server.server_address[1]}/"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()


def test_another_sites_page_cannot_change_anything(
    dashboard: Dashboard, page: Any, other_site: Callable[[str], str]
) -> None:
    """Without an API key the server is on loopback, and any page the user opens can make
    the browser send it requests: a cron made with a text/plain fetch (no CORS preflight)
    and a Run now form posted to the REST API must both be refused."""
    dashboard.api("POST", "/tasks", json={"id": "t", "interval_seconds": 3600, "prompt": "hi"})
    cron = '{"assistant_id": "agent", "schedule": "* * * * *", "input": {"prompt": "pwned"}}'
    attack = other_site(
        f"""<form id="run" method="post" action="{dashboard.url}/api/tasks/t/run"></form>
        <script>
        fetch("{dashboard.url}/runs/crons", {{method: "POST", mode: "no-cors",
               headers: {{"content-type": "text/plain"}}, body: '{cron}'}})
          .finally(() => document.getElementById("run").submit());
        </script>"""
    )
    with page.expect_navigation(url=f"{dashboard.url}/api/tasks/t/run") as answered:
        page.goto(attack)
    assert answered.value.status == 403
    assert "cross-site request refused" in page.content()
    crons = httpx.post(f"{dashboard.url}/runs/crons/search", json={})
    assert crons.status_code == 200 and crons.json() == []
    assert dashboard.api("GET", "/runs", params={"task_id": "t"})["items"] == []

    # the same requests from a program (no Origin, no Sec-Fetch-Site) are served
    made = httpx.post(f"{dashboard.url}/runs/crons", content=cron)
    assert made.status_code == 200, made.text
    assert httpx.post(f"{dashboard.url}/api/tasks/t/run").status_code == 202
