"""Durable event ingest: many sessions printing at once, how fast their events are stored, and a reader meanwhile.

The `script` framework turns each read of the agent's output pipe (up to 16 KiB) into one event, so a bare
`seq 1 2000` would arrive as a handful of large events. Each line is therefore followed by a short pause
(`read -t` on a pipe nobody writes, a bash builtin, so no process per line): as long as its runner keeps up,
each line is one event; a runner that falls behind reads several lines as one, and the figures count the
events as stored. All scripts wait for a go file in their HOME, written once every session is Running, so the
runners' start is not part of the window.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import api
from bench.scenarios import Config, Outcome, client, timed, wait_quiet
from bench.server import Server
from bench.stats import Value, summarize

PROJECT = "bench-ingest"
GO = "bench-go"
READ_EVERY = 0.02
"""The readers' pause between requests: a page polling often, not a client that takes a core for itself."""
CONTENT = "TEXT_MESSAGE_CONTENT"


def script(lines: int, pause_ms: float) -> str:
    """Wait for the go file, then print `line 1` … `line N`, pausing after each line (0: no pause)."""
    if pause_ms > 0:
        emit = f'for i in $(seq 1 {lines}); do echo "line $i"; read -t {pause_ms / 1000:.6f} -u 3; done'
    else:
        emit = f"seq -f 'line %g' 1 {lines}"
    return "\n".join(
        [
            "exec 3<> <(:)",
            f'while [ ! -e "$HOME/{GO}" ]; do read -t 0.01 -u 3; done',
            emit,
            "exit 0",  # the last `read -t` timed out, which is not the script failing
        ]
    )


async def create_all(
    server: Server, project: str, prompt: str, count: int, *, name_from: int = 0, clients: int = 50
) -> list[str]:
    """`count` sessions created by up to `clients` concurrent clients, named s-<index> from `name_from` on."""
    names: list[str] = []
    https = [client(server) for _ in range(min(clients, count))]
    queue = list(range(name_from, name_from + count))

    async def worker(http: httpx.AsyncClient) -> None:
        while queue:
            index = queue.pop(0)
            names.append(await api.create_session(http, project, prompt, name=f"s-{index:04d}"))

    try:
        await asyncio.gather(*(worker(http) for http in https))
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    return sorted(names)


