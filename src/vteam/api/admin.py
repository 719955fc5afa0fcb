"""Platform administration: rotating the key that encrypts every secret, and each project's repository policy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from vteam.api import audit
from vteam.api.deps import PlatformAdmin, PlatformDep
from vteam.api.platform import rotate_vault_key
from vteam.controller.job import forbidden_roots
from vteam.errors import Conflict, InvalidInput
from vteam.policy import repos
from vteam.resources import CamelModel, Project

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.post("/vault/rotate")
async def rotate(request: Request, platform: PlatformDep, caller: PlatformAdmin) -> dict[str, Any]:
    """Encrypt every stored secret under a new key; the old key is forgotten once nothing needs it."""
    count = await rotate_vault_key(platform)
    await audit.record(request, platform, caller, "vault.rotate", "vault", details={"secrets": count})
    return {"reencrypted": count}


class RepositoryPolicyIn(CamelModel):
    local_roots: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Folders whose repositories the project's sessions may use by path or file:// URL.",
    )


def _policy_out(project: Project) -> dict[str, Any]:
    return {"project": project.name, "localRoots": list(repos.local_roots(project.metadata.annotations))}


@router.get("/projects/{project}/repository-policy")
async def get_repository_policy(project: str, platform: PlatformDep, caller: PlatformAdmin) -> dict[str, Any]:
    """The local folders a project's sessions may use as repositories (platform admins only)."""
    return _policy_out(await platform.store.get(Project, project))


@router.put("/projects/{project}/repository-policy")
async def put_repository_policy(
    project: str, body: RepositoryPolicyIn, request: Request, platform: PlatformDep, caller: PlatformAdmin
) -> dict[str, Any]:
    """Set the local folders a project's sessions may use; kept as an annotation of the Project, which
    project admins cannot change (a project PATCH touches its spec only)."""
    forbidden = forbidden_roots(platform.settings)
    roots: list[str] = []
    for index, root in enumerate(body.local_roots):
        try:
            checked = await asyncio.to_thread(repos.check_root, root, forbidden)
        except ValueError as exc:
            raise InvalidInput(
                f"localRoots[{index}]: {exc}", errors=[{"loc": ["localRoots", index], "msg": str(exc)}]
            ) from None
        if checked not in roots:
            roots.append(checked)
    for attempt in range(3):
        current = await platform.store.get(Project, project)
        annotations = dict(current.metadata.annotations)
        if roots:
            annotations[repos.LOCAL_ROOTS_ANNOTATION] = json.dumps(roots)
        else:
            annotations.pop(repos.LOCAL_ROOTS_ANNOTATION, None)
        metadata = current.metadata.model_copy(update={"annotations": annotations})
        try:
            updated = await platform.store.replace(current.model_copy(update={"metadata": metadata}))
        except Conflict:
            if attempt == 2:
                raise
            continue
        await audit.record(
            request,
            platform,
            caller,
            "project.repository-policy",
            f"project/{project}",
            project=project,
            details={"localRoots": roots},
        )
        return _policy_out(updated)
    raise AssertionError("unreachable")
