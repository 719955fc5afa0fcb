"""Agentic sessions: create, read, list, stop, delete, continue; each route calls one `Sessions` method."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from vteam.api.responses import AgenticSessionList, resource
from vteam.edge.deps import Caller, CallerOrRunner, Editor, PlatformDep
from vteam.resources import AgenticSession, Phase
from vteam.services import ContinueIn
from vteam.services.session_body import SessionCreate

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions", tags=["sessions"])

__all__ = ["ContinueIn", "router"]


def _request_id(request: Request) -> str | None:
    """The request's id, so one log line and one audit record can be matched."""
    return getattr(request.state, "request_id", None)


@router.get("", response_model=AgenticSessionList)
async def list_sessions(
    project: str,
    platform: PlatformDep,
    caller: Caller,
    label_selector: str | None = Query(None, alias="labelSelector"),
    phase: Phase | None = Query(None),
    limit: int | None = Query(None, ge=1, le=1000),
    continue_token: str | None = Query(None, alias="continue"),
) -> JSONResponse:
    """A page of the project's sessions; `metadata.continue` (null on the last page) asks for the next."""
    page = await platform.sessions.list(
        caller=caller,
        project=project,
        label_selector=label_selector,
        phase=phase,
        limit=limit,
        continue_token=continue_token,
    )
    return JSONResponse(
        {
            "apiVersion": "v1",
            "kind": "AgenticSessionList",
            "metadata": {"resourceVersion": page.resource_version, "continue": page.continue_token},
            "items": [s.wire() for s in page.items],
        }
    )


@router.post("", status_code=201, **resource(AgenticSession))
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
) -> AgenticSession:
    return await platform.sessions.create(caller=caller, project=project, body=body, request_id=_request_id(request))


@router.get("/{name}", **resource(AgenticSession))
async def get_session(project: str, name: str, platform: PlatformDep, caller: CallerOrRunner) -> AgenticSession:
    return await platform.sessions.get(caller=caller, project=project, name=name)


@router.delete("/{name}", status_code=204)
async def delete_session(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> Response:
    """Delete the session; its runner is killed and its workspace and events removed."""
    await platform.sessions.delete(caller=caller, project=project, name=name, request_id=_request_id(request))
    return Response(status_code=204)


@router.post("/{name}/stop", status_code=202, **resource(AgenticSession))
async def stop_session(
    project: str, name: str, request: Request, platform: PlatformDep, caller: Editor
) -> AgenticSession:
    return await platform.sessions.stop(caller=caller, project=project, name=name, request_id=_request_id(request))


@router.post("/{name}/continue", status_code=201, **resource(AgenticSession))
async def continue_session(
    project: str, name: str, body: ContinueIn, request: Request, platform: PlatformDep, caller: Editor
) -> AgenticSession:
    """A child session on the same repos, continuing from each work branch the parent pushed, and
    resuming the framework's conversation where the framework can."""
    return await platform.sessions.continue_(
        caller=caller, project=project, name=name, change=body, request_id=_request_id(request)
    )
