"""Projects: the tenants that hold sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from vteam.api.deps import PlatformDep, authorize
from vteam.api.schemas import ProjectCreate
from vteam.resources import Project

router = APIRouter(prefix="/api/projects", tags=["projects"], dependencies=[Depends(authorize())])


@router.get("")
async def list_projects(
    platform: PlatformDep,
    label_selector: str | None = Query(None, alias="labelSelector"),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> dict[str, Any]:
    page = await platform.store.list(Project, label_selector=label_selector, limit=limit, continue_token=continue_token)
    return {
        "apiVersion": "v1",
        "kind": "ProjectList",
        "metadata": {"resourceVersion": page.resource_version, "continue": page.continue_token},
        "items": [p.wire() for p in page.items],
    }


@router.post("", status_code=201)
async def create_project(body: ProjectCreate, platform: PlatformDep) -> dict[str, Any]:
    return (await platform.store.create(body.resource())).wire()


@router.get("/{project}")
async def get_project(project: str, platform: PlatformDep) -> dict[str, Any]:
    return (await platform.store.get(Project, project)).wire()


@router.delete("/{project}", status_code=204)
async def delete_project(project: str, platform: PlatformDep) -> Response:
    """Deleting a project deletes its sessions; the controller stops their runners."""
    await platform.store.get(Project, project)
    await platform.store.delete(Project, project)
    return Response(status_code=204)
