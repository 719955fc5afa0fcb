"""Projects: the tenants that hold sessions. Each route parses, calls `Projects`, and shapes the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from vteam.api.responses import ProjectList, shaped
from vteam.api.schemas import ProjectCreate
from vteam.auth import Identity
from vteam.edge.deps import PlatformDep, ProjectAdmin, SignedIn, authorize, request_id
from vteam.resources import Project
from vteam.services.projects import ProjectPatch

router = APIRouter(prefix="/api/projects", tags=["projects"])

__all__ = ["ProjectPatch", "router"]


@router.get("", **shaped(ProjectList))
async def list_projects(
    platform: PlatformDep,
    caller: SignedIn,
    label_selector: str | None = Query(None, alias="labelSelector"),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> dict[str, Any]:
    """The projects the caller may see: all of them for platform admins."""
    page = await platform.projects.list(
        caller=caller, label_selector=label_selector, limit=limit, continue_token=continue_token
    )
    return {
        "apiVersion": "v1",
        "kind": "ProjectList",
        "metadata": {"resourceVersion": page.resource_version, "continue": page.continue_token},
        "items": [p.wire() for p in page.items],
    }


@router.post("", status_code=201, **shaped(Project))
async def create_project(
    body: ProjectCreate, request: Request, platform: PlatformDep, caller: SignedIn
) -> dict[str, Any]:
    """Any signed-in person may create a project, and becomes its admin."""
    created = await platform.projects.create(caller=caller, project=body.resource(), request_id=request_id(request))
    return created.wire()


@router.get("/{project}", **shaped(Project))
async def get_project(project: str, platform: PlatformDep, caller: Identity = Depends(authorize())) -> dict[str, Any]:
    return (await platform.projects.get(caller=caller, project=project)).wire()


@router.patch("/{project}", **shaped(Project))
async def patch_project(
    project: str, body: ProjectPatch, request: Request, platform: PlatformDep, caller: ProjectAdmin
) -> dict[str, Any]:
    """Change a project's display name, description or session defaults (project admins)."""
    updated = await platform.projects.update(caller=caller, project=project, patch=body, request_id=request_id(request))
    return updated.wire()


@router.delete("/{project}", status_code=204)
async def delete_project(project: str, request: Request, platform: PlatformDep, caller: ProjectAdmin) -> Response:
    """Deleting a project deletes its sessions (the controller stops their runners), bindings, keys and secrets."""
    await platform.projects.delete(caller=caller, project=project, request_id=request_id(request))
    return Response(status_code=204)
