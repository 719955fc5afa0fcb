"""Start-up migrations: a database at the head opens without importing Alembic, a new or old one is upgraded,
and one from a newer vTeam is refused as Alembic refuses it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from vteam.db import migrate, open_database

OPEN = """
import asyncio, sys
from pathlib import Path
from vteam.db import open_database

async def main() -> None:
    db = await open_database(Path(sys.argv[1]))
    await db.close()

asyncio.run(main())
print("alembic" in sys.modules)
"""


def _opens_with_alembic(path: Path) -> bool:
    """Open the database in a fresh interpreter; whether that imported Alembic."""
    done = subprocess.run([sys.executable, "-c", OPEN, str(path)], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def _version(path: Path) -> list[tuple[str]]:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT version_num FROM alembic_version").fetchall()


def test_head_is_the_newest_migration(tmp_path: Path) -> None:
    assert ScriptDirectory.from_config(migrate.config(tmp_path / "x.db")).get_current_head() == migrate.HEAD


def test_a_new_database_is_migrated_and_then_opens_without_alembic(tmp_path: Path) -> None:
    path = tmp_path / "vteam.db"
    assert migrate.revision(path) is None
    assert _opens_with_alembic(path), "a new database needs Alembic to create its schema"
    assert _version(path) == [(migrate.HEAD,)]
    assert migrate.revision(path) == migrate.HEAD
    assert not _opens_with_alembic(path), "a database at the head opens without importing Alembic"


async def test_an_old_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "vteam.db"
    await asyncio.to_thread(command.upgrade, migrate.config(path), "0001")
    assert migrate.revision(path) == "0001"
    db = await open_database(path)
    await db.close()
    assert _version(path) == [(migrate.HEAD,)]


async def test_a_database_from_a_newer_vteam_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vteam.db"
    await asyncio.to_thread(migrate.upgrade, path)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(CommandError, match="9999"):
        await open_database(path)
    assert _version(path) == [("9999",)], "left as it was"


def test_a_file_that_is_no_database_is_left_to_alembic(tmp_path: Path) -> None:
    path = tmp_path / "vteam.db"
    path.write_bytes(b"not a database, but long enough to have a header of sixteen bytes and more" * 20)
    assert migrate.revision(path) is None
