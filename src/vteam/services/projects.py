"""Projects, whichever door asks: list, create, change and delete, each authorized and audited here."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from vteam.agents import registry
from vteam.auth import Accounts, AuditLog, Identity, Role, Vault
from vteam.errors import Conflict, Forbidden, InvalidInput, NotFound
from vteam.forges import project_scope
from vteam.resources import CamelModel, ObjectMeta, Project, ProjectSpec
from vteam.resources.project import ProjectDefaults
from vteam.services.tenancy import Tenancy
from vteam.store import ResourceStore

RoleOf = Callable[[Identity, str], Awaitable[Role | None]]

PATCH_ATTEMPTS = 100
"""How often a precondition-free patch is re-applied on the fresh project when other writes keep winning."""


class ProjectCreate(CamelModel):
    name: str
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)

    def resource(self) -> Project:
        return Project(
            metadata=ObjectMeta(name=self.name),
            spec=ProjectSpec(display_name=self.display_name, description=self.description),
        )


class ProjectPatch(CamelModel):
    """A merge patch: fields left out keep their value, `null` clears one; `defaults` merges field by field."""

    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    defaults: ProjectDefaults | None = None
    resource_version: str | None = Field(
        None, max_length=40, description="Apply only to this version of the project: 409 if it has changed since."
    )


@dataclass
class ProjectPage:
    items: list[Project]
    resource_version: str | None
    continue_token: str | None


def hidden(project: str) -> NotFound:
    """What a caller without access to a project hears: the same as for a project that does not exist."""
    return NotFound(f"project {project!r} not found")


async def authorized(role_of: RoleOf, caller: Identity, project: str, role: Role) -> Role:
    """The caller's role in `project` if it allows `role`: 404 with none at all (existence does not leak), 403
    with too low a one."""
    have = await role_of(caller, project)
    if have is None:
        raise hidden(project)
    if not have.allows(role):
        raise Forbidden(f"your role in project {project!r} is {have.value}; this needs {role.value}")
    return have


async def same_project(store: ResourceStore, project: str, uid: str | None) -> bool:
    """Whether `project` is still the project whose uid was read before a write. A write for a project
    that was deleted meanwhile (and perhaps made again under the same name) is undone by its caller:
    deletion removes what it sees and a new project wipes what its name left, so re-reading after the
    write closes the window between the first check and the write."""
    try:
        current = (await store.get(Project, project)).metadata.uid
    except NotFound:
        return False
    return uid is not None and current == uid


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


class Projects:
    """The tenants that hold sessions."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        vault: Vault,
        accounts: Accounts,
        audit: AuditLog,
        role_of: RoleOf,
        tenancy: Tenancy,
    ) -> None:
        self._store = store
        self._vault = vault
        self._accounts = accounts
        self._audit = audit
        self._role_of = role_of
        self._tenancy = tenancy

    async def list(
        self,
        *,
        caller: Identity,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ProjectPage:
        """The projects the caller may see: all of them for platform admins."""
        visible: set[str] | None = None
        by_review = self._tenancy.reviews_access(caller)
        if caller.kind == "key":
            visible = {caller.project or ""}
        elif not caller.admin and not by_review:
            visible = await self._accounts.projects_of(caller.name, caller.groups)
        items: list[Project] = []
        while True:
            want = None if limit is None else limit - len(items)
            page = await self._store.list(
                Project, label_selector=label_selector, limit=want, continue_token=continue_token
            )
            if by_review:
                roles = await asyncio.gather(*(self._role_of(caller, p.name) for p in page.items))
                visible = {p.name for p, role in zip(page.items, roles, strict=True) if role is not None}
            items += [p for p in page.items if visible is None or p.name in visible]
            continue_token = page.continue_token
            if continue_token is None or (limit is not None and len(items) >= limit):
                break
        return ProjectPage(items, page.resource_version, continue_token)

    async def get(self, *, caller: Identity, project: str) -> Project:
        await authorized(self._role_of, caller, project, Role.VIEW)
        return await self._store.get(Project, project)

    async def create(self, *, caller: Identity, project: Project, request_id: str | None = None) -> Project:
        """Any signed-in person may create a project, and becomes its admin."""
        if caller.kind != "user":
            raise Forbidden("access keys belong to one project and cannot create projects")
        self._tenancy.check_project_name(project.name)
        created = await self._store.create(project)
        await self._vault.delete_scope(project_scope(created.name))
        await self._accounts.claim_project(created.name, caller.name)
        await self._tenancy.prepare_project(created.name, caller)
        await self._record(caller, "project.create", created.name, request_id=request_id)
        return created

    async def update(
        self, *, caller: Identity, project: str, patch: ProjectPatch, request_id: str | None = None
    ) -> Project:
        """Apply `patch` (project admins). A merge patch applies to any version, so a write that races another is
        re-applied on the fresh project until it lands; only a patch that names the `resourceVersion` it was
        made from is refused as stale."""
        await authorized(self._role_of, caller, project, Role.ADMIN)
        for attempt in range(PATCH_ATTEMPTS):
            current = await self._store.get(Project, project)
            if patch.resource_version is not None:
                current.metadata.resource_version = patch.resource_version
            changes: dict[str, Any] = {
                name: getattr(patch, name) for name in ("display_name", "description") if name in patch.model_fields_set
            }
            changes["defaults"] = merged_defaults(current.spec.defaults, patch)
            spec = current.spec.model_copy(update=changes)
            try:
                updated = await self._store.replace(current.model_copy(update={"spec": spec}))
            except Conflict:
                if patch.resource_version is not None or attempt == PATCH_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
                continue
            fields = sorted(patch.model_dump(by_alias=True, exclude_unset=True, exclude={"resource_version"}))
            await self._record(caller, "project.update", project, request_id=request_id, details={"fields": fields})
            return updated
        raise AssertionError("unreachable")

    async def delete(self, *, caller: Identity, project: str, request_id: str | None = None) -> None:
        """Delete a project with its sessions, bindings, keys and secrets (project admins). They go first, so a
        project made meanwhile under the same name never loses its own; anything written for the old one after
        that is undone by its writer's re-check (`same_project`) or wiped when the name is taken again."""
        await authorized(self._role_of, caller, project, Role.ADMIN)
        await self._store.get(Project, project)
        await self._accounts.forget_project(project)
        await self._vault.delete_scope(project_scope(project))
        await self._store.delete(Project, project)
        await self._record(caller, "project.delete", project, request_id=request_id)

    async def _record(
        self,
        caller: Identity,
        action: str,
        project: str,
        *,
        request_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._audit.record(
            actor=caller.name,
            project=project,
            action=action,
            target=f"project/{project}",
            request_id=request_id,
            details=details,
        )
