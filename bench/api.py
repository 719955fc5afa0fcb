"""The few API calls the benchmark makes, on plain httpx so that what is timed is the HTTP round trip."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

FINAL_PHASES = frozenset({"Completed", "Failed", "Stopped", "TimedOut"})


def sessions_path(project: str) -> str:
    return f"/api/projects/{project}/agentic-sessions"


def parse_ts(ts: str) -> float:
    """Envelope timestamps are ISO-8601 UTC with a trailing Z; as epoch seconds they compare with time.time()."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def create_project(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/api/projects", json={"name": name})
    response.raise_for_status()


async def create_session(http: httpx.AsyncClient, project: str, prompt: str, name: str | None = None) -> str:
    """Create a `script` session with no repos; returns its name."""
    body: dict[str, Any] = {"prompt": prompt, "framework": "script", "repos": []}
    if name:
        body["name"] = name
    response = await http.post(sessions_path(project), json=body)
    response.raise_for_status()
    return str(response.json()["metadata"]["name"])


async def phases(http: httpx.AsyncClient, project: str) -> dict[str, str]:
    response = await http.get(sessions_path(project))
    response.raise_for_status()
    return {s["metadata"]["name"]: s.get("status", {}).get("phase", "") for s in response.json()["items"]}


async def wait_all_ended(http: httpx.AsyncClient, project: str, *, within: float, poll: float = 0.5) -> dict[str, str]:
    """Poll the list until every session is in a final phase; the next benchmark must start on a quiet server."""
    deadline = time.monotonic() + within
    while True:
        current = await phases(http, project)
        if all(p in FINAL_PHASES for p in current.values()):
            return current
        if time.monotonic() > deadline:
            open_ = sum(p not in FINAL_PHASES for p in current.values())
            raise TimeoutError(f"{open_} sessions in {project!r} had not ended after {within} s")
        await asyncio.sleep(poll)


@dataclass(frozen=True)
class Received:
    """An envelope and the wall-clock time its `data:` line reached the reader."""

    at: float
    envelope: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.envelope.get("type", ""))

    @property
    def ts(self) -> float:
        return parse_ts(str(self.envelope["ts"]))

    @property
    def phase(self) -> str | None:
        if self.type != "vteam.phase":
            return None
        return str((self.envelope.get("data") or {}).get("value", {}).get("phase"))


async def follow(http: httpx.AsyncClient, project: str, name: str) -> AsyncIterator[Received]:
    """SSE from seq 0 until the server ends the stream (after the final phase event).

    The receive time is taken as soon as the line is parsed out of the socket, before JSON decoding.
    """
    path = f"{sessions_path(project)}/{name}/events"
    timeout = httpx.Timeout(30.0, read=None)
    async with http.stream("GET", path, params={"after": 0}, timeout=timeout) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                at = time.time()
                yield Received(at, json.loads(line[5:]))


async def collect(http: httpx.AsyncClient, project: str, name: str, *, within: float) -> list[Received]:
    """Every envelope of a session, read live; bounded so a stuck session fails the run instead of hanging it."""

    async def read() -> list[Received]:
        return [r async for r in follow(http, project, name)]

    return await asyncio.wait_for(read(), within)


async def stored(http: httpx.AsyncClient, project: str, name: str, *, after: int = 0) -> list[dict[str, Any]]:
    """The session's stored events after `after`, read once (`follow=false`), not waited for."""
    path = f"{sessions_path(project)}/{name}/events"
    response = await http.get(path, params={"after": after, "follow": "false"})
    response.raise_for_status()
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def phase_times(envelopes: list[dict[str, Any]]) -> dict[str, float]:
    """When each phase was first stored (the server stamps `vteam.phase` events), as epoch seconds."""
    times: dict[str, float] = {}
    for env in envelopes:
        if env.get("type") == "vteam.phase":
            phase = str((env.get("data") or {}).get("value", {}).get("phase"))
            times.setdefault(phase, parse_ts(str(env["ts"])))
    return times
