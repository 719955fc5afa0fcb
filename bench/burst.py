"""A burst of simultaneous starts: `burst` clients each create one session at the same moment.

The server's running limit is raised to the burst (unless `--env` sets it), so every session may start at
once; the figures say how long until all are Running and until all have ended. The phase times come from
the `vteam.phase` events, which the server stamps as it stores them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from bench import api
from bench.scenarios import Config, Outcome, client, wait_quiet
from bench.server import Server
from bench.stats import Value, summarize

PROJECT = "bench-burst"
PROMPT = "echo hi"


async def measure(server: Server, cfg: Config) -> Outcome:
    count = cfg.burst
    async with client(server) as http:
        await api.create_project(http, PROJECT)
    https = [client(server) for _ in range(count)]
    go = asyncio.Event()
    requested: dict[str, float] = {}

    async def one(http: httpx.AsyncClient, index: int) -> None:
        await go.wait()
        at = time.time()
        requested[await api.create_session(http, PROJECT, PROMPT, name=f"b-{index:04d}")] = at

    try:
        for http in https:  # connections open before the burst: it measures the starts, not TCP handshakes
            (await http.get("/readyz")).raise_for_status()
        tasks = [asyncio.create_task(one(http, i)) for i, http in enumerate(https)]
        await asyncio.sleep(0)
        released = time.time()
        go.set()
        await asyncio.gather(*tasks)
        created = time.time()
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    async with client(server) as http:
        final = await api.wait_all_ended(http, PROJECT, within=120 + count)
        ended_seen = time.time()
        times = {name: api.phase_times(await api.stored(http, PROJECT, name)) for name in requested}
        (await http.delete(f"/api/projects/{PROJECT}")).raise_for_status()
    await wait_quiet(server)
    running = {n: t["Running"] for n, t in times.items() if "Running" in t}
    done = {n: min(t[p] for p in api.FINAL_PHASES & t.keys()) for n, t in times.items() if api.FINAL_PHASES & t.keys()}
    all_running = max(running.values(), default=released) - released
    all_done = max(done.values(), default=released) - released
    figures = {
        "sessions": count,
        "all_created_after_s": created - released,
        "all_running_after_s": all_running if len(running) == count else None,
        "all_done_after_s": all_done,
        "all_ended_seen_after_s": ended_seen - released,
        "reached_running": len(running),
        "final_phases": dict(Counter(final.values())),
    }
    what = f"{count} at once"
    return Outcome(
        "burst",
        [
            summarize(f"burst ({what}): create → Running", [(t - requested[n]) * 1000 for n, t in running.items()]),
            summarize(f"burst ({what}): create → ended", [(t - requested[n]) * 1000 for n, t in done.items()]),
        ],
        figures,
        [
            Value(f"burst ({what}): all Running after", all_running, "s"),
            Value(f"burst ({what}): all ended after", all_done, "s"),
        ],
    )
