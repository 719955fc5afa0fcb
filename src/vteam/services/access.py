"""Who may do what in a project: the caller's role, role bindings, and access keys for automation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from vteam.auth import Accounts, AuditLog, Binding, Identity, Role, Token
from vteam.errors import Conflict, Forbidden, InvalidInput, NotFound
from vteam.resources import CamelModel, Project, validation
from vteam.services.projects import RoleOf, authorized, same_project
from vteam.services.tenancy import Tenancy
from vteam.store import ResourceStore

SubjectType = Literal["user", "group"]


class BindingIn(CamelModel):
    subject_type: SubjectType
    subject_name: str = Field(min_length=1, max_length=200)
    role: Role

    @field_validator("subject_name")
    @classmethod
    def _subject(cls, value: str, info: ValidationInfo) -> str:
        """Printable and without '/': a binding a path cannot name could never be revoked."""
        validation.check_subject_name(str(info.data.get("subject_type", "subject")), value)
        return value


class KeyIn(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.VIEW
    expires_in_days: int | None = Field(90, ge=1, le=365, description="None: the key never expires.")


@dataclass(frozen=True)
class CallerRole:
    project: str
    user: str
    role: Role | None


@dataclass(frozen=True)
class IssuedKey:
    record: Token
    token: str
    """The key's secret: in this answer only."""


class Access:
    """Role bindings and access keys of a project, each change authorized, mirrored (`Tenancy`) and audited."""

    def __init__(
        self, *, store: ResourceStore, accounts: Accounts, audit: AuditLog, role_of: RoleOf, tenancy: Tenancy
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._audit = audit
        self._role_of = role_of
        self._tenancy = tenancy

    async def role(self, *, caller: Identity, project: str) -> CallerRole:
        """The caller's role in the project; a platform admin's too, for a project that exists."""
        await authorized(self._role_of, caller, project, Role.VIEW)
        await self._store.get(Project, project)
        return CallerRole(project, caller.name, await self._role_of(caller, project))

    async def bindings(self, *, caller: Identity, project: str) -> list[Binding]:
        await authorized(self._role_of, caller, project, Role.VIEW)
        await self._store.get(Project, project)
        return await self._accounts.bindings(project)

    async def bind(
        self, *, caller: Identity, project: str, binding: BindingIn, request_id: str | None = None
    ) -> Binding:
        """Give a user or group a role in the project (replacing the one they had); project admins."""
        await authorized(self._role_of, caller, project, Role.ADMIN)
        self._check_subject(binding)
        uid = (await self._store.get(Project, project)).metadata.uid
        await self._keep_an_admin(project, binding.subject_type, binding.subject_name, binding.role)
        await self._tenancy.grant(project, binding.subject_type, binding.subject_name, binding.role, caller=caller)
        made = await self._accounts.bind(
            project,
            binding.subject_type,
            binding.subject_name,
            binding.role,
            created_by=caller.name,
            keep_an_admin=True,
        )
        if not await same_project(self._store, project, uid):
            await self._accounts.unbind(project, binding.subject_type, binding.subject_name)
            raise NotFound(f"project {project!r} not found")
        target = f"{binding.subject_type}/{binding.subject_name}"
        await self._record(caller, project, "role.bind", target, request_id, details={"role": binding.role.value})
        return made

    async def unbind(
        self,
        *,
        caller: Identity,
        project: str,
        subject_type: SubjectType,
        subject_name: str,
        request_id: str | None = None,
    ) -> None:
        await authorized(self._role_of, caller, project, Role.ADMIN)
        await self._store.get(Project, project)
        await self._keep_an_admin(project, subject_type, subject_name, None)
        await self._tenancy.revoke(project, subject_type, subject_name, caller=caller)
        await self._accounts.unbind(project, subject_type, subject_name, keep_an_admin=True)
        await self._record(caller, project, "role.unbind", f"{subject_type}/{subject_name}", request_id)

    async def keys(self, *, caller: Identity, project: str) -> list[Token]:
        """The project's access keys: name, role, created, expires, last used (never their secrets); editors."""
        await authorized(self._role_of, caller, project, Role.EDIT)
        await self._store.get(Project, project)
        return await self._accounts.list_tokens(project=project, kind="key")

    async def create_key(
        self, *, caller: Identity, project: str, key: KeyIn, request_id: str | None = None
    ) -> IssuedKey:
        """A new access key. A key's role is at most its creator's, and only people make keys: a leaked key
        must not be able to mint successors that outlive its revocation."""
        await authorized(self._role_of, caller, project, Role.EDIT)
        if caller.kind != "user":
            raise Forbidden("only people create access keys")
        uid = (await self._store.get(Project, project)).metadata.uid
        mine = await self._role_of(caller, project)
        if mine is None or not mine.allows(key.role):
            raise Forbidden(f"a key's role may not exceed yours ({mine.value if mine else 'none'})")
        record, secret = await self._accounts.issue(
            "key",
            name=key.name,
            created_by=caller.name,
            project=project,
            role=key.role,
            ttl=timedelta(days=key.expires_in_days) if key.expires_in_days else None,
        )
        if not await same_project(self._store, project, uid):
            await self._accounts.revoke_live(record.id)
            raise NotFound(f"project {project!r} not found")
        now_mine = await self._role_of(caller, project)
        if now_mine is None or not now_mine.allows(key.role):
            await self._accounts.revoke_live(record.id)
            raise Forbidden("your role changed while the key was made; it has been revoked")
        await self._record(
            caller, project, "key.issue", f"key/{record.id}", request_id, details={"role": key.role.value}
        )
        return IssuedKey(record, secret)

    async def revoke_key(self, *, caller: Identity, project: str, key_id: str, request_id: str | None = None) -> None:
        """Project admins revoke any of the project's keys; editors the ones they made."""
        mine = await authorized(self._role_of, caller, project, Role.EDIT)
        try:
            key = await self._accounts.get_token(key_id)
        except NotFound:
            key = None
        if key is None or key.kind != "key" or key.project != project:
            raise NotFound(f"project {project!r} has no access key {key_id!r}")
        if key.created_by != caller.name and not mine.allows(Role.ADMIN):
            raise Forbidden("only project admins may revoke keys others made")
        if await self._accounts.revoke_live(key_id):
            await self._record(caller, project, "key.revoke", f"key/{key_id}", request_id)

    def _check_subject(self, binding: BindingIn) -> None:
        try:
            validation.check_subject_name(
                binding.subject_type, binding.subject_name, local_users=self._tenancy.local_users
            )
        except ValueError as exc:
            raise InvalidInput(f"subjectName: {exc}", errors=[{"loc": ["subjectName"], "msg": str(exc)}]) from None

    async def _keep_an_admin(self, project: str, subject_type: str, subject_name: str, role: Role | None) -> None:
        """A project always keeps at least one admin binding, so that someone can still manage it. An early answer
        before a cluster's RBAC is touched; the rule itself holds in `accounts.bind`/`unbind`'s own transaction."""
        if role == Role.ADMIN:
            return
        admins = [b for b in await self._accounts.bindings(project) if b.role == Role.ADMIN]
        if admins and all((b.subject_type, b.subject_name) == (subject_type, subject_name) for b in admins):
            raise Conflict(
                f"{subject_type} {subject_name!r} is the project's last admin; make someone else admin first"
            )

    async def _record(
        self,
        caller: Identity,
        project: str,
        action: str,
        target: str,
        request_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._audit.record(
            actor=caller.name, project=project, action=action, target=target, request_id=request_id, details=details
        )
