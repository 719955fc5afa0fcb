"""The web edge, in front of both doors (the API and the web pages): security headers on every answer, and a
CSRF check on every write and every WebSocket handshake that a browser's ambient credentials authenticate.

Both are pure ASGI, like the rest of `api.middleware`, so streaming answers pass through unbuffered and
WebSocket handshakes are seen too.

The headers are a handful of fixed strings set here rather than through the `secure` package: its hooks
work on framework response objects (or a middleware that sees no WebSocket handshake), while the choices
that matter here are per answer (no-store for pages, the API docs page's own policy).

The CSRF defence is vTeam's own: asgi-csrf, the maintained ASGI one, is a double-submit cookie not bound to
the browser session (a page on a sibling origin of the same site can set that cookie and so pass the
check) and does not cover WebSockets. Here a request that the session cookie authenticates (it has no
`Authorization` header) must

- come from vTeam's own origin: `Origin` equal to the server's (its `Host` and scheme, `VTEAM_PUBLIC_URL`,
  or one of `VTEAM_ALLOWED_ORIGINS`), and `Sec-Fetch-Site`, when the browser sends it, `same-origin`;
- bring the session's CSRF token (`vteam.auth.csrf`): the `X-CSRF-Token` header (htmx, via app.js), the
  `csrf_token` form field (plain forms), or the `csrf_token` query parameter (WebSocket handshakes).

A write that brings no credential at all (signing in, redeeming a login link) must still not come from
another origin when the browser says where it comes from, so that no other site can sign a browser in as
someone else. Bearer-token callers (the CLI, runners, scripts) are not browsers and are not checked.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from vteam.api.problems import deny, problem
from vteam.auth import SESSION_COOKIE
from vteam.auth.csrf import FIELD, HEADER, subject
from vteam.errors import Forbidden
from vteam.settings import Settings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""The pages load only their own files: no inline script, style or handler, nothing from another origin."""
SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' {SWAGGER_JS} {{hashes}}; "
    f"style-src 'self' {SWAGGER_CSS} 'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""FastAPI's Swagger page loads its bundle from a CDN and starts it with one fixed inline script, allowed by
