"""The Executor interface: start, observe and stop the runner of a session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from vteam.resources import AgenticSession

Key = tuple[str, str]
OnExit = Callable[[Key], None]


@dataclass(frozen=True)
class RunnerState:
    """What the executor knows of a session's runner: none, running, or exited with a reason."""

    state: Literal["none", "running", "exited"]
    exit_code: int | None = None
    reason: str | None = None
    log_tail: str = ""

    @property
    def alive(self) -> bool:
        return self.state == "running"


NO_RUNNER = RunnerState("none")


class Executor(Protocol):
    async def prepare(self) -> None:
        """Get ready to start runners quickly (warm processes, pools); failures are not fatal."""
        ...

    def observe(self, session: AgenticSession) -> RunnerState: ...

    async def start(self, session: AgenticSession, env: dict[str, str]) -> None: ...

    def terminate(self, key: Key) -> None:
        """Ask the runner to stop (SIGTERM, then SIGKILL after a grace period); returns at once."""
        ...

    def release(self, key: Key) -> None:
        """Forget an exited runner once its end is recorded."""
        ...

    async def remove(self, session: AgenticSession) -> None:
        """Kill what is left of a deleted session's runner and remove its workspace."""
        ...

    async def sweep(self, sessions: list[AgenticSession]) -> None:
        """Kill runners and remove workspaces that belong to none of these (existing) sessions."""
        ...

    def agent_home(self, session: AgenticSession) -> str | None:
        """Where a session's agent kept its HOME, if this executor can still reach it."""
        ...

    def active(self, project: str | None = None) -> int:
        """Runners alive, on the whole platform or in one project."""
        ...

    async def close(self) -> None: ...
