"""Group commit: one writer task runs every waiting write body on one connection, each in its own SAVEPOINT,
and commits them together, so a burst of writers costs one fsync instead of one each."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

MAX_BATCH = 256
"""Write bodies in one transaction at most; the rest wait for the next commit."""

_T = TypeVar("_T")
_writing: ContextVar[GroupWriter | None] = ContextVar("vteam_db_writing", default=None)


class NestedWrite(RuntimeError):
    """`begin()` inside a write body: the body holds the writer's turn, so the inner write could never run."""


class WriterConnection(AsyncConnection):
    """The writer's connection. A statement runs to its end even when its caller is cancelled (the
    cancellation is raised after it): SQLAlchemy would otherwise drop the connection, and with it the
    whole batch, instead of only that caller's savepoint."""

    async def execute(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> CursorResult[Any]:
        return await _to_the_end(super().execute(statement, parameters, execution_options=execution_options))

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> CursorResult[Any]:
        return await _to_the_end(super().exec_driver_sql(statement, parameters, execution_options))


async def _to_the_end(coro: Coroutine[Any, Any, _T]) -> _T:
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        raise


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark an outcome nobody may be left to read (its caller was cancelled) as read."""
    if not future.cancelled():
        future.exception()


class _Ticket:
    """One caller of `begin()`: handed the connection on its turn, says how its body ended, hears the commit."""

    def __init__(self, on_commit: Callable[[], None] | None) -> None:
        loop = asyncio.get_running_loop()
        self.on_commit = on_commit
        self.turn: asyncio.Future[AsyncConnection] = loop.create_future()
        self.finished: asyncio.Future[bool] = loop.create_future()
        self.committed: asyncio.Future[None] = loop.create_future()
        self.turn.add_done_callback(_retrieved)
        self.committed.add_done_callback(_retrieved)

    def refuse(self, exc: BaseException) -> None:
        error = exc if isinstance(exc, Exception) else RuntimeError("the database writer stopped")
        future = self.committed if self.turn.done() else self.turn
        if not future.done():
            future.set_exception(error)


class GroupWriter:
    """Queues write bodies; a writer task runs while any wait and exits when the queue is empty."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: deque[_Ticket] = deque()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None

    @asynccontextmanager
    async def begin(self, on_commit: Callable[[], None] | None = None) -> AsyncIterator[AsyncConnection]:
        if _writing.get() is self:
            raise NestedWrite("begin() inside a write body would wait for itself; do both writes in one body")
        ticket = _Ticket(on_commit)
        self._queue.append(ticket)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="vteam-db-writer")
        try:
            conn = await ticket.turn
        except asyncio.CancelledError:
            if not ticket.finished.done():
                ticket.finished.set_result(False)
            raise
        entered = _writing.set(self)
        try:
            yield conn
        except Exception:
            ticket.finished.set_result(False)
            with suppress(Exception):
                await asyncio.shield(ticket.committed)
            raise
        except BaseException:
            ticket.finished.set_result(False)
            raise
        finally:
            _writing.reset(entered)
        ticket.finished.set_result(True)
        await asyncio.shield(ticket.committed)

    async def close(self) -> None:
        """Wait until every queued write has been committed or refused, then close the writer connection."""
        while self._task is not None:
            await asyncio.wait([self._task])
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _run(self) -> None:
        """Commit batches until the queue is empty; the connection stays open for the next burst."""
        try:
            while self._queue:
                if self._conn is None:
                    try:
                        self._conn = await WriterConnection(self._engine).start()
                    except Exception as exc:
                        self._refuse_queued(exc)
                        return
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                try:
                    await self._commit(self._conn, batch)
                except Exception:
                    conn, self._conn = self._conn, None
                    with suppress(Exception):
                        await conn.close()
        except BaseException as exc:
            self._refuse_queued(exc)
            raise
        finally:
            self._task = None

    def _refuse_queued(self, exc: BaseException) -> None:
        for ticket in self._queue:
            ticket.refuse(exc)
        self._queue.clear()

    async def _commit(self, conn: AsyncConnection, batch: list[_Ticket]) -> None:
        """Run the batch's bodies in turn; a body's failure undoes its savepoint. When the transaction itself
        fails, every body that ran is refused with its error and those that did not wait for the next one."""
        done: list[_Ticket] = []
        undone: list[_Ticket] = []
        waiting = deque(batch)
        current: _Ticket | None = None
        try:
            async with conn.begin():
                while waiting:
                    ticket = waiting.popleft()
                    if ticket.turn.done():
                        continue
                    current = ticket
                    savepoint = await conn.begin_nested()
                    if ticket.turn.done():
                        await savepoint.rollback()
                    else:
                        ticket.turn.set_result(conn)
                        if await ticket.finished:
                            await savepoint.commit()
                            done.append(ticket)
                        else:
                            await savepoint.rollback()
                            undone.append(ticket)
                    current = None
        except BaseException as exc:
            ran = [*done, *undone, *([current] if current else [])]
            for ticket in ran:
                ticket.refuse(exc)
            if ran:
                self._queue.extendleft(reversed(waiting))
            else:
                for ticket in waiting:
                    ticket.refuse(exc)
            raise
        for ticket in undone:
            ticket.committed.set_result(None)
        woken: set[Callable[[], None]] = set()
        for ticket in done:
            ticket.committed.set_result(None)
            if ticket.on_commit is not None and ticket.on_commit not in woken:
                woken.add(ticket.on_commit)
                ticket.on_commit()
