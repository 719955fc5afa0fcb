"""A person's forge accounts: their personal tokens and their GitHub App installation, write-only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field

from vteam.api.audit import record
from vteam.api.responses import ForgeAccountList, ForgeToken, InstallationLinked, shaped
from vteam.auth import Identity
from vteam.edge.deps import Person, PlatformDep, authorize
from vteam.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from vteam.forges import Credential, Link, token_name, user_scope
from vteam.resources import CamelModel

router = APIRouter(prefix="/api/user/forges", tags=["forge accounts"])

ForgeName = Literal["github", "gitlab"]
RETURNING = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Returning to vTeam</title>'
    '<meta name="vteam-renavigate" content="once"><script src="/static/app.js" defer></script></head>'
    "<body><p>Returning to vTeam…</p></body></html>"
)
"""What a browser back from GitHub gets when it left its SameSite=Strict cookie behind on the cross-site
redirect: a page that loads the same URL again, same-origin, so that the cookie comes along."""


class TokenIn(CamelModel):
    token: str = Field(min_length=8, max_length=1000, repr=False)


@router.get("", **shaped(ForgeAccountList))
async def list_accounts(platform: PlatformDep, caller: Person) -> dict[str, Any]:
    """What the caller has linked, never the tokens themselves."""
    stored = {s.name: s.updated for s in await platform.vault.list(user_scope(caller.name), "token:")}
    link = await platform.forges.link(caller.name)
    return {
        "items": [
            {
                "forge": "github",
                "url": platform.forges.github.web_url,
                "token": {"updated": stored[token_name("github")]} if token_name("github") in stored else None,
                "appConfigured": platform.forges.app is not None,
                "installation": {"id": link.installation, "login": link.login} if link else None,
            },
            {
                "forge": "gitlab",
                "url": platform.forges.gitlab.url,
                "token": {"updated": stored[token_name("gitlab")]} if token_name("gitlab") in stored else None,
            },
        ]
    }


@router.put("/{forge}/token", **shaped(ForgeToken))
async def put_token(
    forge: ForgeName, body: TokenIn, request: Request, platform: PlatformDep, caller: Person
) -> dict[str, Any]:
    """Store the caller's personal access token after checking it with the forge; the token never comes back."""
    client = platform.forges.github if forge == "github" else platform.forges.gitlab
    login = await client.login(Credential(body.token, "pat"))
    info = await platform.vault.put(user_scope(caller.name), token_name(forge), body.token)
    await record(request, platform, caller, "forge_token.write", f"forge_token/{forge}", details={"login": login})
    return {"forge": forge, "login": login, "updated": info.updated}


@router.delete("/{forge}/token", status_code=204)
async def delete_token(forge: ForgeName, request: Request, platform: PlatformDep, caller: Person) -> Response:
    await platform.vault.delete(user_scope(caller.name), token_name(forge))
    await record(request, platform, caller, "forge_token.delete", f"forge_token/{forge}")
    return Response(status_code=204)


@router.get("/github/install", status_code=303)
async def install(platform: PlatformDep, caller: Person) -> RedirectResponse:
    """Send the caller to GitHub to install the App (or pick an installation); GitHub sends them back."""
    app = platform.forges.app
    if app is None:
        raise InvalidInput("no GitHub App is configured (VTEAM_GITHUB_APP_ID and a private key)")
    return RedirectResponse(app.install_url(app.state_for(caller.name)), status_code=303)


@router.get(
    "/github/callback",
    **shaped(InstallationLinked),
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def callback(
    request: Request,
    platform: PlatformDep,
    caller: Identity = Depends(authorize(public=True)),
    installation_id: int = Query(..., ge=1, le=2**63 - 1),
    state: str = Query(..., min_length=1, max_length=1000),
    code: str = Query(..., min_length=1, max_length=1000),
    setup_action: str | None = Query(None),
) -> dict[str, Any] | HTMLResponse:
    """GitHub's redirect after installation: the state must be ours and the installation the caller's."""
    if caller.is_anonymous and request.headers.get("sec-fetch-site") == "cross-site":
        return HTMLResponse(RETURNING)
    if caller.is_anonymous:
        raise Unauthorized("sign in: send 'Authorization: Bearer <token>' (see `vteam login`)")
    if caller.kind != "user":
        raise Forbidden("only people have personal tokens and forge accounts; access keys belong to a project")
    app = platform.forges.app
    if app is None:
        raise InvalidInput("no GitHub App is configured (VTEAM_GITHUB_APP_ID and a private key)")
    app.check_state(state, caller.name)
    login = await app.verify_installation(code, installation_id)
    await platform.forges.save_link(caller.name, Link(installation_id, login))
    details = {"installation": installation_id, "login": login}
    await record(
        request, platform, caller, "forge_link.create", f"forge_link/github/{installation_id}", details=details
    )
    return {"installation": {"id": installation_id, "login": login}, "setupAction": setup_action}


@router.delete("/github/installation", status_code=204)
async def unlink(request: Request, platform: PlatformDep, caller: Person) -> Response:
    link = await platform.forges.link(caller.name)
    if link is None:
        raise NotFound("no GitHub App installation is linked")
    await platform.vault.delete(user_scope(caller.name), "github-installation")
    await record(request, platform, caller, "forge_link.delete", f"forge_link/github/{link.installation}")
    return Response(status_code=204)
