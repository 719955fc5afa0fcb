"""The API's own ASGI middleware: request ids, a request body size limit and a per-caller write rate limit.

All three are pure ASGI rather than `BaseHTTPMiddleware`, which would buffer streaming responses (server-sent
events) and does not see WebSockets at all; these pass every message through as it comes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vteam.api.problems import problem
from vteam.api.web_edge import CsrfGuard, SecurityHeaders
from vteam.auth import NOBODY, SESSION_COOKIE
from vteam.errors import VteamError
from vteam.settings import Settings

REQUEST_ID_HEADER = "x-request-id"
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What a client (or a proxy in front) may choose as a request id: short, and safe in logs and headers."""

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RUNNER_PATH = "/runner/"
"""Runners report their session's status here; throttling them would lose a session's state, never protect it."""
MAX_BUCKETS = 100_000
"""Callers tracked at once; beyond it the longest idle is forgotten (and so gets a full bucket back)."""


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; the request id goes outermost, so that a 413 or 429 carries one too."""
    app.add_middleware(CsrfGuard, settings=settings)  # innermost: after the body limit
    if settings.write_rate_per_minute > 0:
        app.add_middleware(WriteRateLimit, per_minute=settings.write_rate_per_minute)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ProxyHeaders, secret=proxy_secret(settings), allowed=proxy_addresses(settings))
    app.add_middleware(RequestId)
    app.add_middleware(SecurityHeaders)  # outermost: on every answer


IDENTITY_HEADERS = frozenset(
    {b"x-forwarded-user", b"x-forwarded-groups", b"x-forwarded-access-token", b"x-forwarded-email"}
)
PROXY_SECRET_HEADER = b"x-vteam-proxy-secret"
"""The header a generic proxy (nginx, Apache, oauth2-proxy) proves itself with: `VTEAM_PROXY_SECRET`."""


def proxy_secret(settings: Settings) -> str | None:
    """The secret a proxy must present, or None when no proxy is trusted (forwarded identities always dropped)."""
    if not settings.trust_proxy_headers or settings.proxy_secret is None:
        return None
    return settings.proxy_secret.get_secret_value() or None


def proxy_addresses(settings: Settings) -> frozenset[str]:
    """Addresses a proven proxy must also come from; empty: any."""
    return frozenset(a.strip() for a in settings.trusted_proxies.split(",") if a.strip())


def proxy_trust(settings: Settings) -> str:
    """One line saying whom forwarded identity headers are believed from, for `vteam up`'s banner."""
    if proxy_secret(settings) is None:
        return "identity: vTeam's own tokens and sign-ins; forwarded identity headers are ignored"
    where = ", ".join(sorted(proxy_addresses(settings))) or "any address"
    return f"identity: also a proxy proving VTEAM_PROXY_SECRET (from {where}); other forwarded headers are dropped"


