"""The page of a session with 200 MB of output (issue 24): how long it takes, and that /readyz stays fast.

The output is written into the new server's database before it starts, through vTeam's own store and
event log (12,800 text deltas of 16 KiB in messages of 16), as a session stored before the storage cap
existed, or under a raised cap, would hold it. Running an agent that prints 200 MB would measure the runner.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from bench.server import Server
from bench.stats import Summary, summarize
from vteam.db import open_database
from vteam.events import Envelope
from vteam.events.sqlite import SqliteEventLog
from vteam.resources import AgenticSession, ObjectMeta, Phase, Project, ProjectSpec, SessionSpec, status_patch
from vteam.store import SqliteStore

PROJECT = "bench-big"
NAME = "big-output"
MESSAGES = 800
DELTAS = 16
DELTA = ("0123456789abcdef" * 64 + "\n") * 16
"""About 16 KiB of text per event; MESSAGES * DELTAS of them make about 200 MiB."""
TS = "2026-01-01T00:00:00.000000Z"


def seed(home: Path) -> None:
    asyncio.run(_seed(home))


async def _seed(home: Path) -> None:
    db = await open_database(home / "vteam.db")
    store = SqliteStore(db)
    log = SqliteEventLog(db)
    try:
        await store.create(Project(metadata=ObjectMeta(name=PROJECT), spec=ProjectSpec(display_name="Big output")))
        created = await store.create(
            AgenticSession(
                metadata=ObjectMeta(name=NAME, namespace=PROJECT),
                spec=SessionSpec.model_validate({"prompt": "print a lot", "framework": "script"}),
            )
        )
        await store.patch_status(
            AgenticSession, NAME, PROJECT, status_patch(phase=Phase.COMPLETED, message="completed")
        )
        uid = created.metadata.uid or ""
        seq = 0
        for m in range(MESSAGES):
            batch: list[Envelope] = []
            frames: list[dict[str, Any]] = [{"type": "TEXT_MESSAGE_START", "messageId": f"m{m}", "role": "assistant"}]
            frames += [{"type": "TEXT_MESSAGE_CONTENT", "messageId": f"m{m}", "delta": DELTA}] * DELTAS
            frames.append({"type": "TEXT_MESSAGE_END", "messageId": f"m{m}"})
            for data in frames:
                seq += 1
                batch.append(Envelope(seq=seq, ts=TS, type=str(data["type"]), data=data))
            await log.append_runner(uid, batch)
        final = {"type": "CUSTOM", "name": "vteam.phase", "value": {"phase": "Completed", "final": True}}
        await log.append(uid, "vteam.phase", final)
    finally:
        await db.close()


async def measure(server: Server, requests: int = 10) -> tuple[list[Summary], dict[str, float]]:
    """The page alone, one at a time; then /readyz while four clients load the page over and over."""
    headers = {"Authorization": f"Bearer {server.token}"}
    path = f"/projects/{PROJECT}/sessions/{NAME}"
    loop = asyncio.get_running_loop()
    figures: dict[str, float] = {"stored MiB": round(MESSAGES * DELTAS * len(DELTA) / 2**20, 1)}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as http:
        began = loop.time()
        first = await http.get(path)
        first.raise_for_status()
        figures["page first render ms"] = round((loop.time() - began) * 1000, 1)
        figures["page bytes"] = len(first.content)
        pages = []
        for _ in range(requests):
            began = loop.time()
            (await http.get(path)).raise_for_status()
            pages.append((loop.time() - began) * 1000)
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                (await http.get(path)).raise_for_status()

        loaders = [asyncio.create_task(load()) for _ in range(4)]
        ready = []
        for _ in range(40):
            began = loop.time()
            (await http.get("/readyz")).raise_for_status()
            ready.append((loop.time() - began) * 1000)
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*loaders)
    rows = [
        summarize("big page: 200 MB session page", pages),
        summarize("big page: /readyz under 4 page loaders", ready),
    ]
    return rows, figures
