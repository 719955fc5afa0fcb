"""Dependencies as named aliases, and the one authorization check every route passes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from vteam.auth import NOBODY, SESSION_COOKIE, Identity, Role
from vteam.errors import Forbidden, NotFound, Unauthorized
from vteam.resources import AgenticSession
from vteam.services.platform import Platform


def get_platform(conn: HTTPConnection) -> Platform:
    platform: Platform = conn.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def hidden(project: str) -> NotFound:
    """What a caller without access to a project hears: the same as for a project that does not exist."""
    return NotFound(f"project {project!r} not found")


async def role_in(platform: Platform, identity: Identity, project: str) -> Role | None:
    """The caller's role in a project; None when they have none (or it is not their access key's project)."""
    return await platform.role_of(identity, project)


async def check_access(
    conn: HTTPConnection,
    platform: Platform,
    *,
    role: Role | None = Role.VIEW,
    runner: bool = False,
    admin: bool = False,
    public: bool = False,
    only_runner: bool = False,
) -> Identity:
    """Authenticate, then allow:

    - runners on their own session's runner endpoints only;
    - platform admins everywhere;
    - everyone else by their role in the path's project, where a caller with no role at all gets
      404, so that projects' existence does not leak, and one with too low a role gets 403.
    """
    if public:
        # Open routes answer everyone alike, whatever credentials (good, stale or a runner's) come along.
        try:
            return await platform.authenticator.authenticate(conn.headers, conn.cookies.get(SESSION_COOKIE))
        except Unauthorized:
            return NOBODY
    identity = await platform.authenticator.authenticate(conn.headers, conn.cookies.get(SESSION_COOKIE))
    if identity.is_anonymous:
        raise Unauthorized("sign in: send 'Authorization: Bearer <token>' (see `vteam login`)")
    if identity.is_runner:
        return await _runner(conn, platform, identity, allowed=runner or only_runner)
    if only_runner:
        raise Forbidden("only the session's own runner may call this")
    if admin and not identity.admin:
        raise Forbidden("only platform admins may do this")
    project = conn.path_params.get("project")
    if project is None or role is None:
        return identity
    have = await role_in(platform, identity, str(project))
    if have is None:
        raise hidden(str(project))
    if not have.allows(role):
        raise Forbidden(f"your role in project {project!r} is {have.value}; this needs {role.value}")
    return identity


async def _runner(conn: HTTPConnection, platform: Platform, identity: Identity, *, allowed: bool) -> Identity:
    if not allowed:
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


def authorize(
    role: Role | None = Role.VIEW,
    *,
    runner: bool = False,
    admin: bool = False,
    public: bool = False,
    only_runner: bool = False,
) -> Callable[[Request, Platform], Awaitable[Identity]]:
    """The authorization dependency: `role` in the path's project; `runner=True` also admits the session's
    own runner token; `only_runner=True` admits nothing else; `admin=True` only platform admins;
    `public=True` anyone, signed in or not."""

    async def dependency(request: Request, platform: PlatformDep) -> Identity:
        identity = await check_access(
            request, platform, role=role, runner=runner, admin=admin, public=public, only_runner=only_runner
        )
        request.state.identity = identity
        return identity

    dependency.__name__ = "authorize_runner" if runner or only_runner else "authorize"
    return dependency


async def _person(identity: Annotated[Identity, Depends(authorize(None))]) -> Identity:
    if identity.kind != "user":
        raise Forbidden("only people have personal tokens and forge accounts; access keys belong to a project")
    return identity


Caller = Annotated[Identity, Depends(authorize())]
Person = Annotated[Identity, Depends(_person)]
"""A signed-in person (not an access key), for what belongs to a person: tokens, forge accounts."""
CallerOrRunner = Annotated[Identity, Depends(authorize(runner=True))]
Runner = Annotated[Identity, Depends(authorize(None, only_runner=True))]
Editor = Annotated[Identity, Depends(authorize(Role.EDIT))]
ProjectAdmin = Annotated[Identity, Depends(authorize(Role.ADMIN))]
SignedIn = Annotated[Identity, Depends(authorize(None))]
PlatformAdmin = Annotated[Identity, Depends(authorize(None, admin=True))]


def _issuer(dependency: Callable[..., Awaitable[Identity]]) -> Callable[[Identity], Awaitable[Identity]]:
    """`dependency`'s caller, unless only a browser's cookie (vTeam's, or an OAuth proxy's) vouches for them: a
    script that runs in a signed-in browser must not be able to take a bearer credential away and keep it."""

    async def check(identity: Identity = Depends(dependency)) -> Identity:
        if identity.via in ("cookie", "proxy"):
            raise Forbidden(
                "a browser session cannot issue tokens, keys or login links through the API; "
                "use `vteam login` and the CLI (a bearer token), or the web UI's own forms"
            )
        return identity

    return check


PersonIssuer = Annotated[Identity, Depends(_issuer(_person))]
"""A person issuing themselves a bearer token, authenticated by more than the browser cookie."""
EditorIssuer = Annotated[Identity, Depends(_issuer(authorize(Role.EDIT)))]
PlatformAdminIssuer = Annotated[Identity, Depends(_issuer(authorize(None, admin=True)))]


def request_id(request: Request) -> str | None:
    """The id the middleware gave this request, for the audit record a service writes."""
    rid: str | None = getattr(request.state, "request_id", None)
    return rid
