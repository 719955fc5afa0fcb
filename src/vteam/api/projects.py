"""Projects: the tenants that hold sessions."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from vteam.agents import registry
from vteam.api import audit
from vteam.api.deps import PlatformDep, ProjectAdmin, SignedIn, authorize, role_in
from vteam.api.platform import Platform
from vteam.api.responses import ProjectList, shaped
from vteam.api.schemas import ProjectCreate
from vteam.auth import Identity, Role
from vteam.errors import Conflict, Forbidden, InvalidInput
from vteam.forges import project_scope
from vteam.resources import CamelModel, Project
from vteam.resources.project import ProjectDefaults

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.get("", **shaped(ProjectList))
async def list_projects(
    platform: PlatformDep,
    caller: SignedIn,
    label_selector: str | None = Query(None, alias="labelSelector"),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> dict[str, Any]:
    """The projects the caller may see: all of them for platform admins."""
    visible: set[str] | None = None
    by_review = platform.cluster is not None and caller.access_token is not None and not caller.admin
    if caller.kind == "key":
        visible = {caller.project or ""}
    elif not caller.admin and not by_review:
        visible = await platform.accounts.projects_of(caller.name, caller.groups)
    items: list[Project] = []
    while True:
        want = None if limit is None else limit - len(items)
        page = await platform.store.list(
            Project, label_selector=label_selector, limit=want, continue_token=continue_token
        )
        if by_review:
            roles = await asyncio.gather(*(role_in(platform, caller, p.name) for p in page.items))
            visible = {p.name for p, role in zip(page.items, roles, strict=True) if role is not None}
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


@router.post("", status_code=201, **shaped(Project))
async def create_project(
    body: ProjectCreate, request: Request, platform: PlatformDep, caller: SignedIn
) -> dict[str, Any]:
    """Any signed-in person may create a project, and becomes its admin."""
    created = await new_project(platform, caller, body.resource())
    await audit.record(request, platform, caller, "project.create", f"project/{created.name}", project=created.name)
    return created.wire()


async def new_project(platform: Platform, caller: Identity, project: Project) -> Project:
    """Create a project with its creator as admin: the one way in, for the API and the web UI alike."""
    if caller.kind != "user":
        raise Forbidden("access keys belong to one project and cannot create projects")
    if platform.cluster is not None:
        platform.cluster.check_project_name(project.name, platform.settings.namespace)
    created = await platform.store.create(project)
    await platform.vault.delete_scope(project_scope(created.name))
    await platform.accounts.claim_project(created.name, caller.name)
    if platform.cluster is not None:
        await platform.cluster.prepare_project(created.name, platform.settings.runner_service_account)
        if caller.access_token:
            await platform.cluster.grant(created.name, "user", caller.name, Role.ADMIN)
    return created


@router.get("/{project}", dependencies=[Depends(authorize())], **shaped(Project))
async def get_project(project: str, platform: PlatformDep) -> dict[str, Any]:
    return (await platform.store.get(Project, project)).wire()


class ProjectPatch(CamelModel):
    """A merge patch: fields left out keep their value, `null` clears one; `defaults` merges field by field."""

    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    defaults: ProjectDefaults | None = None
    resource_version: str | None = Field(
        None, max_length=40, description="Apply only to this version of the project: 409 if it has changed since."
    )


def merged_defaults(current: ProjectDefaults | None, patch: ProjectPatch) -> ProjectDefaults | None:
    """The project's defaults after `patch`, checked against the agent registry so that a bad default is
    refused here instead of failing every later session of the project."""
    if "defaults" not in patch.model_fields_set:
        return current
    if patch.defaults is None:
        return None
    values = (current.model_dump() if current else {}) | patch.defaults.model_dump(exclude_unset=True)
    merged = ProjectDefaults.model_validate(values)
    if merged.model is not None and merged.framework is None:
        raise InvalidInput(
            "a default model needs a default framework (a model belongs to one framework)",
            errors=[{"loc": ["defaults", "model"], "msg": "needs defaults.framework"}],
        )
    if merged.framework is not None:
        try:
            registry.check(merged.framework, merged.model)
        except InvalidInput as exc:
            raise InvalidInput(
                exc.detail, errors=[{**e, "loc": ["defaults", *e.get("loc", [])]} for e in exc.errors]
            ) from None
    return None if merged.empty else merged


PATCH_ATTEMPTS = 100
"""How often a precondition-free patch is re-applied on the fresh project when other writes keep winning."""


async def update_project(
    request: Request, platform: Platform, caller: Identity, project: str, patch: ProjectPatch
) -> Project:
    """Apply `patch` and audit it; the API and the web UI's settings page both change projects through here.

    A merge patch applies to any version, so a write that races another is re-applied on the fresh project
    until it lands; only a patch that names the `resourceVersion` it was made from is refused as stale."""
    for attempt in range(PATCH_ATTEMPTS):
        current = await platform.store.get(Project, project)
        if patch.resource_version is not None:
            current.metadata.resource_version = patch.resource_version
        changes: dict[str, Any] = {
            name: getattr(patch, name) for name in ("display_name", "description") if name in patch.model_fields_set
        }
        changes["defaults"] = merged_defaults(current.spec.defaults, patch)
        spec = current.spec.model_copy(update=changes)
        try:
            updated = await platform.store.replace(current.model_copy(update={"spec": spec}))
        except Conflict:
            if patch.resource_version is not None or attempt == PATCH_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
            continue
        fields = sorted(patch.model_dump(by_alias=True, exclude_unset=True, exclude={"resource_version"}))
        await audit.record(
            request,
            platform,
            caller,
            "project.update",
            f"project/{project}",
            project=project,
            details={"fields": fields},
        )
        return updated
    raise AssertionError("unreachable")


@router.patch("/{project}", **shaped(Project))
async def patch_project(
    project: str, body: ProjectPatch, request: Request, platform: PlatformDep, caller: ProjectAdmin
) -> dict[str, Any]:
    """Change a project's display name, description or session defaults (project admins)."""
    return (await update_project(request, platform, caller, project, body)).wire()


@router.delete("/{project}", status_code=204)
async def delete_project(project: str, request: Request, platform: PlatformDep, caller: ProjectAdmin) -> Response:
    """Deleting a project deletes its sessions (the controller stops their runners), bindings, keys and secrets."""
    await remove_project(platform, project)
    await audit.record(request, platform, caller, "project.delete", f"project/{project}", project=project)
    return Response(status_code=204)


async def remove_project(platform: Platform, project: str) -> None:
    """Delete a project with its bindings, keys and secrets: the API and the web UI alike. They go first, so a
    project made meanwhile under the same name never loses its own; anything written for the old one after
    that is undone by its writer's re-check (`access.same_project`) or wiped when the name is taken again."""
    await platform.store.get(Project, project)
    await platform.accounts.forget_project(project)
    await platform.vault.delete_scope(project_scope(project))
    await platform.store.delete(Project, project)
