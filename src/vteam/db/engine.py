"""Open the SQLite database with WAL and migrate it: one writer connection behind group commit, and a small
pool of read-only connections that never wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vteam.db import migrate
from vteam.db.writer import GroupWriter

Synchronous = Literal["FULL", "NORMAL"]
READERS = 4
"""Read connections kept open; as many again may open under load."""


@dataclass
class Database:
    """Writes go through `begin()` (group commit, `GroupWriter`); reads through `read()`, on WAL readers."""

    writer_engine: AsyncEngine
    reader_engine: AsyncEngine
    path: Path
    writer: GroupWriter

    @asynccontextmanager
    async def begin(self, *, on_commit: Callable[[], None] | None = None) -> AsyncIterator[AsyncConnection]:
        """A write body: it runs alone on the writer connection inside its own savepoint and may only touch
        the database (no other awaits; a `begin()` inside raises `NestedWrite`). An error undoes this body
        only and is raised here once its batch is over; on success this returns once the batch's COMMIT is
        durable, after `on_commit` ran. A failed COMMIT is raised to every body of its batch."""
        async with self.writer.begin(on_commit) as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection of its own: it sees every write whose `begin()` returned."""
        async with self.reader_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database cannot be read."""
        async with self.reader_engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.writer.close()
        await self.writer_engine.dispose()
        await self.reader_engine.dispose()


def _pragmas(engine: AsyncEngine, synchronous: Synchronous, *, query_only: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        if query_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()


def _writer_engine(url: str, synchronous: Synchronous) -> AsyncEngine:
    """One connection; SQLAlchemy, not the sqlite3 module, says BEGIN, so savepoints nest in the batch."""
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    _pragmas(engine, synchronous, query_only=False)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def open_database(path: Path, *, synchronous: Synchronous = "FULL") -> Database:
    """Create or upgrade the schema (`migrate`, in a thread), then open the writer and the readers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate.upgrade, path)
    url = f"sqlite+aiosqlite:///{path}"
    writer_engine = _writer_engine(url, synchronous)
    reader_engine = create_async_engine(url, pool_size=READERS, max_overflow=READERS)
    _pragmas(reader_engine, synchronous, query_only=True)
    return Database(
        writer_engine=writer_engine, reader_engine=reader_engine, path=path, writer=GroupWriter(writer_engine)
    )