its hash (computed from the page itself, so an upgrade of FastAPI cannot break it or widen it). The CDN is
allowed for those two exact files only, not for everything it serves."""
DOCS_PATH = "/api/docs"
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: with it a browser sends `Origin: null` on form posts, and the origin check needs the origin.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

Origin = tuple[str, str, int]
"""(scheme, host, port), the default port filled in."""
HtmlRefusal = Callable[[Request, int, str, str], Response]
"""How the web door answers a refused page request (an HTML page); `app.state.html_refusal` when it has one."""


class SecurityHeaders:
    """Add the security headers to every answer that does not set its own, and `Cache-Control: no-store` to
    every HTML page (they show what the signed-in person may see, and may hold a new key's secret)."""

    def __init__(self, app: ASGIApp, *, docs_path: str = DOCS_PATH) -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == self.docs_path:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message["headers"] = _with_headers(list(message.get("headers", ())), CSP.encode())
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The docs page is small and fixed: hold it whole, to allow exactly its inline scripts."""
        start: Message = {}
        body = b""

        async def hold(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            hashes = " ".join(
                "'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
                for s in INLINE_SCRIPT.findall(body)
            )
            start["headers"] = _with_headers(list(start.get("headers", ())), DOCS_CSP.format(hashes=hashes).encode())
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)


def _with_headers(headers: list[tuple[bytes, bytes]], csp: bytes) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in ((b"content-security-policy", csp), *HEADERS) if name not in present]
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if content_type.startswith(b"text/html") and b"cache-control" not in present:
        added.append((b"cache-control", b"no-store"))
    return headers + added


class CsrfGuard:
    """Refuse browser writes and WebSocket handshakes that do not come from vTeam's own pages (see the module
    docstring): 403 problem details on the API, an HTML page on the web pages, a denied handshake."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        configured = [settings.public_url or "", *settings.allowed_origins.split(",")]
        self.configured = {origin for url in configured if url.strip() and (origin := _origin(url)) is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "websocket" or (scope["type"] == "http" and scope["method"] in WRITE_METHODS)
        if not checked:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        refusal = self._origin_refusal(conn)
        bound = None if conn.headers.get("authorization") else subject(conn.headers, conn.cookies.get(SESSION_COOKIE))
        if refusal is None and bound is not None and self._browser(conn):
            token = conn.headers.get(HEADER, "")
            if not token and scope["type"] == "websocket":
                token = conn.query_params.get(FIELD, "")
            elif not token and conn.headers.get("content-type", "").startswith(FORM_TYPES):
                body = await _read_body(receive)
                if body is None:
                    return  # the client left (or BodyLimit refused the body): nothing to answer
                receive = _replay(body, receive)
                token = await _form_field(scope, body)
            if not _csrf_valid(scope, bound, token):
                refusal = (
                    "this browser request does not carry the page's CSRF token; reload the page and try again "
                    "(scripts: send 'Authorization: Bearer <token>' instead of the browser's cookie)"
                )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await _refuse(scope, receive, send, refusal)

    @staticmethod
    def _browser(conn: HTTPConnection) -> bool:
        """Whether a browser sent the request: vTeam's own cookie, or a browser's `Origin`/`Sec-Fetch-Site`
        (which a browser always sends on writes and handshakes, and on which the proxy's callers rely)."""
        return SESSION_COOKIE in conn.cookies or "origin" in conn.headers or "sec-fetch-site" in conn.headers

    def _origin_refusal(self, conn: HTTPConnection) -> str | None:
        if conn.headers.get("authorization"):
            return None
        site = conn.headers.get("sec-fetch-site")
        origin = conn.headers.get("origin")
        if site is not None and site != "same-origin":
            return "the browser says this request does not come from a vTeam page (Sec-Fetch-Site); refused"
        if origin is not None and _origin(origin) not in self._own(conn):
            return "this request comes from a page of another origin; vTeam takes it only from its own pages"
        if origin is None and SESSION_COOKIE in conn.cookies:
            return "a request that the browser's session cookie signs in must say where it comes from (Origin)"
        return None

    def _own(self, conn: HTTPConnection) -> set[Origin]:
        """The server's own origins: as the browser addressed it (Host), `VTEAM_PUBLIC_URL` and
        `VTEAM_ALLOWED_ORIGINS`."""
        scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
        host = conn.headers.get("host")
        addressed = _origin(f"{scheme}://{host}") if host else None
        return self.configured | ({addressed} if addressed else set())


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an origin or URL, with the default port filled in; None when it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _csrf_valid(scope: Scope, cookie: str, token: str) -> bool:
    platform = getattr(scope["app"].state, "platform", None) if "app" in scope else None
    return platform is not None and bool(platform.csrf.valid(cookie, token))


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (`BodyLimit`, outside this, bounds it), or None when the client is gone."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then whatever comes next (a disconnect)."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _form_field(scope: Scope, body: bytes) -> str:
    request = Request(scope, _replay(body, _never))
    try:
        form = await request.form()
        value: Any = form.get(FIELD)
        return value if isinstance(value, str) else ""
    except Exception:  # a malformed body: no token in it; the app answers the body itself
        return ""
    finally:
        await request.close()


async def _never() -> Message:
    return {"type": "http.disconnect"}


async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    if scope["type"] == "websocket":
        await deny(WebSocket(scope, receive, send), Forbidden(detail))
        return
    request = Request(scope)
    html: HtmlRefusal | None = getattr(scope["app"].state, "html_refusal", None) if "app" in scope else None
    if html is not None and not scope["path"].startswith("/api/"):
        response = html(request, 403, "Refused: not from a vTeam page", detail)
    else:
        response = problem(403, "Forbidden", detail, request)
    await response(scope, receive, send)
