"""A project's secrets (such as `GIT_TOKEN`): written and deleted, never read back.

A secret may be scoped to frameworks: only their agents get it (`registry.reaches`, the one rule); a secret
with no scope reaches every framework's agent. Where the mode keeps a copy for its runners (cluster mode's
runner Secret) is the `Tenancy`'s business.
"""

from __future__ import annotations

import contextlib
import re

from pydantic import ConfigDict, Field, field_validator

from vteam.agents import registry
from vteam.auth import AuditLog, Identity, Role, Room, SecretInfo, Vault
from vteam.errors import InvalidInput, NotFound
from vteam.forges import PROJECT_TOKEN, project_scope
from vteam.resources import CamelModel, Project
from vteam.services.projects import RoleOf, authorized, same_project
from vteam.services.tenancy import Tenancy
from vteam.settings import Settings
from vteam.store import ResourceStore

NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")

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


class Secrets:
    """Project admins' secrets: capped by the platform's room, mirrored by the `Tenancy`, audited by name only."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        vault: Vault,
        audit: AuditLog,
        settings: Settings,
        role_of: RoleOf,
        tenancy: Tenancy,
    ) -> None:
        self._store = store
        self._vault = vault
        self._audit = audit
        self._settings = settings
        self._role_of = role_of
        self._tenancy = tenancy

    async def list(self, *, caller: Identity, project: str) -> list[SecretInfo]:
        await authorized(self._role_of, caller, project, Role.ADMIN)
        await self._store.get(Project, project)
        return await self._vault.list(project_scope(project))

    async def put(
        self, *, caller: Identity, project: str, name: str, secret: SecretIn, request_id: str | None = None
    ) -> SecretInfo:
        """Write a secret and its scope; the audit record names it and its scope, never its value. A secret written
        while its project was deleted goes with it (see `projects.same_project`)."""
        await authorized(self._role_of, caller, project, Role.ADMIN)
        check_name(name)
        if name == PROJECT_TOKEN and secret.frameworks is not None:
            raise InvalidInput(
                f"{PROJECT_TOKEN} never reaches an agent (the platform pushes with it), so it takes no frameworks",
                errors=[{"loc": ["frameworks"], "msg": f"{PROJECT_TOKEN} takes no frameworks"}],
            )
        uid = (await self._store.get(Project, project)).metadata.uid
        room = Room(self._settings.project_secrets_max_count, self._settings.project_secrets_max_bytes)
        scope = project_scope(project)
        info = await self._vault.put(scope, name, secret.value, room=room, frameworks=secret.frameworks)
        if not await same_project(self._store, project, uid):
            with contextlib.suppress(NotFound):
                await self._vault.delete(scope, name)
            raise NotFound(f"project {project!r} not found")
        await self._tenancy.sync_secret(project, name, secret.value, secret.frameworks)
        details = {"frameworks": secret.frameworks} if secret.frameworks is not None else None
        await self._audit.record(
            actor=caller.name,
            project=project,
            action="secret.write",
            target=f"secret/{name}",
            request_id=request_id,
            details=details,
        )
        return info

    async def delete(self, *, caller: Identity, project: str, name: str, request_id: str | None = None) -> None:
        await authorized(self._role_of, caller, project, Role.ADMIN)
        check_name(name)
        await self._store.get(Project, project)
        await self._vault.delete(project_scope(project), name)
        await self._tenancy.sync_secret(project, name, None)
        await self._audit.record(
            actor=caller.name, project=project, action="secret.delete", target=f"secret/{name}", request_id=request_id
        )


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise InvalidInput(
            f"secret name {name!r} must be upper-case letters, digits and '_', e.g. GIT_TOKEN",
            errors=[{"loc": ["name"], "msg": "must match " + NAME.pattern}],
        )
