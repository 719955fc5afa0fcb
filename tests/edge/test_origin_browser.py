"""The web origin attacked in Debian's Chromium: a hostile page on another loopback port (the same site, another
origin) drives a signed-in admin's browser, and the old token-theft link is opened; vTeam's own pages keep
working under the same rules, and a link from another site still reaches a signed-in person's page."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.support.api import create_session, sessions_path
from tests.support.server import Server
from tests.support.ui import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration

STEAL = (
    "fetch('/api/tokens', {method: 'POST', headers: {'Content-Type': 'application/json'},"
    " body: JSON.stringify({name: 'stolen'})}).then((r) => r.text()).then((t) => { document.title = 'ran:' + t; })"
)
"""What the old exploit ran on vTeam's origin: mint an API token with the admin's cookie and read it back."""
OPEN_SOCKET = """(url) => new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onmessage = () => { resolve("message"); socket.close(); };
  socket.onerror = () => resolve("refused");
  socket.onclose = () => resolve("refused");
  setTimeout(() => resolve("timeout"), 10000);
})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"VTEAM_RUNNER_COMMAND": '["sleep", "600"]', "VTEAM_MAX_RUNNING_SESSIONS": "20"}
    srv = Server(tmp_path_factory.mktemp("origin-browser") / "home", env=env).start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def admin(server: Server, api: httpx.Client) -> tuple[str, str]:
    """A platform admin person (name, API token), signed in the way `vteam login` does."""
    made = api.post("/api/users", json={"name": f"root-{uuid.uuid4().hex[:6]}", "admin": True})
    assert made.status_code == 201, made.text
    link = parse_qs(urlsplit(made.json()["loginLink"]).query)["token"][0]
    login = httpx.post(f"{server.url}/api/login", json={"token": link})
    assert login.status_code == 200, login.text
    return str(made.json()["name"]), str(login.json()["token"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def signed_in(chromium: Browser, server: Server, admin: tuple[str, str]) -> Iterator[tuple[BrowserContext, Page]]:
    """The admin's browser, signed in through the sign-in page; no vTeam page may break its own CSP."""
    context = chromium.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text and page.url.startswith(server.url):
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.goto("/signin")
    page.get_by_label("API token or login link").fill(admin[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)
    yield context, page
    context.close()
    assert violations == []


@pytest.fixture
def project(server: Server, admin: tuple[str, str]) -> str:
    name = f"ob-{uuid.uuid4().hex[:8]}"
    with server.client(token=admin[1]) as own:
        assert own.post("/api/projects", json={"name": name}).status_code == 201
    return name


@contextlib.contextmanager
def site(pages: dict[str, str], host: str = "127.0.0.1") -> Iterator[str]:
    """A tiny web site on a port of its own, serving `pages` (path -> HTML); yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(urlsplit(self.path).path, "not here").encode()
            self.send_response(200 if urlsplit(self.path).path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _members(api: httpx.Client, project: str) -> dict[str, str]:
    listed = api.get(f"/api/projects/{project}/permissions").json()["items"]
    return {str(b["subjectName"]): str(b["role"]) for b in listed}


def _tokens(server: Server, token: str) -> list[str]:
    with server.client(token=token) as own:
        return [str(t["name"]) for t in own.get("/api/tokens").json()["items"]]


def test_a_page_on_another_port_can_neither_add_an_admin_nor_open_a_session_socket(
    server: Server, api: httpx.Client, signed_in: tuple[BrowserContext, Page], project: str
) -> None:
    _, page = signed_in
    session = create_session(api, project, prompt="sleep 600")["metadata"]["name"]
    socket_url = f"ws://127.0.0.1:{server.port}/api/projects/{project}/agentic-sessions/{session}/ws"
    members_url = f"{server.url}/projects/{project}/settings/members"
    hostile = {
        "/form": f"""<!doctype html><html><body onload="document.forms[0].submit()">
            <form method="post" action="{members_url}">
              <input name="subject_type" value="user"><input name="subject_name" value="mallory">
              <input name="role" value="admin"><input name="csrf_token" value="guessed">
            </form></body></html>""",
        "/socket": "<!doctype html><html><body>socket</body></html>",
    }
    with site(hostile) as evil:
        with page.expect_response(lambda r: r.url == members_url) as posted:
            page.goto(f"{evil}/form")
        assert posted.value.status == 403
        page.wait_for_url(members_url)
        assert "mallory" not in _members(api, project)

        page.goto(f"{evil}/socket")
        assert page.evaluate(OPEN_SOCKET, socket_url) == "refused"

    # The same actions from vTeam's own pages.
    page.goto(f"/projects/{project}/settings")
    page.locator("#member-name").fill("mallory-invited")
    page.locator("#member-role").select_option("admin")
    page.get_by_role("button", name="Add member").click()
    page.wait_for_url(lambda url: "done=member-added" in url)
    assert _members(api, project).get("mallory-invited") == "admin"
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    assert page.evaluate(OPEN_SOCKET, f"{socket_url}?csrf_token={quote(token)}") == "message"
    api.post(sessions_path(project, session) + "/stop")


def test_the_old_token_theft_link_gets_no_token(
    server: Server, admin: tuple[str, str], signed_in: tuple[BrowserContext, Page]
) -> None:
    _, page = signed_in
    before = _tokens(server, admin[1])
    payload = "<body onload=eval(decodeURIComponent(location.hash.slice(1)))>"
    page.goto(f"/static/vendor/{quote(payload)}#{quote(STEAL)}")
    page.wait_for_timeout(1500)
    assert not page.title().startswith("ran:"), "the link ran script on vTeam's origin"
    assert "stolen" not in _tokens(server, admin[1])

    # Even script that does run on a vTeam page, with the page's own origin and CSRF token, mints nothing.
    page.goto("/projects")
    status = page.evaluate(
        """async () => (await fetch("/api/tokens", {method: "POST", body: JSON.stringify({name: "stolen"}),
             headers: {"Content-Type": "application/json",
                       "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}})).status"""
    )
    assert status == 403
    assert _tokens(server, admin[1]) == before


def test_a_link_from_another_site_still_reaches_a_signed_in_persons_page(
    server: Server, signed_in: tuple[BrowserContext, Page], project: str
) -> None:
    """The cookie is SameSite=Strict, so the browser leaves it behind on another site's link; the sign-in page
    loads itself once more from vTeam's origin, which brings it, and goes on to the linked page."""
    context, page = signed_in
    [cookie] = [c for c in context.cookies() if c["name"] == "vteam_session"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["httpOnly"]
    target = f"{server.url}/projects/{project}"
    linking = {"/": f'<!doctype html><html><body><a href="{target}">the project</a></body></html>'}
    with site(linking, "localhost") as other:
        page.goto(f"{other}/")
        page.get_by_role("link", name="the project").click()
        page.wait_for_url(target)
    assert page.get_by_role("heading", level=1).inner_text() == project
