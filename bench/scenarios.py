"""The measurements on the shared server (create, read, events, start), each in its own project so none disturbs
another; the helpers every server benchmark uses (clients, timing, waiting for quiet)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import api
from bench.server import Server, children
from bench.stats import Summary, Value, summarize

EVENT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Config:
    """Sizes of each benchmark; the defaults are what `make bench` measures and the docs report."""

    create_workers: int = 50
    create_sizes: tuple[int, ...] = (200, 2000)
    """Each size is one round of that many creates from `create_workers` clients, in a project of its own."""
    reads: int = 2000
    readers: int = 20
    sequential_reads: int = 100
    event_lines: int = 300
    event_interval: float = 0.02
    starts: int = 20
    drain: bool = False
    drain_timeout: float = 600.0
    ingest_sessions: int = 50
    ingest_events: int = 2000
    ingest_pause_ms: float = 1.0
    """Pause after each line, so the script framework (one event per pipe read) sees the lines one by one."""
    held: tuple[int, ...] = (20, 100, 500)
    burst: int = 100


QUICK = Config(
    create_workers=10,
    create_sizes=(20, 100),
    reads=200,
    readers=5,
    sequential_reads=20,
    event_lines=50,
    starts=5,
    ingest_sessions=5,
    ingest_events=200,
    held=(5, 10),
    burst=10,
)
"""Small sizes, to try the benchmark out in a minute or two; its figures are not comparable with the full run's."""


@dataclass
class Outcome:
    """What one benchmark found: table rows, plus figures that are not distributions (throughput, counts)."""

    name: str
    rows: list[Summary] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    values: list[Value] = field(default_factory=list)


def client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=60.0, headers={"Authorization": f"Bearer {server.token}"})


async def timed(call: Awaitable[object]) -> float:
    """Milliseconds one awaitable took, on the monotonic clock."""
    start = time.perf_counter()
    await call
    return (time.perf_counter() - start) * 1000


async def session_create(server: Server, cfg: Config) -> Outcome:
    """One round per size in `cfg.create_sizes`, each in a project of its own, the server quiet between rounds."""
    outcome = Outcome("create")
    for size in cfg.create_sizes:
        workers = min(cfg.create_workers, size)
        latencies, figures = await _create_round(server, cfg, size, workers)
        what = f"{workers} concurrent clients, {size} creates"
        outcome.rows.append(summarize(f"session create ({what})", latencies))
        outcome.values.append(Value(f"creates per second ({what})", figures["creates_per_s"], "/s"))
        outcome.figures[f"creates_{size}"] = figures
    return outcome


