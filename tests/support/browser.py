"""An HTTP client that writes the way vTeam's own pages make a browser write: with the page's `Origin`, and,
once signed in, the page's CSRF token (what app.js adds to htmx requests), so that tests of the pages get
past the web edge exactly as a person's browser does."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
COOKIE = "vteam_session"


class Browser(httpx.Client):
    """An `httpx.Client` holding the session cookie like a browser; every write says it comes from a vTeam page."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url=base_url, event_hooks={"request": [self._from_a_page]}, **kwargs)
        self.origin = str(self.base_url).rstrip("/")
        self._tokens: dict[str, str] = {}

    def csrf_token(self) -> str:
        """The CSRF token a page of this browser session carries in its `<meta name="csrf-token">`."""
        cookie = self.cookies.get(COOKIE) or ""
        if cookie not in self._tokens:
            page = self.get("/projects")
            found = META.search(page.text)
            assert found, f"no csrf-token meta on /projects ({page.status_code})"
            self._tokens[cookie] = found.group(1)
        return self._tokens[cookie]

    def _from_a_page(self, request: httpx.Request) -> None:
        if request.method not in WRITES:
            return
        request.headers.setdefault("Origin", self.origin)
        if self.cookies.get(COOKIE) and "x-csrf-token" not in request.headers:
            request.headers["X-CSRF-Token"] = self.csrf_token()


@contextlib.contextmanager
def signed_in(server_url: str, token: str, **kwargs: Any) -> Iterator[Browser]:
    """A browser signed in through the sign-in page with an API token (or a login link)."""
    with Browser(server_url, **kwargs) as browser:
        response = browser.post("/signin", data={"token": token})
        assert response.status_code == 303, response.text
        assert browser.cookies.get(COOKIE)
        yield browser
