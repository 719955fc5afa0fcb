"""Browser test helpers and fixtures: a real `vteam up`, Debian's Chromium driven by Playwright (sync API), one
page per test. The fixtures that use them are in `tests/web/browser/conftest.py`.

Debian's browser only (never `playwright install`): the module is skipped where /usr/bin/chromium is missing.
A page fails its test on any console error or uncaught page error.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "browser tests need Debian's chromium (/usr/bin/chromium; `make test` installs it)", allow_module_level=True
    )

from playwright.sync_api import Page  # noqa: E402

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


def make_user(admin: httpx.Client, name: str | None = None) -> tuple[str, str]:
    """A new user and their API token: the admin's login link for them, traded at POST /api/login."""
    name = name or f"u-{uuid.uuid4().hex[:8]}"
    created = admin.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    [secret] = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"]
    login = httpx.post(f"{admin.base_url}/api/login", json={"token": secret}, timeout=30)
    assert login.status_code == 200, login.text
    return name, login.json()["token"]


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
