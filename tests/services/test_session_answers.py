"""A session's answers are the session as stored: a session kept under older, looser rules (issue 14's response
models) still reads through every route that returns it, in the very shape the store holds."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.server import Server
from vteam.db import open_database
from vteam.resources import STORED, AgenticSession, Phase
from vteam.store import SqliteStore

pytestmark = pytest.mark.integration

OLD_URL = "https://olduser@github.com/o/r"
"""Accepted before the repository policy refused credentials in a URL; today a create body with it is a 422."""


async def _store_old_session(server: Server, project: str) -> AgenticSession:
    db = await open_database(server.home / "vteam.db")
    try:
        store = SqliteStore(db)
        body = {
            "metadata": {"name": "old", "namespace": project},
            "spec": {"prompt": "x", "repos": [{"input": {"url": OLD_URL}}]},
        }
        await store.create(AgenticSession.model_validate(body, context=STORED))
        await store.patch_status(AgenticSession, "old", project, {"phase": Phase.COMPLETED.value})
        return await store.get(AgenticSession, "old", project)
    finally:
        await db.close()


def test_a_session_stored_under_older_rules_still_reads(server: Server, api: httpx.Client, project: str) -> None:
    refused = api.post(
        f"/api/projects/{project}/agentic-sessions", json={"prompt": "x", "repos": [{"input": {"url": OLD_URL}}]}
    )
    assert refused.status_code == 422, refused.text
    stored = asyncio.run(_store_old_session(server, project)).wire()

    one = api.get(f"/api/projects/{project}/agentic-sessions/old")
    assert one.status_code == 200, one.text
    assert one.json() == stored

    page = api.get(f"/api/projects/{project}/agentic-sessions")
    assert page.status_code == 200, page.text
    assert page.json()["items"] == [stored]
    assert page.json()["metadata"]["continue"] is None
