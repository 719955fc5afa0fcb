"""Browser tests: a real `vteam up`, Debian's Chromium driven by Playwright (sync API), one page per test.

Debian's browser only (never `playwright install`): the module is skipped where /usr/bin/chromium is missing.
A page fails its test on any console error or uncaught page error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.server import Server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "browser tests need Debian's chromium (/usr/bin/chromium; `make test` installs it)", allow_module_level=True
    )

from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
EXPECTED: dict[int, list[str]] = {}
"""Per page, console errors a test expects (the browser logs every answer >= 400, even a page's own 401)."""
PHONE = {"width": 390, "height": 844}


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


def make_user(admin: httpx.Client, name: str | None = None) -> tuple[str, str]:
    """A new user and their API token: the admin's login link for them, traded at POST /api/login."""
    name = name or f"u-{uuid.uuid4().hex[:8]}"
    created = admin.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    [secret] = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"]
    login = httpx.post(f"{admin.base_url}/api/login", json={"token": secret}, timeout=30)
    assert login.status_code == 200, login.text
    return name, login.json()["token"]


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


def expect_console_error(page: Page, text: str) -> None:
    """Let the page log one kind of error the test provokes on purpose (e.g. "status of 422")."""
    EXPECTED.setdefault(id(page), []).append(text)


def sign_in(page: Page, token: str) -> None:
    """Sign in through the sign-in page with an API token (or a login link)."""
    page.goto("/signin")
    page.get_by_label("API token or login link").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)


def screenshot(page: Page, name: str, *, docs: str | None = None) -> None:
    """A full-page screenshot in test-artifacts/screenshots, and in docs/screenshots for the pages the docs show."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True, animations="disabled")
    if docs:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        (DOCS_SHOTS / f"{docs}.png").write_bytes(data)
