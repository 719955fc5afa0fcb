"""Memory: the platform idle, then with sessions held (`sleep 600`), as PSS summed over the server's process tree.

The server, its runner zygote, every runner and every agent process (bubblewrap and what runs in it) are
found from the server's pid tree and their PSS read from /proc/<pid>/smaps_rollup. Sessions are added in
steps (20, then 80 more to 100, then 400 more to 500) and each step waits until every session is Running and
every `sleep` has started, then lets the memory settle before reading it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import api, procs
from bench.ingest import create_all, wait_phase
from bench.scenarios import Config, Outcome, client, wait_quiet
from bench.server import Server
from bench.stats import Value

PROJECT = "bench-held"
PROMPT = "sleep 600"
SETTLE = 3.0
"""Seconds between everything having started and the reading: late allocations (buffers, caches) land."""
MIB = 1024.0


def footprint(server: Server) -> dict[str, Any]:
    """PSS by role in MiB, process counts, and how many processes could not be read."""
    tree = procs.server_tree(server.process.pid)
    unreadable = 0

    def mib(group: list[procs.Proc]) -> float:
        nonlocal unreadable
        total = 0
        for proc in group:
            kib = procs.pss_kib(proc.pid)
            if kib is None:
                unreadable += 1
            total += kib or 0
        return total / MIB

    parts = {
        "server_mib": mib([tree.server] if tree.server else []),
        "zygote_mib": mib(tree.zygotes),
        "runners_mib": mib(tree.runners),
        "agents_mib": mib(tree.agents),
        "other_mib": mib(tree.other),
    }
    return {
        "total_mib": sum(parts.values()),
        **parts,
        "runners": len(tree.runners),
        "agent_processes": len(tree.agents),
        "other_processes": len(tree.other),
        "unreadable": unreadable,
    }


def _sleeping(server: Server) -> int:
    return sum(1 for p in procs.server_tree(server.process.pid).agents if p.cmdline.startswith("sleep "))


async def _until_sleeping(server: Server, count: int, within: float) -> None:
    """Running is reported before the agent starts; wait for the `sleep` processes themselves."""
    deadline = time.monotonic() + within
    while (found := _sleeping(server)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found} of {count} held sessions have their agent process after {within} s")
        await asyncio.sleep(0.5)


async def measure(server: Server, cfg: Config) -> Outcome:
    await asyncio.sleep(SETTLE)
    idle = footprint(server)
    outcome = Outcome("memory", figures={"idle": idle})
    outcome.values.append(Value("memory: platform idle (server and zygote), PSS", idle["total_mib"], "MiB"))
    held = 0
    try:
        async with client(server) as http:
            await api.create_project(http, PROJECT)
            for level in sorted(cfg.held):
                began = time.perf_counter()
                await create_all(server, PROJECT, PROMPT, level - held, name_from=held)
                held = level
                await wait_phase(http, PROJECT, "Running", within=60 + level, poll=1.0)
                await _until_sleeping(server, level, within=60 + level / 5)
                started = time.perf_counter() - began
                await asyncio.sleep(SETTLE)
                now = footprint(server)
                per_session = (now["total_mib"] - idle["total_mib"]) / level
                own = (now["runners_mib"] + now["agents_mib"]) / level
                outcome.figures[f"held_{level}"] = {
                    **now,
                    "per_session_mib": per_session,
                    "per_session_own_processes_mib": own,
                    "start_s": started,
                }
                outcome.values += [
                    Value(f"memory: {level} held, PSS in total", now["total_mib"], "MiB"),
                    Value(f"memory: {level} held, PSS per session", per_session, "MiB"),
                    Value(f"memory: {level} held, PSS of each session's runner and agent", own, "MiB"),
                ]
            runners = procs.server_tree(server.process.pid).runners
            outcome.figures["runner_pythonpath"] = sorted({procs.environ(p.pid).get("PYTHONPATH", "") for p in runners})
    finally:
        deleting = time.perf_counter()
        async with client(server) as http:
            response = await http.delete(f"/api/projects/{PROJECT}")
            if response.status_code != 404:
                response.raise_for_status()
        await wait_quiet(server, within=120 + held / 2, settle=0)
        outcome.figures["runners_gone_after_delete_s"] = time.perf_counter() - deleting
    return outcome
