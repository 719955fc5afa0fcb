"""The adapter interface: one turn of an agent framework becomes a stream of AG-UI events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from ag_ui.core import BaseEvent

from vteam.agents.sandbox import Sandbox

Emit = Callable[[BaseEvent], Awaitable[None]]


@dataclass(frozen=True)
class Resume:
    conversation_id: str
    home: Path
    """The parent's agent HOME, where a framework may keep its conversation history."""


@dataclass(frozen=True)
class TurnContext:
    """What a framework gets for a turn: where to work, what to do, and its environment."""

    session: str
    prompt: str
    workdir: Path
    home: Path
    model: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """The framework's secrets (e.g. ANTHROPIC_API_KEY), for its own process only."""
    settings: dict[str, str] = field(default_factory=dict)
    """The framework's non-secret settings (e.g. a model gateway's base URL)."""
    max_turns: int | None = None
    budget_usd: float | None = None
    resume: Resume | None = None
    """The conversation of a parent session to continue, for frameworks that can."""
    sandbox: Sandbox | None = None
    """Where the agent's processes run confined; None only where an operator chose no isolation, or in a pod."""


@dataclass(frozen=True)
class AgentResult:
    success: bool
    text: str | None = None
    turns: int = 1
    usage: dict[str, float] = field(default_factory=dict)
    cost_usd: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class FrameworkInfo:
    """What `GET /api/runner-types` tells about a framework."""

    name: str
    description: str
    models: tuple[str, ...] = ()
    model_pattern: str | None = None
    """A regular expression for model ids accepted beside `models` (providers add models often)."""
    secrets: tuple[str, ...] = ()
    secret_alternatives: tuple[str, ...] = ()
    """Settings any one of which replaces the secrets (a cloud provider's own credentials)."""
    settings: tuple[str, ...] = ()
    """Non-secret environment the framework reads (base URLs, provider switches)."""
    interactive: bool = False
    resume: bool = False
    streaming: bool = True
    keep: tuple[str, ...] = ()
    """Globs relative to the agent HOME (one pattern per path component) naming the files a continued session
    reads from its parent's HOME; everything else there is wiped when the runner exits."""


class Adapter(Protocol):
    """One instance lives for a session; a turn is interrupted by cancelling `run_turn`, and the
    adapter must then leave nothing running. State kept across turns (a conversation id) is how
    follow-up messages continue the same conversation."""

    info: ClassVar[FrameworkInfo]

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult: ...
