"""Who may do what in a project: the caller's role, role bindings, and access keys for automation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field, ValidationInfo, field_validator

from vteam.api.deps import Editor, EditorIssuer, PlatformDep, ProjectAdmin, authorize, role_in
from vteam.api.responses import AccessKeyList, CallerAccess, NewAccessKey, RoleBinding, RoleBindingList, shaped
from vteam.auth import Identity, Role
from vteam.errors import Conflict, Forbidden, InvalidInput, NotFound
from vteam.resources import CamelModel, Project, validation

router = APIRouter(prefix="/api/projects/{project}", tags=["access"])


class BindingIn(CamelModel):
    subject_type: Literal["user", "group"]
    subject_name: str = Field(min_length=1, max_length=200)
    role: Role

    @field_validator("subject_name")
    @classmethod
    def _subject(cls, value: str, info: ValidationInfo) -> str:
        """Printable and without '/': a binding a path cannot name could never be revoked."""
        validation.check_subject_name(str(info.data.get("subject_type", "subject")), value)
        return value


def local_users(platform: Any) -> bool:
    """Whether vTeam's own accounts are its only users (no trusted proxy, not a cluster), so that a user
    binding must name a user name vTeam allows."""
    settings = platform.settings
    return platform.cluster is None and not (settings.trust_proxy_headers and settings.proxy_secret is not None)


def _check_subject(platform: Any, body: BindingIn) -> None:
    try:
        validation.check_subject_name(body.subject_type, body.subject_name, local_users=local_users(platform))
    except ValueError as exc:
        raise InvalidInput(f"subjectName: {exc}", errors=[{"loc": ["subjectName"], "msg": str(exc)}]) from None


class KeyIn(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.VIEW
    expires_in_days: int | None = Field(90, ge=1, le=365, description="None: the key never expires.")


async def _audit(
    request: Request, platform: Any, caller: Identity, project: str, action: str, target: str, **extra: Any
) -> None:
    await platform.audit.record(
        actor=caller.name,
        project=project,
        action=action,
        target=target,
        request_id=getattr(request.state, "request_id", None),
        **extra,
    )


@router.get("/access", **shaped(CallerAccess))
async def access(project: str, platform: PlatformDep, caller: Identity = Depends(authorize())) -> dict[str, Any]:
    """The caller's role in the project; a platform admin's too, for a project that exists."""
    await platform.store.get(Project, project)
    role = await role_in(platform, caller, project)
    return {"project": project, "user": caller.name, "role": role.value if role else None}


@router.get("/permissions", dependencies=[Depends(authorize())], **shaped(RoleBindingList))
async def list_permissions(project: str, platform: PlatformDep) -> dict[str, Any]:
    await platform.store.get(Project, project)
    return {"items": [b.wire() for b in await platform.accounts.bindings(project)]}


@router.post("/permissions", status_code=201, **shaped(RoleBinding))
async def bind(
    project: str, body: BindingIn, request: Request, platform: PlatformDep, caller: ProjectAdmin
) -> dict[str, Any]:
    """Give a user or group a role in the project (replacing the one they had)."""
    _check_subject(platform, body)
    uid = (await platform.store.get(Project, project)).metadata.uid
    await _keep_an_admin(platform, project, body.subject_type, body.subject_name, body.role)
    if platform.cluster is not None:
        await platform.cluster.grant(
            project, body.subject_type, body.subject_name, body.role, token=caller.access_token
        )
    binding = await platform.accounts.bind(
        project, body.subject_type, body.subject_name, body.role, created_by=caller.name, keep_an_admin=True
    )
    if not await same_project(platform, project, uid):
        await platform.accounts.unbind(project, body.subject_type, body.subject_name)
        raise NotFound(f"project {project!r} not found")
    target = f"{body.subject_type}/{body.subject_name}"
    await _audit(request, platform, caller, project, "role.bind", target, details={"role": body.role.value})
    return binding.wire()


@router.delete("/permissions/{subject_type}/{subject_name}", status_code=204)
async def unbind(
    project: str,
    subject_type: Literal["user", "group"],
    subject_name: str,
    request: Request,
    platform: PlatformDep,
    caller: ProjectAdmin,
) -> Response:
    await platform.store.get(Project, project)
    await _keep_an_admin(platform, project, subject_type, subject_name, None)
    if platform.cluster is not None:
        await platform.cluster.revoke(project, subject_type, subject_name, token=caller.access_token)
    await platform.accounts.unbind(project, subject_type, subject_name, keep_an_admin=True)
    await _audit(request, platform, caller, project, "role.unbind", f"{subject_type}/{subject_name}")
    return Response(status_code=204)


async def _keep_an_admin(platform: Any, project: str, subject_type: str, subject_name: str, role: Role | None) -> None:
    """A project always keeps at least one admin binding, so that someone can still manage it. An early answer
    before a cluster's RBAC is touched; the rule itself holds in `accounts.bind`/`unbind`'s own transaction."""
    if role == Role.ADMIN:
        return
    admins = [b for b in await platform.accounts.bindings(project) if b.role == Role.ADMIN]
    if admins and all((b.subject_type, b.subject_name) == (subject_type, subject_name) for b in admins):
        raise Conflict(f"{subject_type} {subject_name!r} is the project's last admin; make someone else admin first")


@router.get("/keys", dependencies=[Depends(authorize(Role.EDIT))], **shaped(AccessKeyList))
async def list_keys(project: str, platform: PlatformDep) -> dict[str, Any]:
    """The project's access keys: name, role, created, expires, last used (never their secrets)."""
    await platform.store.get(Project, project)
    return {"items": [k.wire() for k in await platform.accounts.list_tokens(project=project, kind="key")]}


