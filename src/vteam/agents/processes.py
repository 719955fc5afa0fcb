"""Ending an agent's turn: every process it started goes, including ones in sessions of their own.

Agents run tools through ptys or `setsid` (Gemini CLI does), which takes those processes out of the
agent's process group; killing the group alone would leave them running. So the whole tree of
descendants is collected first, while parent links still say who started what, then killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from vteam.agents.base import TurnContext


async def spawn(
    ctx: TurnContext, argv: list[str], *, env: dict[str, str], readonly: tuple[Path, ...] = (), **options: Any
) -> asyncio.subprocess.Process:
    """Start one of the agent's processes in the workdir, inside the session's sandbox when it has one.

    `readonly` names files outside the usual installs the process must read (a driver script)."""
    if ctx.sandbox is not None:
        env = ctx.sandbox.environment(env)
        argv = ctx.sandbox.wrap(argv, ctx.workdir, readonly=readonly)
    return await asyncio.create_subprocess_exec(*argv, cwd=ctx.workdir, env=env, process_group=0, **options)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL the process, its group, and every descendant wherever it moved."""
    doomed = descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in [pid, *doomed]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
