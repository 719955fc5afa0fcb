"""The web UI's pages with 1,000 sessions in a project: how long the server takes to render each one.

The sessions are written into the new server's database before it starts, through vTeam's own
store, finished and with realistic status (repos, diffstats, pull requests, cost). Running 1,000
agent sessions for real would take minutes and measure the runners, not the pages.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.server import Server
from bench.stats import Summary, summarize
from vteam.db import open_database
from vteam.resources import (
    CREATED_BY,
    AgenticSession,
    ObjectMeta,
    Phase,
    Project,
    ProjectSpec,
    SessionSpec,
    status_patch,
)
from vteam.store import SqliteStore

PROJECT = "bench-ui"
SESSIONS = 1000
PHASES = [Phase.COMPLETED, Phase.COMPLETED, Phase.COMPLETED, Phase.FAILED, Phase.STOPPED]


def seed(home: Path) -> None:
    asyncio.run(_seed(home))


async def _seed(home: Path) -> None:
    db = await open_database(home / "vteam.db")
    store = SqliteStore(db)
    try:
        await store.create(Project(metadata=ObjectMeta(name=PROJECT), spec=ProjectSpec(display_name="UI benchmark")))
        began = datetime.now(UTC) - timedelta(days=3)
        for i in range(SESSIONS):
            name = f"s-{i:04d}"
            url = f"https://github.com/acme/repo-{i % 7}.git"
            session = AgenticSession(
                metadata=ObjectMeta(
                    name=name,
                    namespace=PROJECT,
                    labels={"team": f"t{i % 4}"},
                    annotations={CREATED_BY: f"user-{i % 9}"},
                ),
                spec=SessionSpec.model_validate(
                    {
                        "prompt": f"Fix issue #{i}: update the dependency and its call sites",
                        "framework": "script",
                        "repos": [{"input": {"url": url}, "output": {"url": url, "createPullRequest": True}}],
                    }
                ),
            )
            await store.create(session)
            start = began + timedelta(minutes=i * 4)
            repo = {
                "url": url,
                "branch": f"vteam/{name}",
                "baseBranch": "main",
                "pushed": True,
                "commitSha": f"{i:040x}",
                "diffstat": {"filesChanged": 2, "insertions": 10 + i % 30, "deletions": i % 7},
                "pullRequestUrl": f"https://github.com/acme/repo-{i % 7}/pull/{i + 1}",
                "pullRequest": {
                    "url": f"https://github.com/acme/repo-{i % 7}/pull/{i + 1}",
                    "number": i + 1,
                    "forge": "github",
                    "repo": f"acme/repo-{i % 7}",
                    "head": f"vteam/{name}",
                    "base": "main",
                    "state": "open",
                },
            }
            await store.patch_status(
                AgenticSession,
                name,
                PROJECT,
                status_patch(
                    phase=PHASES[i % len(PHASES)],
                    start_time=start,
                    completion_time=start + timedelta(minutes=3),
                    message="completed",
                    result={"text": "Done.", "turns": 3, "costUsd": 0.0123 + i / 10_000},
                    repos=[repo],
                ),
            )
    finally:
        await db.close()


async def measure(server: Server, requests: int = 60) -> tuple[list[Summary], dict[str, float]]:
    """Each page `requests` times, one client, one at a time: server render time as a user meets it."""
    pages = {
        "projects": "/projects",
        "project sessions (1,000; page 1)": f"/projects/{PROJECT}",
        "sessions table partial (live refresh)": f"/projects/{PROJECT}/sessions-table",
        "session page": f"/projects/{PROJECT}/sessions/s-0500",
        "project settings": f"/projects/{PROJECT}/settings",
    }
    rows: list[Summary] = []
    figures: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        for label, path in pages.items():
            began = asyncio.get_running_loop().time()
            first = await http.get(path)
            figures[f"{label} first render ms"] = round((asyncio.get_running_loop().time() - began) * 1000, 1)
            if first.status_code != 200:
                figures[f"{label} status"] = first.status_code
                continue
            samples = []
            for _ in range(requests):
                began = asyncio.get_running_loop().time()
                response = await http.get(path)
                samples.append((asyncio.get_running_loop().time() - began) * 1000)
                response.raise_for_status()
            rows.append(summarize(f"UI: {label}", samples))
            figures[f"{label} bytes"] = len(first.content)
        changed = await _after_changes(http, requests // 3)
        rows.append(summarize("UI: project sessions, right after a store change", changed))
    return rows, figures


async def _after_changes(http: httpx.AsyncClient, count: int) -> list[float]:
    """The sessions page when the store has just changed, so its cached listing must be brought up to date."""
    loop = asyncio.get_running_loop()
    samples = []
    for i in range(count):
        (await http.patch(f"/api/projects/{PROJECT}", json={"description": f"change {i}"})).raise_for_status()
        began = loop.time()
        (await http.get(f"/projects/{PROJECT}")).raise_for_status()
        samples.append((loop.time() - began) * 1000)
    return samples
