"""Open streams (server-sent events and WebSockets) keep answering to access control while they last.

A stream is authorised when it opens and then again whenever an access change may concern its caller (a
revoked token, a project's bindings changed or forgotten: published by `Accounts`), and on an idle tick, which
catches changes made by another replica or directly in the database. A caller who lost access loses the
stream at once. Each user or access key may hold at most `max_streams_per_caller` streams open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

from sse_starlette import EventSourceResponse
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from vteam.auth import Identity, Role
from vteam.auth.changes import AccessChange
from vteam.edge.deps import check_access, role_in
from vteam.errors import NotFound, Unauthorized, VteamError
from vteam.services.platform import Platform
from vteam.services.stream_slots import Slot

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSE_TOO_BIG = 1009


class StreamGuard:
    """Re-authorises one stream's caller: now (`role`), or as a watch that returns why access was lost."""

    def __init__(self, conn: HTTPConnection, platform: Platform, identity: Identity, project: str) -> None:
        self._conn = conn
        self._platform = platform
        self._identity = identity
        self._project = project
        self._wake = asyncio.Event()
        self.current: Role | None = None
        """The caller's role as of the latest check, for parts rendered later (None before the first)."""

    async def role(self) -> Role:
        """The caller's role in the project as of now; the VteamError their request would get if it is gone."""
        identity = await check_access(self._conn, self._platform, role=Role.VIEW)
        if identity.principal != self._identity.principal:
            raise Unauthorized("the stream's credentials now name someone else")
        role = await role_in(self._platform, identity, self._project)
        if role is None:
            raise NotFound(f"project {self._project!r} not found")
        self.current = role
        return role

    def _notice(self, change: AccessChange) -> None:
        if (change.token_id is not None and change.token_id == self._identity.token_id) or (
            change.project is not None and change.project == self._project
        ):
            self._wake.set()

    async def lost(self) -> VteamError:
        """Wait until the caller may no longer read the stream; the reason, as their next request would hear it."""
        every = self._platform.settings.stream_recheck_seconds
        with self._platform.accounts.changes.subscribe(self._notice):
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=every)
                self._wake.clear()
                try:
                    await self.role()
                except VteamError as exc:
                    return exc
                except Exception:  # fail closed: a stream whose caller cannot be checked does not go on
                    log.exception("could not re-check a stream's caller")
                    return Unauthorized("the server could not re-check your access; reconnect")

    async def bounded(self, source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """`source`'s items until it ends or the caller loses access, whichever comes first.

        However this ends (the client leaving cancels it mid-wait), the pending read is cancelled and awaited
        before `source` is closed, so neither it nor its hub subscription outlives the stream.
        """
        watch = asyncio.create_task(self.lost())
        step: asyncio.Future[T] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(source))
                await asyncio.wait((step, watch), return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    log.info("closed a stream of %s: %s", self._identity.principal, watch.result().detail)
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await _cancelled(watch)
            if step is not None:
                await _cancelled(step)
            aclose: Callable[[], Any] | None = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel `task` if it still runs and wait until it has stopped; its own ending is of no interest here."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await task


def close_code(exc: VteamError) -> tuple[int, str]:
    """A WebSocket close code and reason for a lost authorisation: 4000 + the HTTP status it stands for."""
    return 4000 + exc.status, exc.detail.encode()[:120].decode(errors="ignore")


class GuardedEventSource(EventSourceResponse):
    """Server-sent events that give their stream slot back when the response ends, however it ends."""

    def __init__(self, content: Any, *, slot: Slot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()
