"""Vault rotations under concurrency, on a real SQLite database and real key files: rotations and writes at once
lose no key, and what is on disk afterwards (as a restart reads it) still opens every value."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vteam.auth import Vault
from vteam.auth import keys as key_files
from vteam.db import open_database
from vteam.services.platform import rotate_vault_key, vault_previous
from vteam.settings import Settings


async def test_concurrent_rotations_and_writes_keep_every_value(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db = await open_database(tmp_path / "vteam.db")
    try:
        vault = Vault(db, [key_files.load_or_create(settings.vault_key_path)])
        platform: Any = SimpleNamespace(settings=settings, vault=vault)
        await vault.put("project:p", "FIRST", "one")
        writes = [vault.put("project:p", f"S{i}", f"value-{i}") for i in range(20)]
        rotations = [rotate_vault_key(platform) for _ in range(5)]
        await asyncio.gather(*writes, *rotations)
        assert not vault_previous(settings).exists(), "the old keys are forgotten once nothing needs them"
        restarted = Vault(db, [key_files.load_or_create(settings.vault_key_path)])
        assert await restarted.get("project:p", "FIRST") == "one"
        assert [await restarted.get("project:p", f"S{i}") for i in range(20)] == [f"value-{i}" for i in range(20)]
    finally:
        await db.close()
