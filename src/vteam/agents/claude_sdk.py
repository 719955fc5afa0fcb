"""The part of the Claude Code adapter that needs claude-agent-sdk, imported on first use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import cast

import claude_agent_sdk
from ag_ui.core import BaseEvent
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    Message,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    UserMessage,
    query,
)
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from vteam.agents.base import AgentResult, Emit, Resume, TurnContext
from vteam.agents.claude import ClaudeCodeAdapter
from vteam.agents.claude_events import ClaudeEvents
from vteam.agents.processes import kill_tree


async def run_turn(adapter: ClaudeCodeAdapter, ctx: TurnContext, emit: Emit) -> AgentResult:
    resume = ctx.resume
    if resume and adapter.conversation_id is None and await asyncio.to_thread(_adopt, resume, ctx.home, ctx.workdir):
        adapter.conversation_id = resume.conversation_id
    output: deque[str] = deque(maxlen=40)
    env = {
        "CLAUDE_CODE_MAX_RETRIES": "3",
        **ctx.settings,
        **ctx.environment,
        **ctx.secrets,
        "HOME": str(ctx.home),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"
    if ctx.sandbox is not None:
        env = ctx.sandbox.environment(env)
    options = ClaudeAgentOptions(
        cli_path=await asyncio.to_thread(ctx.sandbox.launcher, _cli(), ctx.workdir) if ctx.sandbox else None,
        cwd=str(ctx.workdir),
        permission_mode="bypassPermissions",
        model=ctx.model,
        resume=adapter.conversation_id,
        max_turns=ctx.max_turns,
        max_budget_usd=ctx.budget_usd,
        include_partial_messages=True,
        env=env,
        stderr=output.append,
    )
    transport = _Transport(prompt=ctx.prompt, options=options)
    reading = asyncio.create_task(_read(adapter, transport, ctx.prompt, options, emit))
    try:
        await asyncio.wait({reading})
    except asyncio.CancelledError:
        # The SDK's close waits 5 s for a busy CLI to exit on its own; killing it first ends the turn at once.
        transport.kill()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        raise
    result, rejected, failure = reading.result()
    if rejected is not None:
        return AgentResult(success=False, error=f"Claude Code: the API key was rejected ({rejected})")
    if result is None:
        return AgentResult(success=False, error=_failure(failure or "Claude Code ended without a result", output))
    adapter.conversation_id = result.session_id
    # The reported cost adds up the whole (resumed) conversation; this turn's is the difference.
    total = result.total_cost_usd
    cost = None if total is None else max(0.0, total - adapter.cost_so_far)
    adapter.cost_so_far = total if total is not None else adapter.cost_so_far
    usage = {k: float(v) for k, v in (result.usage or {}).items() if isinstance(v, int | float)}
    error = f"Claude Code stopped: {result.subtype}: {result.result or ''}".strip() if result.is_error else None
    return AgentResult(
        success=not result.is_error,
        text=result.result,
        turns=result.num_turns,
        usage=usage,
        cost_usd=cost,
        error=error,
    )


class _Transport(SubprocessCLITransport):
    """The SDK's own transport, which can also kill the CLI's whole process tree (the sandbox's included)."""

    def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            kill_tree(process.pid)


async def _read(
    adapter: ClaudeCodeAdapter, transport: _Transport, prompt: str, options: ClaudeAgentOptions, emit: Emit
) -> tuple[ResultMessage | None, str | None, str | None]:
    """Stream one turn's messages out as events: its result, why its key was rejected, or why it failed.

    A rejected key is never worth retrying, so the first 401 ends the turn instead of the CLI's retries."""
    events = ClaudeEvents()
    result: ResultMessage | None = None
    rejected: str | None = None
    try:
        async with contextlib.aclosing(
            cast(AsyncGenerator[Message, None], query(prompt=prompt, options=options, transport=transport))
        ) as messages:
            async for message in messages:
                rejected = _rejected(message)
                if rejected is not None:
                    transport.kill()
                    break
                if isinstance(message, SystemMessage) and message.subtype == "init":
                    # Known from the start, so that a turn interrupted before its result is continued too.
                    adapter.conversation_id = str(message.data.get("session_id") or "") or adapter.conversation_id
                if isinstance(message, ResultMessage):
                    result = message
                for event in _translate(events, message):
                    await emit(event)
    except ClaudeSDKError as exc:
        if result is None and rejected is None:
            return None, None, f"Claude Code failed: {exc}"
    return result, rejected, None


def _rejected(message: Message) -> str | None:
    """The status and reason when the model API refused the key; None for any other message."""
    if (
        isinstance(message, SystemMessage)
        and message.subtype == "api_retry"
        and message.data.get("error_status") == 401
    ):
        return f"401 {message.data.get('error') or 'unauthorized'}"
    if isinstance(message, AssistantMessage) and message.error == "authentication_failed":
        return "401 authentication_failed"
    return None


def _cli() -> str:
    """The Claude Code CLI the SDK would start: the one its wheel bundles, else one on PATH."""
    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        return str(bundled)
    return shutil.which("claude") or "claude"


def _translate(events: ClaudeEvents, message: Message) -> list[BaseEvent]:
    if isinstance(message, StreamEvent):
        return events.feed_stream(message.event)
    if isinstance(message, AssistantMessage):
        return events.feed_assistant(message.content, message.message_id)
    if isinstance(message, UserMessage) and isinstance(message.content, list):
        return events.feed_user(message.content)
    return []


def _failure(message: str, output: deque[str]) -> str:
    tail = "\n".join(output)
    return f"{message}; last output:\n{tail}" if tail else message


def _adopt(resume: Resume, home: Path, cwd: Path) -> bool:
    """Copy the parent's conversation where Claude Code looks for it from this session's cwd.

    Claude Code keeps transcripts in $HOME/.claude/projects/<cwd, non-alphanumerics as '-'>/<id>.jsonl.
    """
    found = next((resume.home / ".claude" / "projects").glob(f"*/{resume.conversation_id}.jsonl"), None)
    if found is None:
        return False
    target = home / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(cwd))
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, target / found.name)
    return True
