"""The `script` framework: the prompt is a shell command run in the main repo, its output streamed.

It is the deterministic codemod agent, and what the offline quickstart runs.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import uuid
from typing import ClassVar

from ag_ui.core import TextMessageContentEvent, TextMessageEndEvent, TextMessageStartEvent

from vteam.agents.base import AgentResult, Emit, FrameworkInfo, TurnContext
from vteam.agents.processes import kill_tree, spawn

READ_SIZE = 16 * 1024
READ_SCRIPT = 'eval "$(cat)" </dev/null'
"""bash reads the whole script from its stdin and runs it with stdin at /dev/null, as `bash -c <prompt>` did:
Linux caps one argument at 128 KiB, and the longest prompt (200,000 characters) may take 800 KB."""
KEEP_TAIL = 4000


class ScriptAdapter:
    info: ClassVar[FrameworkInfo] = FrameworkInfo(
        name="script",
        description=(
            "Runs the prompt as a bash script in the main repository and streams its output; "
            "in an interactive session each message is another command."
        ),
        interactive=True,
    )

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
        env.update(ctx.environment)
        # The project's secrets (API keys it gives its agent) reach the script, and only the script.
        env.update(ctx.secrets)
        env["HOME"] = str(ctx.home)
        proc = await spawn(
            ctx,
            ["bash", "-c", READ_SCRIPT],
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _hand_over(proc, ctx.prompt)
            return await self._stream(proc, emit)
        finally:
            # The turn is over: nothing the agent started may outlive it (and see what comes next).
            kill_tree(proc.pid)

    async def _stream(self, proc: asyncio.subprocess.Process, emit: Emit) -> AgentResult:
        message_id = uuid.uuid4().hex
        await emit(TextMessageStartEvent(message_id=message_id, role="assistant"))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tail = ""
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(READ_SIZE):
            text = decoder.decode(chunk)
            if text:
                tail = (tail + text)[-KEEP_TAIL:]
                await emit(TextMessageContentEvent(message_id=message_id, delta=text))
        if rest := decoder.decode(b"", final=True):
            tail = (tail + rest)[-KEEP_TAIL:]
            await emit(TextMessageContentEvent(message_id=message_id, delta=rest))
        await emit(TextMessageEndEvent(message_id=message_id))
        code = await proc.wait()
        if code != 0:
            return AgentResult(success=False, text=tail, error=f"script exited with status {code}")
        return AgentResult(success=True, text=tail)


async def _hand_over(proc: asyncio.subprocess.Process, script: str) -> None:
    """Write the script to bash's stdin and close it; a script that exits first just leaves the rest unread."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(script.encode())
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        proc.stdin.close()
