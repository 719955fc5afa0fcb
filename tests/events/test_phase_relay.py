"""PhaseRelay: in cluster mode the operator (and the backend, for a stop) moves phases and the relay, the one
writer of phase events there, announces each change once.

Runs on the real SQLite store and event log: the relay only needs a ResourceStore and an EventLog.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vteam.controller import StatusOnly
from vteam.controller.relay import PhaseRelay
from vteam.db import Database
from vteam.events import Envelope, EventLog, Hub
from vteam.events.sqlite import SqliteEventLog
from vteam.resources import AgenticSession, ObjectMeta, Phase, Project, SessionSpec, status_patch
from vteam.store import SqliteStore

PROJECT = "team"


@pytest.fixture
async def store(db: Database) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db)
    await store.create(Project(metadata=ObjectMeta(name=PROJECT)))
    yield store
    await store.close()


async def new_session(store: SqliteStore, name: str) -> AgenticSession:
    return await store.create(
        AgenticSession(metadata=ObjectMeta(name=name, namespace=PROJECT), spec=SessionSpec(prompt="p"))
    )


async def operator_moves(store: SqliteStore, name: str, phase: Phase, message: str | None = None) -> None:
    """What the operator does: a status write in the cluster, no event."""
    fields: dict[str, object] = {"phase": phase}
    if message:
        fields["message"] = message
    await store.patch_status(AgenticSession, name, PROJECT, status_patch(**fields))


async def phases(log: EventLog, uid: str, count: int, timeout: float = 5.0) -> list[dict[str, object]]:
    """The `vteam.phase` values stored for a session, once `count` are there."""
    async with asyncio.timeout(timeout):
        while True:
            stored = [env.data["value"] for env in await log.read(uid) if env.type == "vteam.phase"]
            if len(stored) >= count:
                return stored
            await asyncio.sleep(0.02)


async def test_operator_phase_changes_become_events_in_order(db: Database, store: SqliteStore) -> None:
    log = SqliteEventLog(db)
    relay = PhaseRelay(store, log, Hub())
    session = await new_session(store, "s1")
    await relay.start()
    try:
        await operator_moves(store, "s1", Phase.CREATING)
        await operator_moves(store, "s1", Phase.FAILED, "runner OOMKilled")

        stored = await phases(log, session.metadata.uid or "", 2)
    finally:
        await relay.stop()

    assert [(v["phase"], v["previous"], v["final"]) for v in stored] == [
        ("Creating", "Pending", False),
        ("Failed", "Creating", True),
    ]
    assert stored[1]["message"] == "runner OOMKilled"


async def test_a_phase_the_backend_wrote_itself_is_announced_once(db: Database, store: SqliteStore) -> None:
    log = SqliteEventLog(db)
    hub = Hub()
    relay = PhaseRelay(store, log, hub)
    session = await new_session(store, "s2")
    await operator_moves(store, "s2", Phase.RUNNING)
    await relay.start()
    try:
        await StatusOnly(store)(PROJECT, "s2", Phase.STOPPING, message="stopped on request")
        await operator_moves(store, "s2", Phase.STOPPED, "stopped on request")
        stored = await phases(log, session.metadata.uid or "", 2)
        await asyncio.sleep(0.2)
        again = [env for env in await log.read(session.metadata.uid or "") if env.type == "vteam.phase"]
    finally:
        await relay.stop()

    assert [v["phase"] for v in stored] == ["Stopping", "Stopped"]
    assert len(again) == 2


async def test_live_readers_get_the_announcement_from_the_hub(db: Database, store: SqliteStore) -> None:
    log = SqliteEventLog(db)
    hub = Hub()
    relay = PhaseRelay(store, log, hub)
    session = await new_session(store, "s3")
    await relay.start()
    try:
        async with hub.subscribe(session.metadata.uid or "") as queue:
            await operator_moves(store, "s3", Phase.COMPLETED, "done")
            envelope: Envelope = await asyncio.wait_for(queue.get(), 5)
    finally:
        await relay.stop()

    assert envelope.type == "vteam.phase"
    assert envelope.data["value"]["final"] is True


async def test_deleting_a_session_removes_its_events(db: Database, store: SqliteStore) -> None:
    log = SqliteEventLog(db)
    relay = PhaseRelay(store, log, Hub())
    session = await new_session(store, "s4")
    uid = session.metadata.uid or ""
    await relay.start()
    try:
        await operator_moves(store, "s4", Phase.CREATING)
        await phases(log, uid, 1)
        await store.delete(AgenticSession, "s4", PROJECT)
        async with asyncio.timeout(5):
            while await log.read(uid):
                await asyncio.sleep(0.02)
    finally:
        await relay.stop()

    assert uid not in relay.announced


async def test_a_stale_phase_behind_the_announced_one_is_not_announced(db: Database, store: SqliteStore) -> None:
    log = SqliteEventLog(db)
    hub = Hub()
    relay = PhaseRelay(store, log, hub)
    session = await new_session(store, "s5")
    uid = session.metadata.uid or ""
    await operator_moves(store, "s5", Phase.CREATING)
    await operator_moves(store, "s5", Phase.RUNNING)
    await relay.announce(await store.get(AgenticSession, "s5", PROJECT))

    await relay.announce(
        session.model_copy(update={"status": session.status.model_copy(update={"phase": Phase.CREATING})})
    )

    assert [env.data["value"]["phase"] for env in await log.read(uid)] == ["Running"]