async def wait_phase(http: httpx.AsyncClient, project: str, phase: str, *, within: float, poll: float = 0.5) -> None:
    """Until every session of the project is in `phase`; one that ended instead fails the benchmark."""
    deadline = time.monotonic() + within
    while True:
        current = await api.phases(http, project)
        if ended := {n: p for n, p in current.items() if p in api.FINAL_PHASES and p != phase}:
            raise RuntimeError(f"sessions ended before reaching {phase}: {dict(Counter(ended.values()))}")
        if all(p == phase for p in current.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all sessions {phase} after {within} s: {dict(Counter(current.values()))}")
        await asyncio.sleep(poll)


def agent_home(server: Server, project: str, name: str) -> Path:
    """The session's HOME folder, which its sandbox binds at the same path (workspaces/<project>/<name>-<uid>)."""
    found = sorted((server.home / "data" / "workspaces" / project).glob(f"{name}-*/home"))
    if not found:
        raise FileNotFoundError(f"no workspace HOME for {project}/{name}")
    return found[0]


async def _read_session(server: Server, path: str, stop: asyncio.Event) -> list[float]:
    samples: list[float] = []

    async def get(http: httpx.AsyncClient) -> None:
        (await http.get(path)).raise_for_status()

    async with client(server) as http:
        await get(http)
        while not stop.is_set():
            samples.append(await timed(get(http)))
            await asyncio.sleep(READ_EVERY)
    return samples


async def _read_tail(server: Server, project: str, name: str, stop: asyncio.Event) -> list[float]:
    """What a page following one session asks again and again: the events stored since the last answer."""
    samples: list[float] = []
    after = 0
    async with client(server) as http:
        while not stop.is_set():
            began = time.perf_counter()
            envelopes = await api.stored(http, project, name, after=after)
            samples.append((time.perf_counter() - began) * 1000)
            after = int(envelopes[-1]["seq"]) if envelopes else after
            await asyncio.sleep(READ_EVERY)
    return samples


async def _wait_ended(http: httpx.AsyncClient, project: str, within: float) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        current = await api.phases(http, project)
        if all(p in api.FINAL_PHASES for p in current.values()):
            return current
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest sessions not ended after {within} s: {dict(Counter(current.values()))}")
        await asyncio.sleep(0.25)


def _session_figures(envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    content = [e for e in envelopes if e.get("type") == CONTENT]
    text = "".join(str((e.get("data") or {}).get("delta", "")) for e in content)
    ended = [t for p, t in api.phase_times(envelopes).items() if p in api.FINAL_PHASES]
    return {
        "events": len(envelopes),
        "content_events": len(content),
        "lines": sum(1 for line in text.splitlines() if line.startswith("line ")),
        "first_emit": api.parse_ts(str(content[0]["ts"])) if content else None,
        "last_emit": api.parse_ts(str(content[-1]["ts"])) if content else None,
        "ended": min(ended) if ended else None,
    }


async def measure(server: Server, cfg: Config) -> Outcome:
    """Create the sessions, wait until all run, release them at once, and follow them to their end."""
    n, lines = cfg.ingest_sessions, cfg.ingest_events
    what = f"{n} sessions, {lines} lines each"
    async with client(server) as http:
        await api.create_project(http, PROJECT)
        names = await create_all(server, PROJECT, script(lines, cfg.ingest_pause_ms), n)
        await wait_phase(http, PROJECT, "Running", within=60 + n)
        homes = [agent_home(server, PROJECT, name) for name in names]
        stop = asyncio.Event()
        path = f"{api.sessions_path(PROJECT)}/{names[0]}"
        readers = [
            asyncio.create_task(_read_session(server, path, stop)),
            asyncio.create_task(_read_tail(server, PROJECT, names[-1], stop)),
        ]
        released = time.time()
        for home in homes:
            (home / GO).touch()
        try:
            final = await _wait_ended(http, PROJECT, within=120 + n * lines / 500)
        finally:
            stop.set()
            session_reads, tail_reads = await asyncio.gather(*readers)
        ended_seen = time.time()
        per_session = [_session_figures(await api.stored(http, PROJECT, name)) for name in names]
        (await http.delete(f"/api/projects/{PROJECT}")).raise_for_status()
    await wait_quiet(server)
    firsts = [s["first_emit"] for s in per_session if s["first_emit"] is not None]
    lasts = [s["last_emit"] for s in per_session if s["last_emit"] is not None]
    ends = [s["ended"] for s in per_session if s["ended"] is not None]
    first = min(firsts, default=released)
    stored_window = max(ends, default=ended_seen) - first
    emit_window = max(lasts, default=first) - first
    events = sum(s["content_events"] for s in per_session)
    got_lines = sum(s["lines"] for s in per_session)
    figures = {
        "sessions": n,
        "lines_per_session": lines,
        "pause_ms": cfg.ingest_pause_ms,
        "content_events_stored": events,
        "all_events_stored": sum(s["events"] for s in per_session),
        "lines_expected": n * lines,
        "lines_stored": got_lines,
        "final_phases": dict(Counter(final.values())),
        "release_to_first_emit_s": first - released,
        "first_emit_to_last_emit_s": emit_window,
        "first_emit_to_all_stored_s": stored_window,
        "release_to_all_ended_seen_s": ended_seen - released,
        "events_stored_per_s": events / stored_window if stored_window > 0 else 0.0,
        "lines_stored_per_s": got_lines / stored_window if stored_window > 0 else 0.0,
        "events_emitted_per_s": events / emit_window if emit_window > 0 else 0.0,
    }
    return Outcome(
        "ingest",
        [
            summarize(f"ingest: reader GET session (during {what})", session_reads),
            summarize(f"ingest: reader GET new events (during {what})", tail_reads),
        ],
        figures,
        [
            Value(f"ingest: events stored per second ({what})", figures["events_stored_per_s"], "/s"),
            Value(f"ingest: lines stored per second ({what})", figures["lines_stored_per_s"], "/s"),
            Value(f"ingest: events emitted per second by the runners ({what})", figures["events_emitted_per_s"], "/s"),
            Value(f"ingest: first event → all stored ({what})", stored_window, "s"),
        ],
    )
