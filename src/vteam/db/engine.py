"""Open the SQLite database with WAL and migrate it, and serialise writers inside the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vteam.db import migrate


@dataclass
class Database:
    """One engine; writes go through `begin()`, which holds a lock so SQLite never sees two writers."""

    engine: AsyncEngine
    path: Path
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database cannot be read."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()


async def open_database(path: Path, *, synchronous: str = "FULL") -> Database:
    """Create or upgrade the schema (Alembic, in a thread), then open the async engine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate.upgrade, path)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=8, max_overflow=8)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return Database(engine=engine, path=path)
