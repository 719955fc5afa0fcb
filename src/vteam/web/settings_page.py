"""A project's settings page: members, access keys, secrets and session defaults.

Every change goes through the services the API uses too (same checks, same audit records); the page
only adds what a browser needs: forms, a redirect back to the section after a change, and inline errors
that keep what was typed. What a role may not do is neither shown nor accepted: the API's role checks
run first, so a forged POST gets the error page.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from vteam.agents import registry
from vteam.auth import Identity, Role
from vteam.errors import AlreadyExists, Conflict, InvalidInput, NotFound, VteamError
from vteam.forges import project_scope
from vteam.resources import Project
from vteam.services.access import BindingIn, KeyIn
from vteam.services.projects import ProjectPatch
from vteam.services.secrets import NAME as SECRET_NAME
from vteam.services.secrets import SecretIn
from vteam.web.deps import Platform, PlatformDep
from vteam.web.pages import Who, page, project_role, render

router = APIRouter(include_in_schema=False)

Section = Literal["members", "keys", "secrets", "defaults"]
INLINE = (InvalidInput, Conflict, AlreadyExists)
"""Errors answered on the page itself, next to the form, keeping what was typed (422 and 409)."""

DONE = {
    "member-added": "Member added.",
    "member-saved": "Role saved.",
    "member-removed": "Member removed.",
    "key-revoked": "Access key revoked.",
    "secret-saved": "Secret saved.",
    "secret-deleted": "Secret deleted.",
    "defaults-saved": "Defaults saved.",
}
"""The confirmations a redirect may ask for, by a fixed name, so a link cannot put its own words on the page."""


@dataclass(frozen=True)
class _NewKey:
    user: str
    project: str
    name: str
    secret: str
    expires: float


NEW_KEY_SECONDS = 60
_new_keys: dict[str, _NewKey] = {}
"""A new key's secret between the POST that made it and the GET that shows it: in memory only, for the
person who made it, taken out on that first GET and dropped after a minute, so a reload, the back button
or a shared URL never shows it again, and the page can redirect after the POST like every other form."""


def _forget_stale() -> None:
    now = time.monotonic()
    for handle in [h for h, held in _new_keys.items() if held.expires < now]:
        _new_keys.pop(handle, None)


def _hold_secret(me: Identity, project: str, name: str, secret: str) -> str:
    _forget_stale()
    handle = secrets.token_urlsafe(16)
    _new_keys[handle] = _NewKey(me.name, project, name, secret, time.monotonic() + NEW_KEY_SECONDS)
    return handle


def _take_secret(me: Identity, project: str, handle: str | None) -> _NewKey | None:
    _forget_stale()
    held = _new_keys.get(handle) if handle else None
    if held is None or (held.user, held.project) != (me.name, project):
        return None  # someone else's handle leaves the secret for its maker
    _new_keys.pop(handle or "", None)
    return held


def _back(project: str, section: Section, done: str | None = None, **query: str) -> RedirectResponse:
    params = {**({"done": done} if done else {}), **query}
    suffix = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    return RedirectResponse(f"/projects/{project}/settings{suffix}#{section}", status_code=303)


def _message(exc: ValidationError) -> str:
    """A pydantic error as a sentence naming the field, for the form it came from."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    text = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{field}: {text}" if field else text


def when(value: str | None) -> str:
    """An ISO timestamp as people read it (to the minute, UTC)."""
    if not value:
        return "—"
    return value.replace("T", " ")[:16] + " UTC"


async def _settings(
    request: Request,
    platform: Platform,
    me: Identity,
    project: str,
    *,
    role: Role,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    new_key: _NewKey | None = None,
    done: str | None = None,
) -> Response:
    found = await platform.store.get(Project, project)
    is_admin = role.allows(Role.ADMIN)
    can_keys = role.allows(Role.EDIT)
    keys = await platform.accounts.list_tokens(project=project, kind="key") if can_keys else []
    stored = await platform.vault.list(project_scope(project)) if is_admin else []
    stored_names = {s.name for s in stored}
    framework_keys = []
    if is_admin:
        needed: dict[str, list[str]] = {}
        for info in registry.infos():
            for name in info.secrets:
                needed.setdefault(name, []).append(info.name)
        for name, frameworks in sorted(needed.items()):
            where = "project" if name in stored_names else "server" if os.environ.get(name) else None
            framework_keys.append({"name": name, "frameworks": frameworks, "set": where})
    response = render(
        request,
        "settings.html",
        status_code=status_code,
        section="projects",
        project=found,
        role=role.value,
        is_admin=is_admin,
        can_keys=can_keys,
        can_create_key=can_keys and me.kind == "user",
        key_roles=[r.value for r in Role if role.allows(r)],
        roles=[r.value for r in Role],
        members=await platform.accounts.bindings(project),
        keys=keys,
        secrets=stored,
        framework_keys=framework_keys,
        frameworks=registry.infos(),
        defaults=found.spec.defaults,
        new_key=new_key,
        flash=DONE.get(done or ""),
        errors=errors or {},
        form=form or {},
        when=when,
        me_name=me.name,
    )
    # The page may hold a key's secret once; no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/projects/{project}/settings")
