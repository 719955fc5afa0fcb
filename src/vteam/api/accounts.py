"""Signing in and out, who the caller is, users, and personal API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from vteam.api.responses import (
    ApiTokenList,
    CallerIdentity,
    LoginLink,
    LoginToken,
    NewApiToken,
    NewUser,
    UserList,
    shaped,
)
from vteam.auth import SESSION_COOKIE, Identity
from vteam.auth.embedded import ADMIN_TOKEN_ID
from vteam.edge.deps import Person, PersonIssuer, PlatformAdmin, PlatformAdminIssuer, PlatformDep, SignedIn, authorize
from vteam.errors import Conflict, InvalidInput, NotFound, Unauthorized
from vteam.resources import CamelModel
from vteam.resources.validation import check_name

router = APIRouter(tags=["accounts"])

CLI_TOKEN_DAYS = 90


class LoginIn(CamelModel):
    token: str = Field(min_length=1, max_length=500, repr=False, description="A one-time login link's token.")


class UserIn(CamelModel):
    name: str = Field(min_length=1, max_length=63)
    display_name: str = Field("", max_length=200)
    admin: bool = Field(False, strict=True)


class TokenIn(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int = Field(90, ge=1, le=365)


def _link(request: Request, platform: Any, secret: str) -> str:
    base = platform.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/login?token={secret}"


async def _audit(request: Request, platform: Any, actor: str, action: str, target: str, **extra: Any) -> None:
    await platform.audit.record(
        actor=actor, action=action, target=target, request_id=getattr(request.state, "request_id", None), **extra
    )


@router.post("/api/login", dependencies=[Depends(authorize(public=True))], **shaped(LoginToken))
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
    """Revoke the credential the request came with, whatever its kind: a browser session, an API token, or an
    access key (which then stops working for everyone who holds it). Credentials vTeam did not issue cannot be
    revoked here, and the answer says where instead."""
    if caller.token_id == ADMIN_TOKEN_ID:
        raise Conflict("the admin token comes from VTEAM_ADMIN_TOKEN: unset it and restart vteam up to revoke it")
    if caller.kind == "key" and caller.token_id:
        if not await platform.accounts.revoke_live(caller.token_id):
            return Response(status_code=204)
        await platform.audit.record(
            actor=caller.name,
            project=caller.project,
            action="key.revoke",
            target=f"key/{caller.token_id}",
            request_id=getattr(request.state, "request_id", None),
            details={"via": "logout"},
        )
    elif caller.kind == "user" and caller.token_id:
        if await platform.accounts.revoke_live(caller.token_id):
            await _audit(request, platform, caller.name, "token.revoke", f"token/{caller.token_id}")
    elif caller.kind == "user":
        raise Conflict(
            "vTeam did not issue this credential (a sign-in at the proxy in front of it, or a Kubernetes token): "
            "sign out or revoke it where it came from, e.g. the proxy's /oauth/sign_out"
        )
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/me", **shaped(CallerIdentity))
async def me(caller: SignedIn) -> dict[str, Any]:
    out: dict[str, Any] = {"name": caller.name, "kind": caller.kind, "admin": caller.admin, "groups": caller.groups}
    if caller.kind == "key":
        out |= {"project": caller.project, "role": caller.role.value if caller.role else None}
    return out


@router.get("/api/users", **shaped(UserList))
async def list_users(platform: PlatformDep, _caller: PlatformAdmin) -> dict[str, Any]:
    return {"items": [u.wire() for u in await platform.accounts.list_users()]}


@router.post("/api/users", status_code=201, **shaped(NewUser))
async def create_user(
    body: UserIn, request: Request, platform: PlatformDep, caller: PlatformAdminIssuer
) -> dict[str, Any]:
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


@router.post("/api/users/{user}/login-link", status_code=201, **shaped(LoginLink))
async def new_login_link(
    user: str, request: Request, platform: PlatformDep, caller: PlatformAdminIssuer
) -> dict[str, Any]:
    """A fresh one-time login link for a user (for a first sign-in, or to recover access)."""
    if await platform.accounts.get_user(user) is None:
        raise NotFound(f"no user {user!r}")
    return {"user": user, "loginLink": await _login_link(request, platform, caller, user)}


@router.get("/api/tokens", **shaped(ApiTokenList))
async def list_tokens(platform: PlatformDep, caller: Person) -> dict[str, Any]:
    """The caller's own API tokens (never their secrets)."""
    return {"items": [t.wire() for t in await platform.accounts.list_tokens(user=caller.name, kind="api")]}


@router.post("/api/tokens", status_code=201, **shaped(NewApiToken))
async def create_token(body: TokenIn, request: Request, platform: PlatformDep, caller: PersonIssuer) -> dict[str, Any]:
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
    if await platform.accounts.revoke_live(token_id):
        await _audit(request, platform, caller.name, "token.revoke", f"token/{token_id}")
    return Response(status_code=204)