@router.post("/keys", status_code=201, **shaped(NewAccessKey))
async def create_key(
    project: str, body: KeyIn, request: Request, platform: PlatformDep, caller: EditorIssuer
) -> dict[str, Any]:
    """A new access key; its secret is in this answer only. A key's role is at most its creator's, and only
    people make keys: a leaked key must not be able to mint successors that outlive its revocation. Through
    the API the browser's cookie alone may not make one (`EditorIssuer`); the settings page calls this
    function itself, behind its own CSRF-checked form."""
    if caller.kind != "user":
        raise Forbidden("only people create access keys")
    uid = (await platform.store.get(Project, project)).metadata.uid
    mine = await role_in(platform, caller, project)
    if mine is None or not mine.allows(body.role):
        raise Forbidden(f"a key's role may not exceed yours ({mine.value if mine else 'none'})")
    record, secret = await platform.accounts.issue(
        "key",
        name=body.name,
        created_by=caller.name,
        project=project,
        role=body.role,
        ttl=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
    )
    await _still_the_project(platform, project, uid, record.id)
    now_mine = await role_in(platform, caller, project)
    if now_mine is None or not now_mine.allows(body.role):
        await platform.accounts.revoke_live(record.id)
        raise Forbidden("your role changed while the key was made; it has been revoked")
    await _audit(request, platform, caller, project, "key.issue", f"key/{record.id}", details={"role": body.role.value})
    return {**record.wire(), "token": secret}


async def same_project(platform: Any, project: str, uid: str | None) -> bool:
    """Whether `project` is still the project whose uid was read before a write. A write for a project
    that was deleted meanwhile (and perhaps made again under the same name) is undone by its caller:
    deletion removes what it sees and a new project wipes what its name left, so re-reading after the
    write closes the window between the first check and the write."""
    try:
        current = (await platform.store.get(Project, project)).metadata.uid
    except NotFound:
        return False
    return uid is not None and current == uid


async def _still_the_project(platform: Any, project: str, uid: str | None, key_id: str) -> None:
    """A key issued while its project was being deleted is revoked at once and the caller hears 404."""
    if not await same_project(platform, project, uid):
        await platform.accounts.revoke_live(key_id)
        raise NotFound(f"project {project!r} not found")


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, project: str, request: Request, platform: PlatformDep, caller: Editor) -> Response:
    """Project admins revoke any of the project's keys; editors the ones they made."""
    try:
        key = await platform.accounts.get_token(key_id)
    except NotFound:
        key = None
    if key is None or key.kind != "key" or key.project != project:
        raise NotFound(f"project {project!r} has no access key {key_id!r}")
    mine = await role_in(platform, caller, project)
    if key.created_by != caller.name and not (mine and mine.allows(Role.ADMIN)):
        raise Forbidden("only project admins may revoke keys others made")
    if await platform.accounts.revoke_live(key_id):
        await _audit(request, platform, caller, project, "key.revoke", f"key/{key_id}")
    return Response(status_code=204)
