"""One turn of an agent CLI that prints JSON lines: the loop the Codex, Gemini and mini-swe-agent adapters share.

The CLI runs through `spawn` (in the session's sandbox), each stdout line that is a JSON object goes to the
framework's event translator, and a bounded tail of stderr (less the framework's known noise) is kept for a
failure message. Whatever happens, the turn ends with the process tree killed: nothing the agent started may
outlive its turn (and see what comes next). Each adapter keeps only what differs: command, environment,
translator and how the result reads.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ag_ui.core import BaseEvent

from vteam.agents.base import Emit, TurnContext
from vteam.agents.processes import kill_tree, spawn

LINE_LIMIT = 64 * 1024 * 1024
"""The longest JSONL line read: a command's or tool's whole output can arrive in one line."""
KEEP_STDERR = 30


class Translator(Protocol):
    """A framework's events class: one JSON line in, the AG-UI events it means out."""

    def feed(self, line: dict[str, Any]) -> list[BaseEvent]: ...


@dataclass(frozen=True)
class Exit:
    """How the CLI ended: its status and the last lines it wrote that were not events."""

    code: int
    stderr: Sequence[str]


async def run_jsonl(
    ctx: TurnContext,
    argv: list[str],
    *,
    env: dict[str, str],
    events: Translator,
    emit: Emit,
    noise: Sequence[re.Pattern[str]] = (),
    stdin: bytes | None = None,
    readonly: tuple[Path, ...] = (),
    close: Callable[[], list[BaseEvent]] | None = None,
) -> Exit:
    """Run `argv` to its end, emitting the events its stdout means.

    `stdin` is written to the process and closed (else it reads nothing); `close` gives the events that end the
    stream once stdout is done (a translator holding a message open). Non-JSON stdout lines join the stderr tail.
    """
    proc = await spawn(
        ctx,
        argv,
        env=env,
        readonly=readonly,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=LINE_LIMIT,
    )
    tail: deque[str] = deque(maxlen=KEEP_STDERR)
    reader = asyncio.create_task(_collect(proc, tail, noise))
    try:
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            await proc.stdin.drain()
            proc.stdin.close()
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                data = json.loads(line)
            except ValueError:
                tail.append(line.decode(errors="replace").rstrip())
                continue
            if isinstance(data, dict):
                for event in events.feed(data):
                    await emit(event)
        for event in close() if close is not None else ():
            await emit(event)
        code = await proc.wait()
        await reader
    finally:
        kill_tree(proc.pid)
        reader.cancel()
    return Exit(code, tuple(tail))


async def _collect(proc: asyncio.subprocess.Process, lines: deque[str], noise: Sequence[re.Pattern[str]]) -> None:
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        text = line.decode(errors="replace").rstrip()
        if text and not any(pattern.search(text) for pattern in noise):
            lines.append(text)
