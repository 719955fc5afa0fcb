"""A session's change set: its pull requests, with their state read fresh from the forge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from vteam.api.deps import PlatformDep, authorize
from vteam.resources import AgenticSession

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions", tags=["pull requests"])


@router.get("/{name}/pull-requests", dependencies=[Depends(authorize())])
async def list_pull_requests(project: str, name: str, platform: PlatformDep) -> dict[str, Any]:
    session = await platform.store.get(AgenticSession, name, project)
    pulls = await platform.forges.refresh(session)
    notes = [
        {"repo": index, "url": r.url, "note": r.note or r.error}
        for index, r in enumerate(session.status.repos)
        if r.pull_request is None and (r.note or (r.error or "").startswith("pull request"))
    ]
    return {"items": [p.model_dump(by_alias=True, exclude_none=True) for p in pulls], "notOpened": notes}
