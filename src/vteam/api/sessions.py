"""Agentic sessions: create, read, list, stop, delete."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import Field, field_validator

from vteam.agents import registry
from vteam.api.audit import record
from vteam.api.deps import Caller, CallerOrRunner, Editor, PlatformDep
from vteam.api.platform import Platform
from vteam.api.repo_policy import check_session
from vteam.api.schemas import SessionCreate, generate_name, parse_session_body
from vteam.controller import set_phase
from vteam.errors import InvalidTransition
from vteam.forges import project_scope
from vteam.resources import (
    CREATED_BY,
    AgenticSession,
    CamelModel,
    ObjectMeta,
    Phase,
    Project,
    RepoInput,
    SessionRepo,
    SessionSpec,
    validation,
)

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions", tags=["sessions"])


@router.get("")
async def list_sessions(
    project: str,
    platform: PlatformDep,
    caller: Caller,
    label_selector: str | None = Query(None, alias="labelSelector"),
    phase: Phase | None = Query(None),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> dict[str, Any]:
    """The store filters by phase itself, so a filtered page costs what an unfiltered one does."""
    await platform.store.get(Project, project)
    store = await platform.store_for(caller)
    page = await store.list(
        AgenticSession,
        project,
        label_selector=label_selector,
        limit=limit,
        continue_token=continue_token,
        phase=None if phase is None else phase.value,
    )
    return {
        "apiVersion": "v1",
        "kind": "AgenticSessionList",
        "metadata": {"resourceVersion": page.resource_version, "continue": page.continue_token},
        "items": [s.wire() for s in page.items],
    }


async def available_secrets(platform: Platform, project: str, framework: str | None = None) -> set[str]:
    """The secret names a project's runner can get: the server's environment and the project's own secrets
    (with `framework`, only those whose scope includes it)."""
    stored = {
        s.name
        for s in await platform.vault.list(project_scope(project))
        if framework is None or registry.reaches(s.frameworks, framework)
    }
    return {k for k, v in os.environ.items() if v} | stored


@router.post("", status_code=201)
async def create_session(
    project: str,
    request: Request,
    platform: PlatformDep,
    caller: Editor,
    body: dict[str, Any] = Body(
        ...,
        openapi_examples={
            "script": {
                "summary": "A script session that edits a file and pushes a branch",
                "value": {
                    "prompt": "echo hello >> README.md",
                    "repos": [{"input": {"url": "/path/to/repo"}, "output": {"url": "/path/to/repo"}}],
                    "framework": "script",
                },
            }
        },
        description=f"Spec fields at the top level (see {SessionCreate.__name__}) or `{{metadata, spec}}`.",
    ),
) -> dict[str, Any]:
    found = await platform.store.get(Project, project)
    session = parse_session_body(body, project, defaults=found.spec.defaults)
    session.metadata.annotations[CREATED_BY] = caller.name
    registry.check(session.spec.framework, session.spec.model, interactive=session.spec.interactive)
    platform.isolation.admit(caller, session.spec.framework)
    registry.check_secrets(session.spec.framework, await available_secrets(platform, project, session.spec.framework))
    await check_session(platform, caller, session)
    created = await (await platform.store_for(caller)).create(session)
    details = {"framework": created.spec.framework}
    await record(
        request, platform, caller, "session.create", f"session/{created.name}", project=project, details=details
    )
    return created.wire()


@router.get("/{name}")
async def get_session(project: str, name: str, platform: PlatformDep, caller: CallerOrRunner) -> dict[str, Any]:
    return (await (await platform.store_for(caller)).get(AgenticSession, name, project)).wire()


@router.delete("/{name}", status_code=204)
async def delete_session(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> Response:
    """Delete the session; its runner is killed and its workspace and events removed."""
    await (await platform.store_for(caller)).delete(AgenticSession, name, project)
    await record(request, platform, caller, "session.delete", f"session/{name}", project=project)
    return Response(status_code=204)


@router.post("/{name}/stop", status_code=202)
async def stop_session(
    project: str, name: str, request: Request, platform: PlatformDep, caller: Editor
) -> dict[str, Any]:
    session = await platform.store.get(AgenticSession, name, project)
    if session.phase in (Phase.STOPPING, Phase.STOPPED):
        return session.wire()
    if session.phase.terminal:
        raise InvalidTransition(f"session {name!r} already ended ({session.phase.value}); there is nothing to stop")
    updated = await set_phase(
        platform.store, platform.events, platform.hub, project, name, Phase.STOPPING, message="stopped on request"
    )
    platform.controller.enqueue(updated.key)
    await record(request, platform, caller, "session.stop", f"session/{name}", project=project)
    return updated.wire()


class ContinueIn(CamelModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    name: str | None = None
    interactive: bool | None = Field(None, strict=True)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        validation.check_text(value, "prompt")
        return value


PARENT_LABEL = "vteam.ambient-code/parent"


@router.post("/{name}/continue", status_code=201)
async def continue_session(
    project: str, name: str, body: ContinueIn, request: Request, platform: PlatformDep, caller: Editor
) -> dict[str, Any]:
    """A child session on the same repos, continuing from each work branch the parent pushed, and
    resuming the framework's conversation where the framework can."""
    parent = await platform.store.get(AgenticSession, name, project)
    if not parent.phase.terminal:
        raise InvalidTransition(f"session {name!r} is still {parent.phase.value}; end or stop it before continuing it")
    repos: list[SessionRepo] = []
    for index, repo in enumerate(parent.spec.repos):
        pushed = parent.status.repos[index] if index < len(parent.status.repos) else None
        if repo.output is not None and pushed is not None and pushed.pushed and pushed.branch:
            output = repo.output.model_copy(
                update={
                    "target_branch": pushed.branch,
                    "allow_default_branch": True,
                    "pull_request_base": repo.output.pull_request_base or pushed.base_branch,
                }
            )
            source = pushed.pushed_url or repo.output.url
            repos.append(SessionRepo(input=RepoInput(url=source, branch=pushed.branch), output=output))
        else:
            repos.append(repo)
    changes: dict[str, Any] = {"prompt": body.prompt, "repos": repos, "parent_session": parent.name}
    if body.interactive is not None:
        changes |= {"interactive": body.interactive, "mode": "interactive" if body.interactive else "batch"}
    spec = SessionSpec.model_validate(parent.spec.model_copy(update=changes).model_dump())
    registry.check(spec.framework, spec.model, interactive=spec.interactive)
    platform.isolation.admit(caller, spec.framework)
    registry.check_secrets(spec.framework, await available_secrets(platform, project, spec.framework))
    child = AgenticSession(
        metadata=ObjectMeta(
            name=body.name or generate_name(parent.name[:54]),
            namespace=project,
            labels={**parent.metadata.labels, PARENT_LABEL: parent.name},
            annotations={CREATED_BY: caller.name},
        ),
        spec=spec,
    )
    await check_session(platform, caller, child)
    created = await (await platform.store_for(caller)).create(child)
    details = {"framework": created.spec.framework, "parent": parent.name}
    await record(
        request, platform, caller, "session.create", f"session/{created.name}", project=project, details=details
    )
    return created.wire()
