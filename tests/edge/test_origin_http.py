"""The web origin over HTTP against a real server: the security headers on every answer, no request input
echoed into a body, the CSRF and Origin checks on cookie-signed writes and WebSocket handshakes, login links
redeemed only by a POST from their page, and no bearer credential for a cookie alone."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.api import create_session, sessions_path
from tests.support.browser import Browser, signed_in
from tests.support.server import Server

pytestmark = pytest.mark.integration

PAYLOAD = "<body onload=alert(document.cookie)>"
REQUIRED_CSP = (
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
)
HOSTILE = "http://127.0.0.1:1"
"""Another port of the same host: the same site as the server, but another origin."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"VTEAM_RUNNER_COMMAND": '["sleep", "600"]', "VTEAM_MAX_RUNNING_SESSIONS": "20"}
    srv = Server(tmp_path_factory.mktemp("origin-http") / "home", env=env).start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _login_link(api: httpx.Client, *, admin: bool = False) -> tuple[str, str]:
    """A new user and the token of a one-time login link for them."""
    name = f"o-{uuid.uuid4().hex[:8]}"
    made = api.post("/api/users", json={"name": name, "admin": admin})
    assert made.status_code == 201, made.text
    return name, parse_qs(urlsplit(made.json()["loginLink"]).query)["token"][0]


def _person(server: Server, api: httpx.Client, *, admin: bool = False) -> tuple[str, str]:
    """A new user and an API token of theirs (`vteam login`'s way)."""
    name, link = _login_link(api, admin=admin)
    login = httpx.post(f"{server.url}/api/login", json={"token": link})
    assert login.status_code == 200, login.text
    return name, str(login.json()["token"])


@pytest.fixture(scope="module")
def admin(server: Server, api: httpx.Client) -> tuple[str, str]:
    """A platform admin person: (name, API token)."""
    return _person(server, api, admin=True)


@pytest.fixture
def browser(server: Server, admin: tuple[str, str]) -> Iterator[Browser]:
    """The admin's browser, signed in through the sign-in page."""
    with signed_in(server.url, admin[1], timeout=30) as client:
        yield client


@pytest.fixture
def project(admin: tuple[str, str], server: Server) -> str:
    name = f"op-{uuid.uuid4().hex[:8]}"
    with server.client(token=admin[1]) as own:
        assert own.post("/api/projects", json={"name": name}).status_code == 201
    return name


def _members(api: httpx.Client, project: str) -> set[str]:
    listed = api.get(f"/api/projects/{project}/permissions").json()["items"]
    return {str(b["subjectName"]) for b in listed}


def _assert_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    csp = response.headers.get("content-security-policy", "")
    for directive in REQUIRED_CSP:
        assert directive in csp, f"{where}: CSP lacks {directive!r}: {csp!r}"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") in ("no-referrer", "same-origin"), where
    assert response.headers.get("x-frame-options") == "DENY", where
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "no-store" in response.headers.get("cache-control", ""), where


# Nothing the request says comes back as page content.


