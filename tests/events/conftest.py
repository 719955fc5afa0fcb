"""Event fixtures: a real SQLite event log in a temp file, and an in-process hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.tasks import no_leftover_tasks  # noqa: F401 - autouse fixture
from vteam.db import Database, open_database
from vteam.events import Hub
from vteam.events.sqlite import SqliteEventLog


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "events.sqlite", synchronous="NORMAL")
    yield database
    await database.close()


@pytest.fixture
def log(db: Database) -> SqliteEventLog:
    return SqliteEventLog(db)


@pytest.fixture
def hub() -> Hub:
    return Hub()
