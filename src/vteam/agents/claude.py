"""Claude Code, Anthropic's coding agent, through claude-agent-sdk (whose wheel bundles the CLI).

Permissions are bypassed (the session runs unattended in its own workspace), non-essential traffic
is off, each run has its own HOME, and the Claude session id is kept so follow-up turns continue
the same conversation.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

from vteam.agents.base import AgentResult, Emit, FrameworkInfo, TurnContext

MODELS = ("sonnet", "opus", "haiku")
"""Claude Code's aliases for the newest model of each family; any `claude-...` model id works too."""


class ClaudeCodeAdapter:
    info: ClassVar[FrameworkInfo] = FrameworkInfo(
        name="claude-code",
        description="Anthropic's Claude Code agent: reads, edits and runs code in the repository.",
        models=MODELS,
        model_pattern=r"claude-[a-z0-9][a-z0-9.-]*",
        secrets=("ANTHROPIC_API_KEY",),
        secret_alternatives=("CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"),
        settings=(
            "ANTHROPIC_BASE_URL",
            "CLAUDE_CODE_USE_VERTEX",
            "CLAUDE_CODE_USE_BEDROCK",
            "ANTHROPIC_VERTEX_PROJECT_ID",
            "CLOUD_ML_REGION",
            "AWS_REGION",
        ),
        interactive=True,
        resume=True,
        keep=(".claude/projects/*/*.jsonl",),
    )

    def __init__(self) -> None:
        self.conversation_id: str | None = None
        self.cost_so_far = 0.0
        """What the conversation has cost so far; Claude Code reports it cumulatively."""

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult:
        # The SDK takes about a second to import: loaded on first use (the runner zygote preloads it).
        sdk = importlib.import_module("vteam.agents.claude_sdk")
        result: AgentResult = await sdk.run_turn(self, ctx, emit)
        return result