def test_the_vendor_route_never_echoes_a_name_and_is_never_html(server: Server, browser: Browser) -> None:
    answer = browser.get(f"/static/vendor/{quote(PAYLOAD)}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "onload" not in answer.text
    assert "<body" not in answer.text


def test_no_answer_repeats_markup_from_the_url(server: Server, browser: Browser, project: str) -> None:
    """Unknown routes, files and pages answer with fixed text, escaped pages or JSON problem details (which,
    with nosniff, no browser renders); no text or HTML answer carries the raw markup."""
    for path in (
        f"/{quote(PAYLOAD)}",
        f"/static/{quote(PAYLOAD)}",
        f"/projects/{quote(PAYLOAD)}",
        f"/projects/{project}/sessions/{quote(PAYLOAD)}",
        f"/login?token={quote(PAYLOAD)}",
        f"/signin?next={quote(PAYLOAD)}",
        f"/api/projects/{quote(PAYLOAD)}",
    ):
        answer = browser.get(path)
        kind = answer.headers.get("content-type", "")
        assert not answer.content or kind.startswith(("text/html", "text/plain", "application/problem+json")), path
        if not kind.startswith("application/problem+json"):
            assert PAYLOAD not in answer.text, path
        _assert_headers(answer)


# Headers on every answer.


def test_every_page_and_api_answer_carries_the_security_headers(
    server: Server, api: httpx.Client, browser: Browser, project: str
) -> None:
    session = create_session(api, project, prompt="sleep 600")["metadata"]["name"]
    pages = [
        "/",
        "/signin",
        "/projects",
        f"/projects/{project}",
        f"/projects/{project}/settings",
        f"/projects/{project}/sessions/new",
        f"/projects/{project}/sessions/{session}",
        f"/projects/{project}/sessions-table",
        "/login?token=vt_login_nope",
        "/static/app.js",
        "/static/app.css",
        "/static/vendor/htmx.min.js",
        "/no-such-page",
    ]
    for path in pages:
        _assert_headers(browser.get(path))
    with httpx.Client(base_url=server.url) as anonymous:
        for path in ("/signin", "/projects", "/api/projects", "/healthz", "/readyz", "/api/docs"):
            _assert_headers(anonymous.get(path))
    for path in ("/api/me", "/api/projects", f"/api/projects/{project}", "/api/tokens", "/api/docs", "/api/nowhere"):
        _assert_headers(api.get(path))
    _assert_headers(api.post("/api/projects", json={"name": "Not A Name"}))
    api.post(sessions_path(project, session) + "/stop")
    # The API docs page needs Swagger's two files from its CDN, and only those: not everything the CDN serves.
    docs_policy = api.get("/api/docs").headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net " not in docs_policy
    assert "https://cdn.jsdelivr.net;" not in docs_policy
    assert "swagger-ui-bundle.js" in docs_policy


def test_the_pages_load_no_inline_script_style_or_handler(browser: Browser, project: str) -> None:
    """What the CSP would block: the pages must not need it (htmx's own indicator style is switched off)."""
    for path in ("/projects", f"/projects/{project}", f"/projects/{project}/settings", "/login?token=x"):
        html = browser.get(path).text
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, path
        assert "<style" not in html, path
        assert re.search(r"\son[a-z]+=", html) is None, path
        assert re.search(r"\sstyle=", html) is None, path
        assert '"includeIndicatorStyles": false' in html, path


# CSRF and Origin on cookie-signed writes.


def test_a_cookie_signed_write_needs_the_own_origin_and_the_csrf_token(
    server: Server, browser: Browser, api: httpx.Client, admin: tuple[str, str], project: str
) -> None:
    token = browser.csrf_token()
    cookie = browser.cookies["vteam_session"]
    with signed_in(server.url, admin[1]) as elsewhere:
        other = elsewhere.csrf_token()
    assert other != token
    # Without the test helper's own additions: only what is written here goes out.
    bare = httpx.Client(base_url=server.url, cookies={"vteam_session": cookie}, headers={"Origin": server.url})
    form = {"subject_type": "user", "subject_name": "mallory", "role": "admin", "csrf_token": token}
    path = f"/projects/{project}/settings/members"
    refused = {
        "no origin": httpx.post(f"{server.url}{path}", data=form, cookies={"vteam_session": cookie}),
        "another port": browser.post(path, data=form, headers={"Origin": HOSTILE}),
        "same-site fetch": browser.post(path, data=form, headers={"Sec-Fetch-Site": "same-site"}),
        "cross-site fetch": browser.post(path, data=form, headers={"Sec-Fetch-Site": "cross-site"}),
        "no token": bare.post(path, data={**form, "csrf_token": ""}),
        "another session's token": bare.post(path, data={**form, "csrf_token": other}),
    }
    for why, answer in refused.items():
        assert answer.status_code == 403, why
        assert answer.headers["content-type"].startswith("text/html"), why
        assert "mallory" not in _members(api, project), why
    api_refused = browser.post(
        f"/api/projects/{project}/permissions",
        json={"subjectType": "user", "subjectName": "mallory", "role": "admin"},
        headers={"X-CSRF-Token": ""},
    )
    assert api_refused.status_code == 403
    assert api_refused.headers["content-type"] == "application/problem+json"
    assert "mallory" not in _members(api, project)

    # A plain form post from the page: its origin, the hidden field, the browser's fetch metadata.
    added = bare.post(path, data=form, headers={"Sec-Fetch-Site": "same-origin"})
    bare.close()
    assert added.status_code == 303, added.text
    assert "mallory" in _members(api, project)
    with server.client(token=admin[1]) as cli:  # bearer callers are no browser: no origin or token asked
        body = {"subjectType": "user", "subjectName": "scripted", "role": "view"}
        answer = cli.post(f"/api/projects/{project}/permissions", json=body, headers={"Origin": HOSTILE})
        assert answer.status_code == 201, answer.text


def test_no_other_origin_signs_a_browser_in(server: Server, api: httpx.Client, admin: tuple[str, str]) -> None:
    """Login CSRF: another origin's page posting someone's token or link must not sign the browser in."""
    _, link = _login_link(api)
    with Browser(server.url) as victim:
        for path, form in (("/signin", {"token": admin[1]}), ("/login", {"token": link})):
            answer = victim.post(path, data=form, headers={"Origin": HOSTILE})
            assert answer.status_code == 403, path
            assert "set-cookie" not in answer.headers, path
        assert victim.get("/api/me").status_code == 401
    still = httpx.post(f"{server.url}/api/login", json={"token": link})
    assert still.status_code == 200, "the refused POST did not use the link up"


def test_opening_a_login_link_neither_signs_in_nor_uses_it(server: Server, api: httpx.Client) -> None:
    name, link = _login_link(api)
    with Browser(server.url) as opened:
        page = opened.get(f"/login?token={link}")
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
        assert f"Sign in as {name}" in page.text
        assert opened.get("/api/me").status_code == 401
        signed = opened.post("/login", data={"token": link})
        assert signed.status_code == 303
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert opened.get("/api/me").json()["name"] == name
    used = httpx.post(f"{server.url}/api/login", json={"token": link})
    assert used.status_code == 401


# A cookie alone mints no bearer credential.


def test_a_browser_session_cannot_mint_tokens_keys_or_login_links(
    server: Server, browser: Browser, admin: tuple[str, str], project: str
) -> None:
    mints = (
        ("/api/tokens", {"name": "stolen"}),
        ("/api/users", {"name": f"evil-{uuid.uuid4().hex[:6]}", "admin": True}),
        (f"/api/users/{admin[0]}/login-link", None),
        (f"/api/projects/{project}/keys", {"name": "stolen", "role": "admin"}),
    )
    for path, body in mints:
        answer = browser.post(path, json=body)  # the right Origin and CSRF token: only the cookie is wrong
        assert answer.status_code == 403, f"{path}: {answer.text}"
        assert "vteam login" in answer.json()["detail"]
        assert set(answer.json()) & {"token", "loginLink"} == set()
    with server.client(token=admin[1]) as cli:
        assert cli.post("/api/tokens", json={"name": "fine"}).status_code == 201
        assert cli.post(f"/api/projects/{project}/keys", json={"name": "fine", "role": "view"}).status_code == 201
    made = browser.post(f"/projects/{project}/settings/keys", data={"name": "ui-key", "role": "view"})
    assert made.status_code == 303, "the settings page's own form still makes keys"


# WebSocket handshakes.


def _ws_url(server: Server, project: str, session: str, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/api/projects/{project}/agentic-sessions/{session}/ws{query}"


def test_a_cookie_signed_websocket_needs_the_own_origin_and_the_token(
    server: Server, api: httpx.Client, browser: Browser, project: str
) -> None:
    session = create_session(api, project, prompt="sleep 600")["metadata"]["name"]
    cookie = f"vteam_session={browser.cookies['vteam_session']}"
    token = browser.csrf_token()
    for origin, query in ((HOSTILE, f"?csrf_token={token}"), (None, f"?csrf_token={token}"), (server.url, "")):
        headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
        with pytest.raises(InvalidStatus) as refused:
            connect(_ws_url(server, project, session, query), additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403, (origin, query)
    with connect(
        _ws_url(server, project, session, f"?csrf_token={token}"),
        additional_headers={"Cookie": cookie},
        origin=server.url,
        open_timeout=10,
    ) as socket:
        assert '"seq"' in str(socket.recv(timeout=10))
    with connect(_ws_url(server, project, session), additional_headers=server.headers, open_timeout=10) as socket:
        assert '"seq"' in str(socket.recv(timeout=10)), "a bearer token needs no origin"
    api.post(sessions_path(project, session) + "/stop")
