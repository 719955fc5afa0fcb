"""The frameworks a session can run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from vteam.agents import registry
from vteam.api.responses import RunnerType, shaped
from vteam.edge.deps import authorize

router = APIRouter(prefix="/api", tags=["frameworks"], dependencies=[Depends(authorize(None))])


@router.get("/runner-types", **shaped(list[RunnerType]))
async def runner_types() -> list[dict[str, Any]]:
    """Every framework, and whether it is ready here: `make run` installs the CLIs after the platform starts."""
    readiness = await registry.readiness()
    return [
        {
            "name": info.name,
            "description": info.description,
            "models": list(info.models),
            "modelPattern": info.model_pattern,
            "secrets": list(info.secrets),
            "secretAlternatives": list(info.secret_alternatives),
            "settings": list(info.settings),
            "capabilities": {"interactive": info.interactive, "resume": info.resume, "streaming": info.streaming},
            "ready": readiness[info.name].ready,
            "status": readiness[info.name].status,
        }
        for info in registry.infos()
    ]
