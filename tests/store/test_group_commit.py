"""Group commit in the embedded database: the writes waiting behind one body share its transaction, yet each
fails, is cancelled and is answered on its own; reads never wait for the writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from vteam.db import Database, NestedWrite, open_database
from vteam.db.schema import users
from vteam.resources import AgenticSession, ObjectMeta, Project, SessionSpec
from vteam.store import SqliteStore


class Refused(Exception):
    """A write body's own failure."""


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "db.sqlite")
    yield database
    await database.close()


async def add_user(db: Database, name: str, *, fail: bool = False) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(users).values(name=name, display_name="", admin=False, created="now"))
        if fail:
            raise Refused(name)


async def stored_users(path: Path) -> set[str]:
    """What a fresh process finds on disk."""
    reopened = await open_database(path)
    try:
        async with reopened.read() as conn:
            return {row[0] for row in await conn.execute(select(users.c.name))}
    finally:
        await reopened.close()


class Gate:
    """A write body that holds the writer's turn until opened, so the writes queued meanwhile form the next
    batch, together."""

    def __init__(self, db: Database, name: str = "gate") -> None:
        self.inside = asyncio.Event()
        self.open = asyncio.Event()
        self.task = asyncio.create_task(self._hold(db, name))

    async def _hold(self, db: Database, name: str) -> None:
        async with db.begin() as conn:
            await conn.execute(insert(users).values(name=name, display_name="", admin=False, created="now"))
            self.inside.set()
            await self.open.wait()


async def queued(*tasks: asyncio.Task[None]) -> None:
    """Let freshly made tasks run up to their place in the writer's queue."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)


async def test_a_failed_body_undoes_only_its_own_write_in_a_shared_batch(db: Database) -> None:
    gate = Gate(db)
    await gate.inside.wait()
    writers = {f"u{i}": asyncio.create_task(add_user(db, f"u{i}", fail=i % 4 == 0)) for i in range(40)}
    await queued(*writers.values())
    gate.open.set()
    outcomes = await asyncio.gather(gate.task, *writers.values(), return_exceptions=True)
    await db.close()

    failed = {name for name, outcome in zip(writers, outcomes[1:], strict=True) if isinstance(outcome, Refused)}
    assert outcomes[0] is None
    assert failed == {f"u{i}" for i in range(0, 40, 4)}
    assert all(outcome is None for name, outcome in zip(writers, outcomes[1:], strict=True) if name not in failed)
    assert await stored_users(db.path) == {"gate"} | (set(writers) - failed)


async def test_a_write_is_visible_to_readers_once_begin_returned_and_not_before(db: Database) -> None:
    gate = Gate(db, "held")
    await gate.inside.wait()
    async with db.read() as conn:
        while_held = {row[0] for row in await conn.execute(select(users.c.name))}
    gate.open.set()
    await gate.task
    async with db.read() as conn:
        after = {row[0] for row in await conn.execute(select(users.c.name))}

    assert while_held == set()
    assert after == {"held"}


async def test_a_writer_cancelled_while_queued_writes_nothing_and_the_batch_goes_on(db: Database) -> None:
    gate = Gate(db)
    await gate.inside.wait()
    before = asyncio.create_task(add_user(db, "before"))
    doomed = asyncio.create_task(add_user(db, "doomed"))
    after = asyncio.create_task(add_user(db, "after"))
    await queued(before, doomed, after)
    doomed.cancel()
    gate.open.set()
    await asyncio.gather(gate.task, before, after)

    assert doomed.cancelled()
    await db.close()
    assert await stored_users(db.path) == {"gate", "before", "after"}


async def test_a_writer_cancelled_inside_its_body_rolls_back_only_its_savepoint(db: Database) -> None:
    first = asyncio.create_task(add_user(db, "first"))
    await first
    doomed = Gate(db, "doomed")
    await doomed.inside.wait()
    after = asyncio.create_task(add_user(db, "after"))
    await queued(after)
    doomed.task.cancel()
    await after

    with pytest.raises(asyncio.CancelledError):
        await doomed.task
    await db.close()
    assert await stored_users(db.path) == {"first", "after"}


async def test_a_writer_cancelled_mid_statement_leaves_the_bodies_before_it_in_its_batch_durable(
    db: Database,
) -> None:
    looping = asyncio.Event()

    async def endless() -> None:
        async with db.begin() as conn:
            for i in range(1_000_000):
                await conn.execute(insert(users).values(name=f"x{i}", display_name="", admin=False, created="now"))
                looping.set()

    gate = Gate(db)
    await gate.inside.wait()
    before = asyncio.create_task(add_user(db, "before"))
    doomed = asyncio.create_task(endless())
    after = asyncio.create_task(add_user(db, "after"))
    await queued(before, doomed, after)
    gate.open.set()
    await looping.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(gate.task, before, after)

    assert doomed.cancelled()
    await db.close()
    assert await stored_users(db.path) == {"gate", "before", "after"}


async def test_a_failed_commit_fails_every_body_of_its_batch_and_the_next_batch_commits(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)"))
        await conn.execute(
            text("CREATE TEMP TABLE child (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
        )

    async def orphan() -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO child (parent) VALUES (42)"))

    gate = Gate(db)
    await gate.inside.wait()
    batch = [asyncio.create_task(add_user(db, "sibling")), asyncio.create_task(orphan())]
    await queued(*batch)
    gate.open.set()
    outcomes = await asyncio.gather(gate.task, *batch, return_exceptions=True)
    await add_user(db, "later")

    assert outcomes[0] is None
    assert [type(outcome) for outcome in outcomes[1:]] == [IntegrityError] * 2
    await db.close()
    assert await stored_users(db.path) == {"gate", "later"}


async def test_begin_inside_a_write_body_raises_instead_of_waiting_for_itself(db: Database) -> None:
    with pytest.raises(NestedWrite):
        async with db.begin():
            await add_user(db, "inner")
    await add_user(db, "next")

    await db.close()
    assert await stored_users(db.path) == {"next"}


async def test_resource_versions_follow_commit_order_under_concurrent_writers(db: Database) -> None:
    store = SqliteStore(db)
    try:
        await store.create(Project(metadata=ObjectMeta(name="p")))
        start = int(await store.current_version())
        watch = store.watch(AgenticSession, "p", resource_version=str(start))

        async def create_and_patch(i: int) -> list[int]:
            made = await store.create(
                AgenticSession(metadata=ObjectMeta(name=f"s{i}", namespace="p"), spec=SessionSpec(prompt="go"))
            )
            patched = await store.patch_status(AgenticSession, f"s{i}", "p", {"message": "seen"})
            return [int(made.metadata.resource_version or 0), int(patched.metadata.resource_version or 0)]

        answered = await asyncio.gather(*(create_and_patch(i) for i in range(60)))
        seen: list[int] = []
        try:
            while len(seen) < 120:
                event = await asyncio.wait_for(anext(watch), timeout=10)
                seen.append(int(event.object.metadata.resource_version or 0))
        finally:
            await watch.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()

    assert all(made < patched for made, patched in answered)
    assert seen == list(range(start + 1, start + 121))
    assert sorted(rv for pair in answered for rv in pair) == seen
