"""A project's secrets (such as `GIT_TOKEN`): written and deleted over the API, never read back. The rules
live in `vteam.services.secrets`; these routes parse, call `Secrets`, and shape the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response

from vteam.api.responses import Secret, SecretList, shaped
from vteam.auth import Identity, Role, SecretInfo
from vteam.edge.deps import PlatformDep, authorize, request_id
from vteam.services.secrets import NAME, SecretIn

router = APIRouter(
    prefix="/api/projects/{project}/secrets", tags=["secrets"], dependencies=[Depends(authorize(Role.ADMIN))]
)

__all__ = ["NAME", "SecretIn", "router"]

SecretName = Path(..., pattern=NAME.pattern, description="Upper-case letters, digits and '_', e.g. GIT_TOKEN")


def _shown(info: SecretInfo) -> dict[str, Any]:
    """What the API says of a secret: its name, when it changed and its scope (None: every framework)."""
    return {
        "name": info.name,
        "updated": info.updated,
        "frameworks": None if info.frameworks is None else list(info.frameworks),
    }


def _caller(request: Request) -> Identity:
    """Who the router's authorization let in (it runs once, for the whole router)."""
    identity: Identity = request.state.identity
    return identity


@router.get("", **shaped(SecretList))
async def list_secrets(project: str, request: Request, platform: PlatformDep) -> dict[str, Any]:
    items = await platform.secrets.list(caller=_caller(request), project=project)
    return {"items": [_shown(s) for s in items]}


@router.put("/{name}", **shaped(Secret))
async def put_secret(
    project: str, body: SecretIn, request: Request, platform: PlatformDep, name: str = SecretName
) -> dict[str, Any]:
    """Write a secret and its scope; the audit record names it and its scope, never its value."""
    info = await platform.secrets.put(
        caller=_caller(request), project=project, name=name, secret=body, request_id=request_id(request)
    )
    return _shown(info)


@router.delete("/{name}", status_code=204)
async def delete_secret(project: str, request: Request, platform: PlatformDep, name: str = SecretName) -> Response:
    await platform.secrets.delete(caller=_caller(request), project=project, name=name, request_id=request_id(request))
    return Response(status_code=204)