class ProxyHeaders:
    """Believe the forwarded identity headers (user, groups, access token) only from a proxy that proves itself
    with the shared secret: `X-Vteam-Proxy-Secret: <secret>`, or the password of the Basic credentials that
    OpenShift's oauth-proxy adds (`--basic-auth-password`). Anyone else's are dropped, whatever their address:
    every agent on the host reaches loopback. `allowed` addresses only narrow this further.

    The same proof decides `X-Forwarded-Proto` and `X-Forwarded-For` (the scheme and client address the app
    sees), which uvicorn would otherwise take from any caller on loopback. The secret header, and the proxy's
    own Basic credentials, never reach the app.
    """

    def __init__(self, app: ASGIApp, *, secret: str | None, allowed: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.secret = secret.encode() if secret else None
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            headers = list(scope["headers"])
            proof = self.proof(scope.get("client"), headers)
            scope["headers"] = _kept(headers, proof)
            if proof is not None:
                _forwarded_origin(scope)
        await self.app(scope, receive, send)

    def proof(self, client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]) -> str | None:
        """How the request proves it comes from the proxy ("header" or "basic"), or None when it does not."""
        if self.secret is None or (self.allowed and (client is None or client[0] not in self.allowed)):
            return None
        sent = [v for k, v in headers if k.lower() == PROXY_SECRET_HEADER]
        if len(sent) == 1 and hmac.compare_digest(sent[0], self.secret):
            return "header"
        basic = [v for k, v in headers if k.lower() == b"authorization" and v[:6].lower() == b"basic "]
        if not sent and len(basic) == 1 and hmac.compare_digest(_basic_password(basic[0]), self.secret):
            return "basic"
        return None

    def filter(self, client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers the app may see."""
        return _kept(headers, self.proof(client, headers))


def _kept(headers: list[tuple[bytes, bytes]], proof: str | None) -> list[tuple[bytes, bytes]]:
    return [
        (k, v)
        for k, v in headers
        if k.lower() != PROXY_SECRET_HEADER
        and (proof is not None or k.lower() not in IDENTITY_HEADERS)
        and not (proof == "basic" and k.lower() == b"authorization")
    ]


def _forwarded_origin(scope: Scope) -> None:
    """The scheme and client address a proven proxy reports: the last entry of each, the one it added."""
    headers = Headers(raw=scope["headers"])
    proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    if proto in ("http", "https"):
        scope["scheme"] = {"http": "ws", "https": "wss"}[proto] if scope["type"] == "websocket" else proto
    client = headers.get("x-forwarded-for", "").split(",")[-1].strip()
    if client:
        scope["client"] = (client, 0)


def _basic_password(authorization: bytes) -> bytes:
    """The password of `Basic <base64(user:password)>`, or b"" when it is not well formed."""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""
    _user, colon, password = decoded.partition(b":")
    return password if colon else b""


class RequestId:
    """Give every request an id, in `request.state.request_id` and the `X-Request-Id` response header, so that
    a caller's report of a failure can be matched to the server's log and audit records.

    A well-formed id the client (or a proxy in front) sent is kept, so one id can follow a request across
    systems; anything else is replaced, so that ids never carry arbitrary text into logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = sent if CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # An unexpected error is answered by Starlette's outermost error middleware, outside this one and
            # so without the id; answer it here instead, where the id can go with it. Re-raised, so that the
            # error middleware still logs it (it sends nothing once a response has started).
            if scope["type"] == "http" and not started:
                response = problem(
                    500, "Internal error", "the server hit an unexpected error; see its log", Request(scope)
                )
                await response(scope, receive, send_with_id)
            raise


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, so that no caller can make the server hold an
    arbitrarily large body in memory (FastAPI reads a JSON body whole before validating it).

    A declared Content-Length over the limit is refused before any of the body is read. A chunked body is
    counted as it streams, and cut off with the same 413 once it passes the limit: the app then sees the
    client as gone, and whatever it answers to that is dropped. WebSocket frames are not covered here;
    uvicorn's `ws_max_size` bounds those.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        cut_off = refused = started = False

        async def limited_receive() -> Message:
            nonlocal received, cut_off, refused
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    cut_off = True
                    if not started:  # else the app is already answering; it just reads no more
                        refused = True
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is all the client gets; the app's answer to the "disconnect" goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than this server accepts ({self.max_bytes} bytes; VTEAM_MAX_BODY_BYTES)"
        response = problem(413, "Content too large", detail, Request(scope))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class WriteRateLimit:
    """Limit each caller's writes (POST, PUT, PATCH, DELETE) to `per_minute`, with bursts of as many, so that
    one runaway script or leaked token cannot flood the platform with sessions, secrets or audit records.

    A caller is who their credentials name (`Identity.principal`): a person, however many tokens and browser
    sessions they hold, or one access key; tokens are cheap, so keying by the token would hand out allowances
    freely. Callers without valid credentials are their IP address. That costs a write one token look-up
    before the app's own; a flood with bad tokens is refused per address. Reads are not limited, nor are the
    runners' own endpoints. Buckets idle long enough to have refilled are forgotten, and at most
    `MAX_BUCKETS` are kept, so memory stays bounded whatever the number of callers.
    """

    def __init__(self, app: ASGIApp, *, per_minute: int) -> None:
        self.app = app
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60.0
        self.idle_seconds = self.capacity / self.per_second  # a bucket idle this long is full again: forgettable
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS or RUNNER_PATH in scope["path"]:
            await self.app(scope, receive, send)
            return
        wait = self.take(await self.caller(HTTPConnection(scope)), time.monotonic())
        if wait is None:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        limit = int(self.capacity)
        detail = f"more than {limit} writes a minute from this caller; retry after {retry_after} s"
        response = problem(429, "Too many requests", detail, Request(scope))
        response.headers["Retry-After"] = str(retry_after)
        await response(scope, receive, send)

    async def caller(self, conn: HTTPConnection) -> str:
        """The principal the request's credentials name, authenticated as the app will; else its address."""
        platform = getattr(conn.app.state, "platform", None)
        identity = NOBODY
        if platform is not None:
            try:
                identity = await platform.authenticator.authenticate(conn.headers, conn.cookies.get(SESSION_COOKIE))
            except VteamError:
                identity = NOBODY
        if identity.is_anonymous:
            return "ip:" + (conn.client.host if conn.client else "unknown")
        return identity.principal

    def take(self, key: str, now: float) -> float | None:
        """Take one write from `key`'s bucket: None if allowed, else the seconds until one is."""
        self._evict(now)
        bucket = self.buckets.pop(key, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        self.buckets[key] = bucket  # to the end: the most recently used
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.per_second

    def _evict(self, now: float) -> None:
        while self.buckets:
            key, oldest = next(iter(self.buckets.items()))
            if now - oldest.at < self.idle_seconds and len(self.buckets) < MAX_BUCKETS:
                return
            del self.buckets[key]
