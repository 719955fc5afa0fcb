"""Dependencies as named aliases, and the one authorization check every route passes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from vteam.api.platform import Platform
from vteam.auth import Identity
from vteam.errors import Forbidden, NotFound, Unauthorized
from vteam.resources import AgenticSession


def get_platform(conn: HTTPConnection) -> Platform:
    platform: Platform = conn.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def check_access(conn: HTTPConnection, platform: Platform, *, runner: bool) -> Identity:
    """Authenticate, then allow: users by role (one local user for now), runners on their own session only."""
    identity = platform.authenticator.authenticate(conn.headers.get("authorization"))
    if not identity.is_runner:
        return identity
    if not runner:
        raise Forbidden("runner tokens may only call their own session's runner endpoints")
    project = str(conn.path_params.get("project", ""))
    name = str(conn.path_params.get("name", ""))
    if (project, name) != (identity.project, identity.session):
        raise Forbidden("this runner token is for another session")
    try:
        session = await platform.store.get(AgenticSession, name, project)
    except NotFound:
        raise Unauthorized("runner token's session no longer exists") from None
    if session.metadata.uid != identity.session_uid or session.phase.terminal:
        raise Unauthorized("runner token has expired with its session")
    return identity


def authorize(*, runner: bool = False) -> Callable[[Request, Platform], Awaitable[Identity]]:
    """The authorization dependency; `runner=True` also admits the session's own runner token."""

    async def dependency(request: Request, platform: PlatformDep) -> Identity:
        identity = await check_access(request, platform, runner=runner)
        request.state.identity = identity
        return identity

    dependency.__name__ = "authorize_runner" if runner else "authorize"
    return dependency


Caller = Annotated[Identity, Depends(authorize())]
CallerOrRunner = Annotated[Identity, Depends(authorize(runner=True))]
