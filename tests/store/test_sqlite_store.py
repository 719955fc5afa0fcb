"""SQLite-only behaviour of the store, outside the implementation-neutral contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from vteam.db import open_database
from vteam.errors import Expired, InvalidInput
from vteam.resources import AgenticSession, ObjectMeta, Project, SessionSpec
from vteam.store import SqliteStore


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close a watch or reader early; the Protocols promise only an AsyncIterator."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def _fifty_writes(store: SqliteStore) -> None:
    await store.create(Project(metadata=ObjectMeta(name="p")))
    await store.create(AgenticSession(metadata=ObjectMeta(name="s", namespace="p"), spec=SessionSpec(prompt="go")))
    for i in range(48):
        await store.patch_status(AgenticSession, "s", "p", {"message": f"step {i}"})


async def test_watch_from_compacted_version_raises_expired(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db, keep_changes=10)
    try:
        await _fifty_writes(store)

        watch = store.watch(AgenticSession, "p", resource_version="1")
        try:
            with pytest.raises(Expired):
                await asyncio.wait_for(anext(watch), timeout=5)
        finally:
            await aclose(watch)
    finally:
        await store.close()
        await db.close()


async def test_watch_from_fresh_list_still_works_after_compaction(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db, keep_changes=10)
    try:
        await _fifty_writes(store)
        listed = await store.list(AgenticSession, "p")

        watch = store.watch(AgenticSession, "p", resource_version=listed.resource_version)
        try:
            await store.patch_status(AgenticSession, "s", "p", {"message": "after compaction"})
            event = await asyncio.wait_for(anext(watch), timeout=5)
        finally:
            await aclose(watch)
    finally:
        await store.close()
        await db.close()

    assert event.type == "MODIFIED"
    assert event.object.status.message == "after compaction"


async def test_watch_with_non_numeric_version_raises_invalid_input(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db)
    try:
        watch = store.watch(AgenticSession, "p", resource_version="yesterday")
        try:
            with pytest.raises(InvalidInput, match="yesterday"):
                await asyncio.wait_for(anext(watch), timeout=5)
        finally:
            await aclose(watch)
    finally:
        await store.close()
        await db.close()


async def test_store_reopened_on_same_file_keeps_resources(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db)
    await store.create(Project(metadata=ObjectMeta(name="p")))
    created = await store.create(
        AgenticSession(metadata=ObjectMeta(name="s", namespace="p"), spec=SessionSpec(prompt="persist me"))
    )
    await store.close()
    await db.close()

    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db)
    try:
        assert await store.get(AgenticSession, "s", "p") == created
    finally:
        await store.close()
        await db.close()


async def test_watcher_overtaken_by_compaction_is_told_rather_than_silently_skipped(tmp_path: Path) -> None:
    # A watcher that falls behind while history is compacted must not just carry on from the
    # oldest change left: Kubernetes ends such a watch with 410 Gone so the client lists again.
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db, keep_changes=10)
    try:
        await store.create(Project(metadata=ObjectMeta(name="p")))
        await store.create(AgenticSession(metadata=ObjectMeta(name="s", namespace="p"), spec=SessionSpec(prompt="go")))
        listed = await store.list(AgenticSession, "p")
        watch = store.watch(AgenticSession, "p", resource_version=listed.resource_version)
        try:
            await store.patch_status(AgenticSession, "s", "p", {"message": "step 0"})
            first = await asyncio.wait_for(anext(watch), timeout=5)
            for i in range(1, 50):
                await store.patch_status(AgenticSession, "s", "p", {"message": f"step {i}"})

            seen = [first.object.status.message]
            try:
                while seen[-1] != "step 49":
                    event = await asyncio.wait_for(anext(watch), timeout=5)
                    seen.append(event.object.status.message)
            except Expired:
                return
        finally:
            await aclose(watch)
    finally:
        await store.close()
        await db.close()

    assert seen == [f"step {i}" for i in range(50)], "the watch skipped compacted changes without saying so"
