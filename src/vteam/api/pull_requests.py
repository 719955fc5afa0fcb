"""A session's change set: its pull requests, with their state read fresh from the forge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from vteam.api.responses import PullRequestList, shaped
from vteam.edge.deps import PlatformDep, authorize
from vteam.resources import AgenticSession

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions", tags=["pull requests"])


@router.get("/{name}/pull-requests", dependencies=[Depends(authorize())], **shaped(PullRequestList))
async def list_pull_requests(project: str, name: str, platform: PlatformDep) -> dict[str, Any]:
    """The change set's pull requests, and for each repo that asked for one and has none, why not."""
    session = await platform.store.get(AgenticSession, name, project)
    pulls = await platform.forges.refresh(session)
    notes = [
        {"repo": index, "url": r.url, "note": r.note or r.error}
        for index, r in enumerate(session.status.repos)
        if r.pull_request is None
        and (r.note or (r.error or "").startswith("pull request") or (_asked(session, index) and r.error))
    ]
    return {"items": [p.model_dump(by_alias=True, exclude_none=True) for p in pulls], "notOpened": notes}


def _asked(session: AgenticSession, index: int) -> bool:
    """Whether the repo at `index` of the status (or the repo owning that submodule) asked for a pull request."""
    repo = session.status.repos[index]
    owner = index if repo.submodule_of is None else repo.submodule_of
    out = session.spec.repos[owner].output if owner < len(session.spec.repos) else None
    return out is not None and out.create_pull_request
