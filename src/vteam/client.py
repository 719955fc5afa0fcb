"""An async client for vTeam's API, used by the CLI and the benchmarks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
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


class Client:
    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.server, headers=headers, timeout=timeout)

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
        self, project: str, name: str, *, after: int = 0, follow: bool = True, reconnect_seconds: float = 60.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Envelopes from the session's SSE stream, replay first; ends when the session ends.

        A dropped connection is resumed after the last seq received, for up to `reconnect_seconds`.
        """
        path = f"/api/projects/{project}/agentic-sessions/{name}/events"
        last, delay, down_since = after, 0.2, 0.0
        while True:
            params: dict[str, str | int] = {"after": last, "follow": str(follow).lower()}
            try:
                timeout = httpx.Timeout(30.0, read=None)
                async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                    if response.is_error:
                        await response.aread()
                        raise ApiError(response.status_code, _detail(response))
                    down_since, delay = 0.0, 0.2
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            envelope = json.loads(line[5:].strip())
                            last = int(envelope["seq"])
                            yield envelope
                return
            except httpx.TransportError as exc:
                now = time.monotonic()
                down_since = down_since or now
                if not follow or now - down_since > reconnect_seconds:
                    raise Unreachable(f"lost the connection to vTeam at {self.server} ({type(exc).__name__})") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return f"HTTP {response.status_code}"
