"""The part of the Claude Code adapter that needs claude-agent-sdk, imported on first use."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections import deque
from pathlib import Path

import claude_agent_sdk
from ag_ui.core import BaseEvent
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    Message,
    ResultMessage,
    StreamEvent,
    UserMessage,
    query,
)

from vteam.agents.base import AgentResult, Emit, Resume, TurnContext
from vteam.agents.claude import ClaudeCodeAdapter
from vteam.agents.claude_events import ClaudeEvents


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
    events = ClaudeEvents()
    result: ResultMessage | None = None
    try:
        async for message in query(prompt=ctx.prompt, options=options):
            if isinstance(message, ResultMessage):
                result = message
            for event in _translate(events, message):
                await emit(event)
    except ClaudeSDKError as exc:
        if result is None:
            return AgentResult(success=False, error=_failure(f"Claude Code failed: {exc}", output))
    if result is None:
        return AgentResult(success=False, error=_failure("Claude Code ended without a result", output))
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
