"""Start `vteam up` in a throwaway home for the benchmark, and make sure nothing of it outlives the run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs

UP_LINE = re.compile(r"vTeam is up on (http://\S+)")


class ServerError(RuntimeError):
    """`vteam up` exited or never became ready; the message carries the tail of its log."""


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]
    token: str = ""
    cleanup: dict[str, Any] = field(default_factory=dict)
    """Filled when the server is stopped: how many of its processes had to be killed, and any left alive."""


def server_env(settings: dict[str, str]) -> dict[str, str]:
    """Drop inherited VTEAM_* variables so a developer's shell cannot skew the figures; set ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env.update(settings)
    return env


TOKEN = "vt-bench-admin-" + secrets.token_urlsafe(16)
"""The benchmark's clients sign in as a platform admin through VTEAM_ADMIN_TOKEN."""


@contextlib.contextmanager
def running_server(
    settings: dict[str, str],
    *,
    keep_home: bool = False,
    ready_timeout: float = 60,
    seed: Callable[[Path], None] | None = None,
) -> Iterator[Server]:
    """Yield a ready server; on exit stop it (SIGTERM, then SIGKILL) and kill every process it left behind.

    `seed` writes into the data folder before the server starts (the UI benchmark's sessions)."""
    home = Path(tempfile.mkdtemp(prefix="vteam-bench-"))
    if seed is not None:
        seed(home / "data")
    log = home / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "vteam", "up", "--host", "127.0.0.1", "--port", "0", "--home", str(home / "data")],
            env=server_env({"VTEAM_ADMIN_TOKEN": TOKEN, **settings}),
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    server: Server | None = None
    try:
        url = _wait_for_url(process, log, ready_timeout)
        _wait_ready(process, log, url, ready_timeout)
        server = Server(url=url, home=home, log=log, process=process, token=TOKEN)
        yield server
    finally:
        tree = procs.descendants(process.pid, procs.table())
        _stop(process)
        _kill_runners(home / "data" / "workspaces")
        report = _kill_rest(tree, home)
        if server is not None:
            server.cleanup.update(report)
        if report["left_alive"]:
            print(f"warning: processes of the benchmark's server still alive: {report['left_alive']}", file=sys.stderr)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def _wait_for_url(process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    """The URL is only known from the log line: with --port 0 the kernel picks the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := UP_LINE.search(log.read_text(errors="replace")):
            return match.group(1)
        if process.poll() is not None:
            raise ServerError(f"vteam up exited with {process.returncode}:\n{tail(log)}")
        time.sleep(0.05)
    raise ServerError(f"vteam up printed no URL within {timeout} s:\n{tail(log)}")


def _wait_ready(process: subprocess.Popen[bytes], log: Path, url: str, timeout: float) -> None:
    """The URL line is printed before the app's lifespan runs, so wait for /readyz too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"vteam up exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise ServerError(f"vteam up was not ready within {timeout} s:\n{tail(log)}")


def _stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _kill_runners(workspaces: Path) -> None:
    """Runners outlive their server by design (a restart adopts them), so kill ours by their pid files.

    The start time in the pid file guards against killing an unrelated process that reused the pid.
    """
    for pidfile in workspaces.glob("*/*/runner.pid"):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(pidfile.read_text())
            pid = int(info["pid"])
            if _start_ticks(pid) == info.get("start"):
                os.killpg(pid, signal.SIGKILL)


def _kill_rest(tree: list[procs.Proc], home: Path, within: float = 10) -> dict[str, Any]:
    """Kill what the server's tree held before it stopped (the zygote, a runner without a pid file yet, an agent
    whose runner died), and anything still working in its home; then check that none of it is alive."""
    strays = procs.survivors(tree) + procs.working_in(home)
    procs.kill(strays)
    deadline = time.monotonic() + within
    while (left := procs.survivors([*tree, *procs.working_in(home)])) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {
        "processes_in_tree_at_stop": len(tree),
        "killed_after_stop": len({p.pid for p in strays}),
        "left_alive": sorted({p.pid for p in left}),
    }


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of the server log, for error messages."""
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def children(server: Server) -> list[int]:
    """Live runner processes: children of the server, or of its runner zygote, but not the zygote itself."""
    return [p.pid for p in procs.server_tree(server.process.pid).runners]
