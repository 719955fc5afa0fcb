"""Who may do what in a project: the caller's role, role bindings, and access keys for automation. The rules
live in `vteam.services.access`; these routes parse, call `Access`, and shape the answer."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response

from vteam.api.responses import AccessKeyList, CallerAccess, NewAccessKey, RoleBinding, RoleBindingList, shaped
from vteam.edge.deps import Caller, Editor, EditorIssuer, PlatformDep, ProjectAdmin, request_id
from vteam.services.access import BindingIn, KeyIn

router = APIRouter(prefix="/api/projects/{project}", tags=["access"])

__all__ = ["BindingIn", "KeyIn", "router"]


@router.get("/access", **shaped(CallerAccess))
async def access(project: str, platform: PlatformDep, caller: Caller) -> dict[str, Any]:
    """The caller's role in the project; a platform admin's too, for a project that exists."""
    mine = await platform.access.role(caller=caller, project=project)
    return {"project": mine.project, "user": mine.user, "role": mine.role.value if mine.role else None}


@router.get("/permissions", **shaped(RoleBindingList))
async def list_permissions(project: str, platform: PlatformDep, caller: Caller) -> dict[str, Any]:
    return {"items": [b.wire() for b in await platform.access.bindings(caller=caller, project=project)]}


@router.post("/permissions", status_code=201, **shaped(RoleBinding))
async def bind(
    project: str, body: BindingIn, request: Request, platform: PlatformDep, caller: ProjectAdmin
) -> dict[str, Any]:
    """Give a user or group a role in the project (replacing the one they had)."""
    binding = await platform.access.bind(caller=caller, project=project, binding=body, request_id=request_id(request))
    return binding.wire()


@router.delete("/permissions/{subject_type}/{subject_name}", status_code=204)
async def unbind(
    project: str,
    subject_type: Literal["user", "group"],
    subject_name: str,
    request: Request,
    platform: PlatformDep,
    caller: ProjectAdmin,
) -> Response:
    await platform.access.unbind(
        caller=caller,
        project=project,
        subject_type=subject_type,
        subject_name=subject_name,
        request_id=request_id(request),
    )
    return Response(status_code=204)


@router.get("/keys", **shaped(AccessKeyList))
async def list_keys(project: str, platform: PlatformDep, caller: Editor) -> dict[str, Any]:
    """The project's access keys: name, role, created, expires, last used (never their secrets)."""
    return {"items": [k.wire() for k in await platform.access.keys(caller=caller, project=project)]}


@router.post("/keys", status_code=201, **shaped(NewAccessKey))
async def create_key(
    project: str, body: KeyIn, request: Request, platform: PlatformDep, caller: EditorIssuer
) -> dict[str, Any]:
    """A new access key; its secret is in this answer only. Through the API the browser's cookie alone may not
    make one (`EditorIssuer`); the settings page calls `Access.create_key` behind its own CSRF-checked form."""
    issued = await platform.access.create_key(caller=caller, project=project, key=body, request_id=request_id(request))
    return {**issued.record.wire(), "token": issued.token}


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, project: str, request: Request, platform: PlatformDep, caller: Editor) -> Response:
    """Project admins revoke any of the project's keys; editors the ones they made."""
    await platform.access.revoke_key(caller=caller, project=project, key_id=key_id, request_id=request_id(request))
    return Response(status_code=204)