@page
async def settings(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    done: str | None = Query(None),
    key: str | None = Query(None),
) -> Response:
    role = await project_role(platform, me, project, Role.VIEW)
    return await _settings(request, platform, me, project, role=role, new_key=_take_secret(me, project, key), done=done)


# Every form below has one shape: the role check, then the change through the API's route; a redirect back to
# the section after it, or the page again with the error beside the form.


@dataclass(frozen=True)
class _Form:
    """A settings form as submitted: who sends it for which project, with which role there, and what was typed."""

    request: Request
    platform: Platform
    me: Identity
    project: str
    role: Role
    typed: dict[str, str] | None = None
    """What the page shows again after an inline error (never a secret's value)."""

    async def submit(
        self,
        change: Callable[[], Awaitable[object]],
        *,
        section: Section,
        error_key: str,
        done: str | None = None,
        invalid: Callable[[ValidationError], str] = _message,
        inline: tuple[type[VteamError], ...] = INLINE,
    ) -> Response:
        """Make the change, then go back to `section` (or where the change redirects: API answers are not pages).

        A ValidationError or an `inline` error re-renders the page with it under `error_key`; any other
        error is the error page."""
        try:
            answer = await change()
        except ValidationError as exc:
            return await self._again(422, {error_key: invalid(exc)})
        except inline as exc:
            return await self._again(exc.status, {error_key: exc.detail})
        return answer if isinstance(answer, RedirectResponse) else _back(self.project, section, done)

    async def _again(self, status_code: int, errors: dict[str, str]) -> Response:
        return await _settings(
            self.request,
            self.platform,
            self.me,
            self.project,
            role=self.role,
            status_code=status_code,
            errors=errors,
            form=self.typed,
        )


def _request_id(request: Request) -> str | None:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid


async def _form(
    request: Request, platform: Platform, me: Identity, project: str, needs: Role, typed: dict[str, str] | None = None
) -> _Form:
    """The form's sender, after the check that their role in the project allows the change (else the error page)."""
    role = await project_role(platform, me, project, needs)
    return _Form(request, platform, me, project, role, typed)


# Members: the API's bind and unbind, which keep a project's last admin.


async def _bind(form: _Form, typed: dict[str, str], error_key: str, done: str) -> Response:
    async def change() -> object:
        body = BindingIn.model_validate(
            {"subjectType": typed["subject_type"], "subjectName": typed["subject_name"].strip(), "role": typed["role"]}
        )
        return await form.platform.access.bind(
            caller=form.me, project=form.project, binding=body, request_id=_request_id(form.request)
        )

    return await form.submit(change, section="members", error_key=error_key, done=done)


@router.post("/projects/{project}/settings/members")
@page
async def add_member(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    subject_type: str = Form("user"),
    subject_name: str = Form(""),
    role: str = Form("view"),
) -> Response:
    typed = {"subject_type": subject_type, "subject_name": subject_name, "role": role}
    form = await _form(request, platform, me, project, Role.ADMIN, typed)
    return await _bind(form, typed, "member", "member-added")


@router.post("/projects/{project}/settings/members/role")
@page
async def change_member(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    subject_type: str = Form("user"),
    subject_name: str = Form(""),
    role: str = Form("view"),
) -> Response:
    typed = {"subject_type": subject_type, "subject_name": subject_name, "role": role}
    form = await _form(request, platform, me, project, Role.ADMIN, typed)
    return await _bind(form, typed, f"member:{subject_type}/{subject_name}", "member-saved")


