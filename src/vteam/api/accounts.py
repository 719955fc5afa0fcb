"""Signing in and out, who the caller is, users, and personal API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import Field

from vteam.api.deps import Person, PlatformAdmin, PlatformDep, SignedIn, authorize
from vteam.auth import SESSION_COOKIE, Identity
from vteam.auth.embedded import ADMIN_TOKEN_ID
from vteam.errors import InvalidInput, NotFound, Unauthorized
from vteam.resources import CamelModel
from vteam.resources.validation import check_name

router = APIRouter(tags=["accounts"])

CLI_TOKEN_DAYS = 90


class LoginIn(CamelModel):
    token: str = Field(min_length=1, max_length=500, repr=False, description="A one-time login link's token.")


class UserIn(CamelModel):
    name: str = Field(min_length=1, max_length=63)
    display_name: str = Field("", max_length=200)
    admin: bool = False


class TokenIn(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int = Field(90, ge=1, le=365)


def _link(request: Request, platform: Any, secret: str) -> str:
    base = platform.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/login?token={secret}"


def _secure(request: Request, platform: Any) -> bool:
    public = platform.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


async def _audit(request: Request, platform: Any, actor: str, action: str, target: str, **extra: Any) -> None:
    await platform.audit.record(
        actor=actor, action=action, target=target, request_id=getattr(request.state, "request_id", None), **extra
    )


@router.get("/login", include_in_schema=False, dependencies=[Depends(authorize(public=True))])
async def login_link(request: Request, platform: PlatformDep, token: str = Query(..., max_length=500)) -> Response:
    """A one-time login link: sets a secure, HTTP-only session cookie and goes to the start page."""
    try:
        used = await platform.accounts.redeem(token)
    except Unauthorized:
        await _audit(request, platform, "anonymous", "login", "login link", outcome="denied")
        raise
    _, session = await platform.accounts.issue(
        "session",
        name="browser",
        created_by=used.user or "",
        user=used.user,
        ttl=timedelta(hours=platform.settings.session_hours),
    )
    await _audit(request, platform, used.user or "", "login", f"user/{used.user}", details={"via": "link"})
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(platform.settings.session_hours * 3600),
        httponly=True,
        secure=_secure(request, platform),
        samesite="lax",
        path="/",
    )
    return response


@router.post("/api/login", dependencies=[Depends(authorize(public=True))])
async def login_token(body: LoginIn, request: Request, platform: PlatformDep) -> dict[str, Any]:
    """Trade a one-time login link's token for an API token (what `vteam login` does)."""
    try:
        used = await platform.accounts.redeem(body.token)
    except Unauthorized:
        await _audit(request, platform, "anonymous", "login", "login link", outcome="denied")
        raise
    record, secret = await platform.accounts.issue(
        "api",
        name="vteam login",
        created_by=used.user or "",
        user=used.user,
        ttl=timedelta(days=CLI_TOKEN_DAYS),
    )
    await _audit(request, platform, used.user or "", "login", f"user/{used.user}", details={"via": "cli"})
    return {"user": used.user, "token": secret, **record.wire()}


@router.post("/api/logout", status_code=204)
async def logout(request: Request, platform: PlatformDep, caller: SignedIn) -> Response:
    """End the caller's browser session, or revoke the API token the request came with."""
    if caller.kind == "user" and caller.token_id and caller.token_id != ADMIN_TOKEN_ID:
        await platform.accounts.revoke(caller.token_id)
        await _audit(request, platform, caller.name, "token.revoke", f"token/{caller.token_id}")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/me")
async def me(caller: SignedIn) -> dict[str, Any]:
    out: dict[str, Any] = {"name": caller.name, "kind": caller.kind, "admin": caller.admin, "groups": caller.groups}
    if caller.kind == "key":
        out |= {"project": caller.project, "role": caller.role.value if caller.role else None}
    return out


@router.get("/api/users")
async def list_users(platform: PlatformDep, _caller: PlatformAdmin) -> dict[str, Any]:
    return {"items": [u.wire() for u in await platform.accounts.list_users()]}


@router.post("/api/users", status_code=201)
async def create_user(body: UserIn, request: Request, platform: PlatformDep, caller: PlatformAdmin) -> dict[str, Any]:
    """Create a user; the answer carries a one-time login link to hand to them."""
    try:
        check_name(body.name)
    except ValueError as exc:
        raise InvalidInput(f"name: {exc}") from None
    user = await platform.accounts.create_user(body.name, display_name=body.display_name, admin=body.admin)
    await _audit(request, platform, caller.name, "user.create", f"user/{user.name}", details={"admin": user.admin})
    link = await _login_link(request, platform, caller, user.name)
    return {**user.wire(), "loginLink": link}


async def _login_link(request: Request, platform: Any, caller: Identity, user: str) -> str:
    _, secret = await platform.accounts.issue(
        "login",
        name="login link",
        created_by=caller.name,
        user=user,
        ttl=timedelta(minutes=platform.settings.login_link_minutes),
    )
    await _audit(request, platform, caller.name, "token.issue", f"user/{user}", details={"kind": "login"})
    return _link(request, platform, secret)


@router.post("/api/users/{user}/login-link", status_code=201)
async def new_login_link(user: str, request: Request, platform: PlatformDep, caller: PlatformAdmin) -> dict[str, Any]:
    """A fresh one-time login link for a user (for a first sign-in, or to recover access)."""
    if await platform.accounts.get_user(user) is None:
        raise NotFound(f"no user {user!r}")
    return {"user": user, "loginLink": await _login_link(request, platform, caller, user)}


@router.get("/api/tokens")
async def list_tokens(platform: PlatformDep, caller: Person) -> dict[str, Any]:
    """The caller's own API tokens (never their secrets)."""
    return {"items": [t.wire() for t in await platform.accounts.list_tokens(user=caller.name, kind="api")]}


@router.post("/api/tokens", status_code=201)
async def create_token(body: TokenIn, request: Request, platform: PlatformDep, caller: Person) -> dict[str, Any]:
    """A new API token for the caller; its secret is in this answer only."""
    record, secret = await platform.accounts.issue(
        "api",
        name=body.name,
        created_by=caller.name,
        user=caller.name,
        ttl=timedelta(days=body.expires_in_days),
    )
    await _audit(request, platform, caller.name, "token.issue", f"token/{record.id}", details={"kind": "api"})
    return {**record.wire(), "token": secret}


@router.delete("/api/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, request: Request, platform: PlatformDep, caller: Person) -> Response:
    """Revoke one of the caller's tokens (platform admins: anyone's)."""
    try:
        token = await platform.accounts.get_token(token_id)
    except NotFound:
        token = None
    if token is None or token.kind not in ("api", "session") or (token.user != caller.name and not caller.admin):
        raise NotFound(f"no token {token_id!r}")
    await platform.accounts.revoke(token_id)
    await _audit(request, platform, caller.name, "token.revoke", f"token/{token_id}")
    return Response(status_code=204)