async def _create_round(server: Server, cfg: Config, size: int, workers: int) -> tuple[list[float], dict[str, Any]]:
    """Many clients creating at once: every create is a SQLite write (fsync) behind one in-process write lock.

    The sessions also queue for runners (at most VTEAM_MAX_RUNNING_SESSIONS at once) while creates are
    still arriving; that controller load is part of what a create competes with. Afterwards the server
    must be quiet again before the next benchmark: with `drain` we wait for every session to finish
    (and report that throughput), otherwise we delete the project, which stops the queue at once.
    """
    project = f"bench-create-{size}"
    async with client(server) as http:
        await api.create_project(http, project)
    clients = [client(server) for _ in range(workers)]
    shares = [size // workers + (1 if i < size % workers else 0) for i in range(workers)]
    start = asyncio.Event()

    async def worker(http: httpx.AsyncClient, count: int) -> list[float]:
        await start.wait()
        return [await timed(api.create_session(http, project, "true")) for _ in range(count)]

    try:
        tasks = [asyncio.create_task(worker(http, n)) for http, n in zip(clients, shares, strict=True)]
        await asyncio.sleep(0)
        began = time.perf_counter()
        start.set()
        per_worker = await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    latencies = [ms for batch in per_worker for ms in batch]
    figures: dict[str, Any] = {"creates": len(latencies), "wall_s": wall, "creates_per_s": len(latencies) / wall}
    async with client(server) as http:
        if cfg.drain:
            figures |= await _drain(http, project, cfg, began)
        else:
            figures |= await _delete(server, http, project)
    await wait_quiet(server)
    return latencies, figures


async def _drain(http: httpx.AsyncClient, project: str, cfg: Config, began: float) -> dict[str, Any]:
    """Let every created session run to its end: the throughput of the whole create → run → finish pipeline."""
    final = await api.wait_all_ended(http, project, within=cfg.drain_timeout)
    drained = time.perf_counter() - began
    return {
        "all_ended_after_s": drained,
        "sessions_finished_per_s": len(final) / drained,
        "final_phases": dict(Counter(final.values())),
    }


async def _delete(server: Server, http: httpx.AsyncClient, project: str) -> dict[str, Any]:
    """Delete the project, which kills the running few and drops the queued rest: quiet in seconds, not minutes."""
    phases = await api.phases(http, project)
    deleting = time.perf_counter()
    (await http.delete(f"/api/projects/{project}")).raise_for_status()
    await wait_quiet(server, settle=0)
    return {
        "phases_at_delete": dict(Counter(phases.values())),
        "runners_gone_after_delete_s": time.perf_counter() - deleting,
    }


async def wait_quiet(server: Server, *, within: float = 120.0, settle: float = 1.0) -> None:
    """Until no runner process is left, then a moment for the controller's clean-up writes to land."""
    deadline = time.monotonic() + within
    while running := children(server):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(running)} runner processes still alive after {within} s")
        await asyncio.sleep(0.2)
    await asyncio.sleep(settle)


async def session_read(server: Server, cfg: Config) -> Outcome:
    """GET of one finished session by many clients: the read path (auth, one SQLite read, JSON), no writes around."""
    project = "bench-read"
    async with client(server) as http:
        await api.create_project(http, project)
        name = await api.create_session(http, project, "echo hi")
        await api.collect(http, project, name, within=EVENT_TIMEOUT)
    await wait_quiet(server)
    path = f"{api.sessions_path(project)}/{name}"
    per_reader = cfg.reads // cfg.readers
    clients = [client(server) for _ in range(cfg.readers)]

    async def get(http: httpx.AsyncClient) -> None:
        (await http.get(path)).raise_for_status()

    async def reader(http: httpx.AsyncClient, count: int) -> list[float]:
        await get(http)  # open the connection first; connection setup is not what this measures
        return [await timed(get(http)) for _ in range(count)]

    try:
        sequential = await reader(clients[0], cfg.sequential_reads)
        began = time.perf_counter()
        per_client = await asyncio.gather(*(reader(http, per_reader) for http in clients))
        wall = time.perf_counter() - began
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    latencies = [ms for batch in per_client for ms in batch]
    return Outcome(
        "read",
        [
            summarize("session read (1 client, sequential)", sequential),
            summarize(f"session read ({cfg.readers} concurrent clients)", latencies),
        ],
        {"reads": len(latencies), "reads_per_s": len(latencies) / wall},
        [Value(f"reads per second ({cfg.readers} concurrent clients)", len(latencies) / wall, "/s")],
    )


