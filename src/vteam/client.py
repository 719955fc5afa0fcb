"""An async client for vTeam's API, used by the CLI and the benchmarks."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ApiError(Exception):
    """The API answered with a problem; `str()` is its detail, fit for one line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class Unreachable(Exception):
    """No vTeam server answered at the given address."""


class BadInput(Exception):
    """A server URL or token no request can be made with; `str()` says which, in one line, never the token."""


def check_server(server: str) -> str:
    """The server URL without its trailing slash, or BadInput when it is not an http(s) URL with a host."""
    try:
        url = httpx.URL(server)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BadInput(f"the server URL {server!r} is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise BadInput(f"the server URL {server!r} is not an http:// or https:// URL with a host")
    return server.rstrip("/")


def check_token(token: str) -> str:
    """The token, or BadInput when it holds what no vTeam token holds (it would not survive an HTTP header)."""
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise BadInput(
            "the API token (VTEAM_TOKEN or the one `vteam login` saved) holds non-ASCII characters, spaces "
            "or line breaks, which no vTeam token has; copy it again"
        )
    return token


class Client:
    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {check_token(token)}"} if token else {}
        self.server = check_server(server)
        self._http = httpx.AsyncClient(
            base_url=self.server, headers=headers, timeout=timeout, verify=_tls(httpx.URL(self.server))
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach vTeam at {self.server} ({type(exc).__name__}); is `vteam up` running?"
            ) from exc
        if response.is_error:
            raise ApiError(response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def events(
        self,
        project: str,
        name: str,
        *,
        after: int = 0,
        follow: bool = True,
        reconnect_seconds: float = 60.0,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Envelopes from the session's SSE stream, replay first; ends when the session ends.

        A dropped connection is resumed after the last seq received, for up to `reconnect_seconds`, and
        `on_reconnect` hears once per outage that it is; a server that never answered fails at once.
        """
        path = f"/api/projects/{project}/agentic-sessions/{name}/events"
        last, delay, down_since, connected = after, 0.2, 0.0, False
        while True:
            params: dict[str, str | int] = {"after": last, "follow": str(follow).lower()}
            try:
                timeout = httpx.Timeout(30.0, read=None)
                async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                    if response.is_error:
                        await response.aread()
                        raise ApiError(response.status_code, _detail(response))
                    down_since, delay, connected = 0.0, 0.2, True
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            envelope = json.loads(line[5:].strip())
                            last = int(envelope["seq"])
                            yield envelope
                return
            except httpx.TransportError as exc:
                if not connected:
                    raise Unreachable(
                        f"cannot reach vTeam at {self.server} ({type(exc).__name__}); is `vteam up` running?"
                    ) from exc
                now = time.monotonic()
                if not follow or (down_since and now - down_since > reconnect_seconds):
                    raise Unreachable(f"lost the connection to vTeam at {self.server} ({type(exc).__name__})") from exc
                if not down_since and on_reconnect is not None:
                    on_reconnect(
                        f"lost the connection to vTeam at {self.server} ({type(exc).__name__}); "
                        f"reconnecting for up to {reconnect_seconds:.0f} s"
                    )
                down_since = down_since or now
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)


def _tls(server: httpx.URL) -> ssl.SSLContext | bool:
    """An https server is verified against the CA bundle. A plain http one makes no TLS connection (the client
    follows no redirects), so it gets a context that trusts no certificate, failing closed should one ever be
    made, and each CLI command is spared loading the bundle (~20 ms)."""
    if server.scheme == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return f"HTTP {response.status_code}"
