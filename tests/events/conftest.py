"""Event fixtures: the event log on a real SQLite file and on S3 (moto's server), and an in-process hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.moto_s3 import moto_endpoint, s3_bucket, s3_client  # noqa: F401 - fixtures
from vteam.db import Database, open_database
from vteam.events import EventLog, Hub
from vteam.events.s3 import S3EventLog
from vteam.events.sqlite import SqliteEventLog


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "events.sqlite", synchronous="NORMAL")
    yield database
    await database.close()


async def anywhere(uid: str) -> tuple[str, str]:
    """The platform's answer when every uid is a session: one project, a name per uid."""
    return "demo", f"session-{uid}"


@pytest.fixture(params=["sqlite", "s3"])
def log(request: pytest.FixtureRequest) -> EventLog:
    if request.param == "sqlite":
        return SqliteEventLog(request.getfixturevalue("db"))
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3EventLog(s3_client(endpoint), bucket=request.getfixturevalue("s3_bucket"), locate=anywhere)


@pytest.fixture
def hub() -> Hub:
    return Hub()