async def event_latency(server: Server, cfg: Config) -> Outcome:
    """Runner → API → reader: the envelope's ts is stamped by the runner as it emits, the reader stamps arrival.

    Both clocks are this machine's, so the difference is the path runner queue → WebSocket → SQLite
    append (fsync) → hub → SSE → reader. The script prints its own clock too, which adds the pipe
    read in the runner (print → reader).
    """
    project = "bench-events"
    prompt = f"for i in $(seq 1 {cfg.event_lines}); do date +%s.%N; sleep {cfg.event_interval}; done"
    async with client(server) as http:
        await api.create_project(http, project)
        name = await api.create_session(http, project, prompt)
        received = await api.collect(http, project, name, within=EVENT_TIMEOUT)
    await wait_quiet(server)
    content = [r for r in received if r.type == "TEXT_MESSAGE_CONTENT"]
    emit_to_reader = [(r.at - r.ts) * 1000 for r in content]
    print_to_reader = [
        (r.at - float(line)) * 1000
        for r in content
        for line in str(r.envelope["data"].get("delta", "")).splitlines()
        if line.strip()
    ]
    phases = [r.phase for r in received if r.phase]
    return Outcome(
        "events",
        [
            summarize("event latency: runner emit → SSE reader", emit_to_reader),
            summarize("event latency: script print → SSE reader", print_to_reader),
        ],
        {
            "content_events": len(content),
            "lines_received": len(print_to_reader),
            "lines_expected": cfg.event_lines,
            "final_phase": phases[-1] if phases else None,
        },
    )


@dataclass
class StartTimes:
    """One session's milestones, as epoch seconds on this machine's clock."""

    requested: float
    creating: float
    running: float
    first_emit: float
    first_seen: float
    completed_seen: float


class SessionFailed(Exception):
    """A measured session did not complete; counted and reported, never silently averaged in."""


async def _one_start(http: httpx.AsyncClient, project: str, index: int) -> StartTimes:
    requested = time.time()
    name = await api.create_session(http, project, "echo hi", name=f"start-{index:03d}")
    received = await api.collect(http, project, name, within=EVENT_TIMEOUT)
    if not received or received[-1].phase != "Completed":
        session = (await http.get(f"{api.sessions_path(project)}/{name}")).json()
        status = session.get("status", {})
        raise SessionFailed(f"{name}: {status.get('phase')}: {status.get('message')}")
    by_phase = {r.phase: r for r in received if r.phase}
    first = next(r for r in received if r.type == "TEXT_MESSAGE_CONTENT")
    return StartTimes(
        requested=requested,
        creating=by_phase["Creating"].ts,
        running=by_phase["Running"].ts,
        first_emit=first.ts,
        first_seen=first.at,
        completed_seen=received[-1].at,
    )


async def start_latency(server: Server, cfg: Config) -> Outcome:
    """Sequential sessions on an idle server: how long until a user sees the agent do something.

    Milestones: Creating (controller picked it up and is spawning the runner), Running (the runner
    process is up, has fetched its session and reported), the first TEXT_MESSAGE_CONTENT (the script
    printed), and the final phase event (runner exited and the controller recorded Completed).
    """
    project = "bench-start"
    runs: list[StartTimes] = []
    failures: list[str] = []
    async with client(server) as http:
        await api.create_project(http, project)
        for index in range(cfg.starts):
            try:
                runs.append(await _one_start(http, project, index))
            except SessionFailed as exc:
                failures.append(str(exc))
            await wait_quiet(server, settle=0.2)

    def ms(pairs: list[tuple[float, float]]) -> list[float]:
        return [(b - a) * 1000 for a, b in pairs]

    return Outcome(
        "start",
        [
            summarize("start: create → Running", ms([(r.requested, r.running) for r in runs])),
            summarize("start: create → first agent event (seen)", ms([(r.requested, r.first_seen) for r in runs])),
            summarize("start: create → Completed (seen)", ms([(r.requested, r.completed_seen) for r in runs])),
        ],
        {
            "stages_ms": {
                s.label: s.to_json()
                for s in (
                    summarize("create → Creating", ms([(r.requested, r.creating) for r in runs])),
                    summarize("Creating → Running", ms([(r.creating, r.running) for r in runs])),
                    summarize("Running → first emit", ms([(r.running, r.first_emit) for r in runs])),
                    summarize("first emit → seen by reader", ms([(r.first_emit, r.first_seen) for r in runs])),
                    summarize("first seen → Completed seen", ms([(r.first_seen, r.completed_seen) for r in runs])),
                )
            },
            "completed": len(runs),
            "failures": failures,
        },
    )
