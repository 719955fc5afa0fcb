"""ResourceStore fixtures: one `store` per implementation, so the contract suite runs against each.

To run the contract against another implementation (a Kubernetes one, say), add one entry to
IMPLEMENTATIONS: a function that takes pytest's tmp_path and returns an async context manager
yielding a ready store, and cleans up after it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from tests.support.tasks import no_leftover_tasks  # noqa: F401 - autouse fixture
from vteam.db import open_database
from vteam.store import ResourceStore, SqliteStore


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[ResourceStore]:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db)
    try:
        yield store
    finally:
        await store.close()
        await db.close()


IMPLEMENTATIONS: dict[str, Callable[[Path], AbstractAsyncContextManager[ResourceStore]]] = {
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResourceStore]:
    async with IMPLEMENTATIONS[request.param](tmp_path) as impl:
        yield impl


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that cannot collide with another test's, should a backend be shared between tests."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
