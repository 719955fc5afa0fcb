"""A project's secrets (such as `GIT_TOKEN`): written and deleted over the API, never read back.

In cluster mode every secret but `GIT_TOKEN` (which the backend keeps for pushes) is also mirrored into the
project's runner Secret, which runner Jobs get as environment variables.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ConfigDict, Field, field_validator

from vteam.api.access import same_project
from vteam.api.audit import record
from vteam.api.deps import PlatformDep, authorize
from vteam.auth import Identity, Role, Room
from vteam.errors import NotFound
from vteam.forges import PROJECT_TOKEN, project_scope
from vteam.resources import CamelModel, Project

router = APIRouter(
    prefix="/api/projects/{project}/secrets", tags=["secrets"], dependencies=[Depends(authorize(Role.ADMIN))]
)

NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
SecretName = Path(..., pattern=NAME.pattern, description="Upper-case letters, digits and '_', e.g. GIT_TOKEN")


VALUE_MAX_BYTES = 128_000
"""One value in UTF-8: Linux caps one environment string (`NAME=value`) at 128 KiB."""


class SecretIn(CamelModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    value: str = Field(min_length=1, max_length=64_000, repr=False)

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        """A value reaches the agent's environment: no NUL, and no longer than one environment string may be.
        The messages never quote the value."""
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
        if size > VALUE_MAX_BYTES:
            raise ValueError(f"is {size:,} bytes in UTF-8; a secret may hold at most {VALUE_MAX_BYTES:,}")
        return value


@router.get("")
async def list_secrets(project: str, platform: PlatformDep) -> dict[str, Any]:
    await platform.store.get(Project, project)
    items = await platform.vault.list(project_scope(project))
    return {"items": [{"name": s.name, "updated": s.updated} for s in items]}


def _caller(request: Request) -> Identity:
    """Who the router's authorization let in (it runs once, for the whole router)."""
    identity: Identity = request.state.identity
    return identity


@router.put("/{name}")
async def put_secret(
    project: str, body: SecretIn, request: Request, platform: PlatformDep, name: str = SecretName
) -> dict[str, Any]:
    """Write a secret; the audit record names it, never its value. A secret written while its project was
    deleted goes with it (see `access.same_project`)."""
    uid = (await platform.store.get(Project, project)).metadata.uid
    room = Room(platform.settings.project_secrets_max_count, platform.settings.project_secrets_max_bytes)
    info = await platform.vault.put(project_scope(project), name, body.value, room=room)
    if not await same_project(platform, project, uid):
        with contextlib.suppress(NotFound):
            await platform.vault.delete(project_scope(project), name)
        raise NotFound(f"project {project!r} not found")
    if platform.cluster is not None and name != PROJECT_TOKEN:
        await platform.cluster.sync_runner_secret(platform.store, project, name, body.value)
    await record(request, platform, _caller(request), "secret.write", f"secret/{name}", project=project)
    return {"name": info.name, "updated": info.updated}


@router.delete("/{name}", status_code=204)
async def delete_secret(project: str, request: Request, platform: PlatformDep, name: str = SecretName) -> Response:
    await platform.store.get(Project, project)
    await platform.vault.delete(project_scope(project), name)
    if platform.cluster is not None and name != PROJECT_TOKEN:
        await platform.cluster.sync_runner_secret(platform.store, project, name, None)
    await record(request, platform, _caller(request), "secret.delete", f"secret/{name}", project=project)
    return Response(status_code=204)
