"""A project's secrets (such as `GIT_TOKEN`): written and deleted over the API, never read back.

A secret may be scoped to frameworks: only their agents get it (`registry.reaches`, the one rule); a secret
with no scope reaches every framework's agent. In cluster mode every secret but `GIT_TOKEN` (which the backend
keeps for pushes) is also mirrored, with its scope, into the project's runner Secret, from which the operator
gives a runner Job the keys its framework may have.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ConfigDict, Field, field_validator

from vteam.agents import registry
from vteam.api.access import same_project
from vteam.api.audit import record
from vteam.api.deps import PlatformDep, authorize
from vteam.api.responses import Secret, SecretList, shaped
from vteam.auth import Identity, Role, Room, SecretInfo
from vteam.errors import InvalidInput, NotFound
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
    frameworks: list[str] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="The frameworks whose agents get this secret; left out, those of every framework do. "
        "A write replaces the scope with what it says.",
        examples=[["codex", "claude-code"]],
    )

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

    @field_validator("frameworks")
    @classmethod
    def _frameworks(cls, value: list[str] | None) -> list[str] | None:
        """Only frameworks the registry knows, each once, sorted (so a scope reads the same however written)."""
        if value is None:
            return None
        if unknown := registry.unknown_frameworks(value):
            raise ValueError(
                f"unknown framework {unknown[0]!r}; valid frameworks: {', '.join(sorted(registry.ADAPTERS))}"
            )
        return sorted(set(value))


def _shown(info: SecretInfo) -> dict[str, Any]:
    """What the API says of a secret: its name, when it changed and its scope (None: every framework)."""
    return {
        "name": info.name,
        "updated": info.updated,
        "frameworks": None if info.frameworks is None else list(info.frameworks),
    }


@router.get("", **shaped(SecretList))
async def list_secrets(project: str, platform: PlatformDep) -> dict[str, Any]:
    await platform.store.get(Project, project)
    items = await platform.vault.list(project_scope(project))
    return {"items": [_shown(s) for s in items]}


def _caller(request: Request) -> Identity:
    """Who the router's authorization let in (it runs once, for the whole router)."""
    identity: Identity = request.state.identity
    return identity


@router.put("/{name}", **shaped(Secret))
async def put_secret(
    project: str, body: SecretIn, request: Request, platform: PlatformDep, name: str = SecretName
) -> dict[str, Any]:
    """Write a secret and its scope; the audit record names it and its scope, never its value. A secret written
    while its project was deleted goes with it (see `access.same_project`)."""
    if name == PROJECT_TOKEN and body.frameworks is not None:
        raise InvalidInput(
            f"{PROJECT_TOKEN} never reaches an agent (the platform pushes with it), so it takes no frameworks",
            errors=[{"loc": ["frameworks"], "msg": f"{PROJECT_TOKEN} takes no frameworks"}],
        )
    uid = (await platform.store.get(Project, project)).metadata.uid
    room = Room(platform.settings.project_secrets_max_count, platform.settings.project_secrets_max_bytes)
    info = await platform.vault.put(project_scope(project), name, body.value, room=room, frameworks=body.frameworks)
    if not await same_project(platform, project, uid):
        with contextlib.suppress(NotFound):
            await platform.vault.delete(project_scope(project), name)
        raise NotFound(f"project {project!r} not found")
    if platform.cluster is not None and name != PROJECT_TOKEN:
        await platform.cluster.sync_runner_secret(platform.store, project, name, body.value, body.frameworks)
    details = {"frameworks": body.frameworks} if body.frameworks is not None else None
    await record(
        request, platform, _caller(request), "secret.write", f"secret/{name}", project=project, details=details
    )
    return _shown(info)


@router.delete("/{name}", status_code=204)
async def delete_secret(project: str, request: Request, platform: PlatformDep, name: str = SecretName) -> Response:
    await platform.store.get(Project, project)
    await platform.vault.delete(project_scope(project), name)
    if platform.cluster is not None and name != PROJECT_TOKEN:
        await platform.cluster.sync_runner_secret(platform.store, project, name, None)
    await record(request, platform, _caller(request), "secret.delete", f"secret/{name}", project=project)
    return Response(status_code=204)
