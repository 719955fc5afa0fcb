"""One connection pool per forge, shared by the short-lived clients that act with each caller's token."""

from __future__ import annotations

import httpx


class SharedTransport(httpx.AsyncBaseTransport):
    """A transport that outlives the clients using it: their `aclose` leaves the pool open."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport(retries=1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Clients close their transport when they finish; the forge closes the pool with `shutdown`."""

    async def shutdown(self) -> None:
        await self._inner.aclose()
