"""The runner's side of a session's sandbox: which folders it binds, and the egress its agent talks through."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from vteam.agents.sandbox import EGRESS_SOCKET, Sandbox, framework_installs, identity, python_installs
from vteam.runner.config import RunnerConfig
from vteam.runner.egress import Egress, allow_list, mirror_ports


@asynccontextmanager
async def confined(config: RunnerConfig) -> AsyncIterator[Sandbox | None]:
    """The sandbox for this session's agent, with its egress running; None where isolation is not `sandbox`."""
    if config.isolation != "sandbox":
        yield None
        return
    workspace = config.workspace
    writable = (workspace / "repos", workspace / "home", workspace / "tmp")
    for folder in writable:
        folder.mkdir(parents=True, exist_ok=True)
    private = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="vteam-sandbox-"))
    net = private / "net"
    net.mkdir()
    identity(private, workspace / "home")
    ports = mirror_ports(config.agent_settings, config.sandbox_allow_hosts, config.server)
    server = urlsplit(config.server)
    egress = Egress(
        ports,
        allow_list(config.agent_settings, config.sandbox_allow_hosts),
        (server.hostname or "127.0.0.1", server.port or (443 if server.scheme == "https" else 80)),
    )
    await egress.start(net / EGRESS_SOCKET)
    try:
        yield Sandbox(
            writable=writable,
            readonly=(*python_installs(), *framework_installs()),
            hide=tuple(Path(p) for p in config.sandbox_hide),
            tmpdir=workspace / "tmp",
            egress=net,
            mirror_ports=tuple(sorted(ports)),
            private=private,
        )
    finally:
        await egress.close()
        await asyncio.to_thread(shutil.rmtree, private, True)


def for_git(config: RunnerConfig) -> Sandbox | None:
    """Where the runner's git works in the agent's repositories after a turn: their folder only, no network."""
    if config.isolation != "sandbox":
        return None
    return Sandbox(writable=(config.workspace / "repos",), hide=tuple(Path(p) for p in config.sandbox_hide))
