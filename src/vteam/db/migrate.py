"""Run Alembic migrations programmatically, so `vteam up` upgrades the database at start.

Alembic costs the server about 11 MiB for good once imported, so a database already at `HEAD` (every start
but the first after an upgrade) is recognized with the sqlite3 module instead, and Alembic is not imported.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0004"
"""The newest revision in `migrations/versions`; a unit test holds it to Alembic's own view of the head."""


def config(path: Path) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "vteam.db:migrations")
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    return cfg


def revision(path: Path) -> str | None:
    """The database's one Alembic revision; None for a new database, or anything else Alembic must judge."""
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def upgrade(path: Path) -> None:
    """Bring the schema to the head; Alembic runs (and refuses a revision it does not know) unless it is there."""
    if revision(path) == HEAD:
        return
    from alembic import command

    command.upgrade(config(path), "head")
