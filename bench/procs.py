"""The server's process tree from /proc: who its runners and agents are, what they cost in memory, who is left.

Runners are forked by the zygote (or started by the server), agents are the runners' descendants (inside a
bubblewrap sandbox, bwrap and its children). PSS shares each page among the processes mapping it, so a sum of
PSS over the tree is what the tree costs, with copy-on-write pages from the zygote counted once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

ZYGOTE = "vteam.runner.zygote"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: str
    """Start time in clock ticks since boot: with the pid, it names one process even after the pid is reused."""
    cmdline: str


def table() -> dict[int, Proc]:
    """Every live (not zombie) process now."""
    procs: dict[int, Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            pid = int(stat.parent.name)
            procs[pid] = Proc(pid, int(fields[1]), fields[19], cmdline.strip())
    return procs


def descendants(root: int, procs: dict[int, Proc]) -> list[Proc]:
    """The processes below `root` (not root itself), parents before children."""
    children: dict[int, list[Proc]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    frontier = [root]
    while frontier:
        below = [child for pid in frontier for child in children.get(pid, [])]
        found += below
        frontier = [p.pid for p in below]
    return found


@dataclass(frozen=True)
class Tree:
    """The server's processes by role."""

    server: Proc | None
    zygotes: list[Proc]
    runners: list[Proc]
    agents: list[Proc]
    other: list[Proc]

    @property
    def all(self) -> list[Proc]:
        return [*([self.server] if self.server else []), *self.zygotes, *self.runners, *self.agents, *self.other]


def server_tree(server_pid: int) -> Tree:
    """Runners are the zygote's children, or the server's own children that are not the zygote (no prefork)."""
    procs = table()
    below = descendants(server_pid, procs)
    zygotes = [p for p in below if p.ppid == server_pid and ZYGOTE in p.cmdline]
    zygote_pids = {p.pid for p in zygotes}
    runners = [p for p in below if p.ppid in zygote_pids or (p.ppid == server_pid and p.pid not in zygote_pids)]
    agents = [a for r in runners for a in descendants(r.pid, procs)]
    counted = {p.pid for p in [*zygotes, *runners, *agents]}
    other = [p for p in below if p.pid not in counted]
    return Tree(procs.get(server_pid), zygotes, runners, agents, other)


def pss_kib(pid: int) -> int | None:
    """Proportional set size from smaps_rollup; None when the process is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def environ(pid: int) -> dict[str, str]:
    """A process's environment as it was started (empty when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def survivors(procs: list[Proc]) -> list[Proc]:
    """Those of these processes that still exist (same pid and start time) and are not zombies."""
    current = table()
    return [p for p in procs if (now := current.get(p.pid)) is not None and now.start == p.start]


def kill(procs: list[Proc]) -> None:
    """SIGKILL each of these processes that is still the same process."""
    for proc in survivors(procs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)


def working_in(folder: Path) -> list[Proc]:
    """Processes whose working directory is inside `folder` (a runner's is its workspace, an agent's its repo)."""
    prefix = str(folder.resolve())
    found = []
    for proc in table().values():
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{proc.pid}/cwd").removesuffix(" (deleted)")
            if cwd == prefix or cwd.startswith(prefix + "/"):
                found.append(proc)
    return found
