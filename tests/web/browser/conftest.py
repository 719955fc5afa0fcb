"""The browser tests' fixtures: a real `vteam up` per module, the user they sign in as, Debian's Chromium, and a
fresh page per test that fails it on any console or page error (helpers in tests/support/ui.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright

from tests.support.server import Server
from tests.support.ui import CHROMIUM, CHROMIUM_ARGS, DESKTOP, EXPECTED, make_user


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("vteam-ui") / "home"
    srv = Server(home, env={"VTEAM_MAX_RUNNING_SESSIONS": "8"}).start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def user(admin: httpx.Client) -> tuple[str, str]:
    """The user the tests sign in as: (name, API token)."""
    return make_user(admin, "alice")


@pytest.fixture(scope="module")
def alice(server: Server, user: tuple[str, str]) -> Iterator[httpx.Client]:
    """An API client for the signed-in user, so what the tests set up through the API is theirs."""
    with server.client(token=user[1], timeout=30) as client:
        yield client


@pytest.fixture
def project(alice: httpx.Client) -> str:
    """A fresh project the user administers."""
    name = f"p-{uuid.uuid4().hex[:8]}"
    created = alice.post("/api/projects", json={"name": name, "displayName": "Demo project"})
    assert created.status_code == 201, created.text
    return name


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280x800; any console error or page error fails the test."""
    context = browser.new_context(base_url=server.url, viewport=DESKTOP)
    context.set_default_timeout(10_000)
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = str(message.location.get("url", ""))
        # The browser asks for /favicon.ico by itself; the pages link no icon.
        if urlsplit(url).path == "/favicon.ico":
            return
        if any(expected in f"{message.text} {url}" for expected in EXPECTED.get(id(opened), [])):
            return
        problems.append(f"console error at {opened.url}: {message.text} ({url})")

    def on_page_error(error: Error) -> None:
        problems.append(f"page error at {opened.url}: {error}")

    opened.on("console", on_console)
    opened.on("pageerror", on_page_error)
    yield opened
    context.close()
    EXPECTED.pop(id(opened), None)
    assert problems == [], "\n".join(problems)
