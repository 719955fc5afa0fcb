"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from vteam.api.responses import Health, Readiness, shaped
from vteam.edge.deps import PlatformDep, authorize

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[Depends(authorize(public=True))], **shaped(Health))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    dependencies=[Depends(authorize(public=True))],
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: the database or the controller is down."}},
)
async def readyz(platform: PlatformDep) -> JSONResponse:
    try:
        await platform.db.ping()
    except Exception as exc:
        return JSONResponse({"status": "not ready", "reason": f"database: {type(exc).__name__}"}, status_code=503)
    if not platform.ready:
        return JSONResponse({"status": "not ready", "reason": "controller is not running"}, status_code=503)
    return JSONResponse({"status": "ready"})