@router.post("/projects/{project}/settings/members/remove")
@page
async def remove_member(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    subject_type: str = Form("user"),
    subject_name: str = Form(""),
) -> Response:
    form = await _form(request, platform, me, project, Role.ADMIN)
    if subject_type not in ("user", "group"):
        raise InvalidInput("subject type must be user or group")
    kind: Literal["user", "group"] = "user" if subject_type == "user" else "group"
    return await form.submit(
        lambda: platform.access.unbind(
            caller=me,
            project=project,
            subject_type=kind,
            subject_name=subject_name,
            request_id=_request_id(request),
        ),
        section="members",
        error_key=f"member:{subject_type}/{subject_name}",
        done="member-removed",
        inline=(*INLINE, NotFound),
    )


# Access keys: the API's create and revoke, which cap a key's role at its maker's.


@router.post("/projects/{project}/settings/keys")
@page
async def create_key(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    name: str = Form(""),
    role: str = Form("view"),
    expires_in_days: str = Form(""),
) -> Response:
    typed = {"key_name": name, "key_role": role, "expires_in_days": expires_in_days}
    form = await _form(request, platform, me, project, Role.EDIT, typed)

    async def change() -> RedirectResponse:
        body = KeyIn.model_validate(
            {"name": name.strip(), "role": role, "expiresInDays": expires_in_days.strip() or None}
        )
        issued = await platform.access.create_key(caller=me, project=project, key=body, request_id=_request_id(request))
        # The secret waits for the page after the redirect, which shows it once.
        return _back(project, "keys", key=_hold_secret(me, project, issued.record.name, issued.token))

    return await form.submit(change, section="keys", error_key="key")


@router.post("/projects/{project}/settings/keys/{key_id}/revoke")
@page
async def revoke_key(
    request: Request, project: str, key_id: str, platform: PlatformDep, me: Identity = Who
) -> Response:
    form = await _form(request, platform, me, project, Role.EDIT)
    return await form.submit(
        lambda: platform.access.revoke_key(caller=me, project=project, key_id=key_id, request_id=_request_id(request)),
        section="keys",
        error_key="key",
        done="key-revoked",
        inline=(),
    )


# Secrets: the API's write and delete; values go in and never come back out.


@router.post("/projects/{project}/settings/secrets")
@page
async def save_secret(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    name: str = Form(""),
    value: str = Form(""),
    frameworks: list[str] = Form([]),
) -> Response:
    """Write a secret and its frameworks (none ticked: every framework) through the API's own route."""
    # Never the value: it must not come back in the page.
    typed = {"secret_name": name, "secret_frameworks": ",".join(frameworks)}
    form = await _form(request, platform, me, project, Role.ADMIN, typed)
    name = name.strip()

    async def change() -> object:
        if not SECRET_NAME.match(name):
            raise InvalidInput(f"secret name {name!r} must be upper-case letters, digits and '_', e.g. GIT_TOKEN")
        body = SecretIn.model_validate({"value": value, "frameworks": frameworks or None})
        return await platform.secrets.put(
            caller=me, project=project, name=name, secret=body, request_id=_request_id(request)
        )

    return await form.submit(
        change,
        section="secrets",
        error_key="secret",
        done="secret-saved",
        invalid=lambda exc: _message(exc) if value else "value: enter a value of at most 64,000 characters",
    )


@router.post("/projects/{project}/settings/secrets/{name}/delete")
@page
async def delete_secret(
    request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who
) -> Response:
    form = await _form(request, platform, me, project, Role.ADMIN)
    if not SECRET_NAME.match(name):
        raise NotFound(f"no secret {name!r} in project {project!r}")
    return await form.submit(
        lambda: platform.secrets.delete(caller=me, project=project, name=name, request_id=_request_id(request)),
        section="secrets",
        error_key="secret",
        done="secret-deleted",
        inline=(),
    )


# Defaults: the API's merge patch, checked against the agent registry.


@router.post("/projects/{project}/settings/defaults")
@page
async def save_defaults(
    request: Request,
    project: str,
    platform: PlatformDep,
    me: Identity = Who,
    framework: str = Form(""),
    model: str = Form(""),
    timeout_seconds: str = Form(""),
) -> Response:
    typed = {"framework": framework, "model": model, "timeout": timeout_seconds}
    form = await _form(request, platform, me, project, Role.ADMIN, typed)
    values: dict[str, Any] = {
        "framework": framework.strip() or None,
        "model": model.strip() or None,
        "timeout": timeout_seconds.strip() or None,
    }
    return await form.submit(
        lambda: platform.projects.update(
            caller=me,
            project=project,
            patch=ProjectPatch.model_validate({"defaults": values}),
            request_id=_request_id(request),
        ),
        section="defaults",
        error_key="defaults",
        done="defaults-saved",
        invalid=lambda exc: _message(exc).removeprefix("defaults."),
    )
