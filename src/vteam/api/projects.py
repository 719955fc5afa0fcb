"""Projects: the tenants that hold sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from vteam.api import audit
from vteam.api.deps import PlatformDep, ProjectAdmin, SignedIn, authorize
from vteam.api.schemas import ProjectCreate
from vteam.auth import Role
from vteam.errors import Forbidden
from vteam.forges import project_scope
from vteam.resources import Project

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.get("")
async def list_projects(
    platform: PlatformDep,
    caller: SignedIn,
    label_selector: str | None = Query(None, alias="labelSelector"),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> dict[str, Any]:
    """The projects the caller may see: all of them for platform admins."""
    visible: set[str] | None = None
    if caller.kind == "key":
        visible = {caller.project or ""}
    elif not caller.admin:
        visible = await platform.accounts.projects_of(caller.name, caller.groups)
    items: list[Project] = []
    while True:
        want = None if limit is None else limit - len(items)
        page = await platform.store.list(
            Project, label_selector=label_selector, limit=want, continue_token=continue_token
        )
        items += [p for p in page.items if visible is None or p.name in visible]
        continue_token = page.continue_token
        if continue_token is None or (limit is not None and len(items) >= limit):
            break
    return {
        "apiVersion": "v1",
        "kind": "ProjectList",
        "metadata": {"resourceVersion": page.resource_version, "continue": continue_token},
        "items": [p.wire() for p in items],
    }


@router.post("", status_code=201)
async def create_project(
    body: ProjectCreate, request: Request, platform: PlatformDep, caller: SignedIn
) -> dict[str, Any]:
    """Any signed-in person may create a project, and becomes its admin."""
    if caller.kind != "user":
        raise Forbidden("access keys belong to one project and cannot create projects")
    created = await platform.store.create(body.resource())
    await platform.accounts.bind(created.name, "user", caller.name, Role.ADMIN, created_by=caller.name)
    await audit.record(request, platform, caller, "project.create", f"project/{created.name}", project=created.name)
    return created.wire()


@router.get("/{project}", dependencies=[Depends(authorize())])
async def get_project(project: str, platform: PlatformDep) -> dict[str, Any]:
    return (await platform.store.get(Project, project)).wire()


@router.delete("/{project}", status_code=204)
async def delete_project(project: str, request: Request, platform: PlatformDep, caller: ProjectAdmin) -> Response:
    """Deleting a project deletes its sessions (the controller stops their runners), bindings, keys and secrets."""
    await platform.store.get(Project, project)
    await platform.store.delete(Project, project)
    await platform.accounts.forget_project(project)
    await platform.vault.delete_scope(project_scope(project))
    await audit.record(request, platform, caller, "project.delete", f"project/{project}", project=project)
    return Response(status_code=204)
