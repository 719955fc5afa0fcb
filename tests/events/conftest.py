"""Event fixtures: the event log on a real SQLite file and on S3 (moto's server), and an in-process hub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.events.s3_logs import place
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


@pytest.fixture
async def s3_logs(no_leftover_tasks: None) -> AsyncIterator[list[S3EventLog]]:
    """The S3 logs a test made; each lets its compactions finish before the check for leftover tasks runs."""
    made: list[S3EventLog] = []
    yield made
    for each in made:
        await each.settle()


@pytest.fixture(params=["sqlite", "s3"])
def log(request: pytest.FixtureRequest) -> EventLog:
    if request.param == "sqlite":
        return SqliteEventLog(request.getfixturevalue("db"))
    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = S3EventLog(s3_client(endpoint), bucket=request.getfixturevalue("s3_bucket"), locate=anywhere)
    request.getfixturevalue("s3_logs").append(s3)
    return s3


@pytest.fixture
def make_log(request: pytest.FixtureRequest, s3_logs: list[S3EventLog]) -> Callable[..., S3EventLog]:
    """A new S3EventLog on the test's bucket, as a restarted backend would build it."""
    endpoint, bucket = request.getfixturevalue("moto_endpoint"), request.getfixturevalue("s3_bucket")

    def make(client: Any = None, **options: Any) -> S3EventLog:
        options.setdefault("locate", place)
        s3_logs.append(S3EventLog(client or s3_client(endpoint), bucket=bucket, **options))
        return s3_logs[-1]

    return make


@pytest.fixture
def hub() -> Hub:
    return Hub()
