"""The Executor interface: start, observe and stop the runner of a session.

The one reconcile loop (`reconciler.Reconciler`) drives either executor; everything that differs between a
local runner process and a runner Job sits behind this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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


class Later(Exception):
    """Not now: the session is queued again after `delay` seconds, with `message` shown on it if given."""

    def __init__(self, delay: float, why: str, *, message: str | None = None) -> None:
        super().__init__(why)
        self.delay = delay
        self.message = message


class Executor(Protocol):
    creating_first: bool
    """Whether Creating is written before the runner starts. A local runner reports back within milliseconds,
    so its start time must be recorded first; a Job is created first, so a refused Job leaves the session
    Pending and a restart between the two finds the Job (`started_at`)."""

    async def prepare(self) -> None:
        """Get ready to start runners quickly (warm processes, pools); failures are not fatal."""
        ...

    async def refresh(self, session: AgenticSession) -> None:
        """Read afresh what `observe`, `decision_time` and `started_at` answer from (nothing to read locally)."""
        ...

    async def refresh_active(self) -> None:
        """Read afresh what `active` counts."""
        ...

    def observe(self, session: AgenticSession) -> RunnerState: ...

    def decision_time(self, session: AgenticSession, now: datetime) -> datetime:
        """The `now` to decide with (a runner stopped at its deadline means the deadline has passed)."""
        ...

    def started_at(self, session: AgenticSession) -> datetime | None:
        """When the runner this executor holds for a still Pending session came to be, or None."""
        ...

    async def start(self, session: AgenticSession, env: dict[str, str]) -> None:
        """Start the runner; may raise `Later`, `InvalidInput` (it can never start) or OSError."""
        ...

    async def kill(self, session: AgenticSession) -> None:
        """Make the runner stop (it gets its grace period); its end is observed later."""
        ...

    async def cleanup(self, session: AgenticSession) -> None:
        """What is left of a runner whose session's end is recorded: forget it, remove what lingers."""
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
        """Places taken by runners, on the whole platform or in one project (a local runner that ended keeps
        its place until `release`)."""
        ...

    async def close(self) -> None: ...
