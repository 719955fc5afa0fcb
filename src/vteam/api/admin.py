"""Platform administration: rotating the key that encrypts every secret."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vteam.api import audit
from vteam.api.deps import PlatformAdmin, PlatformDep
from vteam.api.platform import rotate_vault_key

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.post("/vault/rotate")
async def rotate(request: Request, platform: PlatformDep, caller: PlatformAdmin) -> dict[str, Any]:
    """Encrypt every stored secret under a new key; the old key is forgotten once nothing needs it."""
    count = await rotate_vault_key(platform)
    await audit.record(request, platform, caller, "vault.rotate", "vault", details={"secrets": count})
    return {"reencrypted": count}
