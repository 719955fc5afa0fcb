"""Session phase rules: which phase may follow which, and which never change again."""

from __future__ import annotations

from enum import StrEnum

from vteam.errors import InvalidTransition


class Phase(StrEnum):
    PENDING = "Pending"
    CREATING = "Creating"
    RUNNING = "Running"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    TIMED_OUT = "TimedOut"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.STOPPED, Phase.TIMED_OUT})

ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.CREATING, Phase.STOPPED, Phase.FAILED, Phase.STOPPING}),
    Phase.CREATING: frozenset({Phase.RUNNING, Phase.STOPPING, Phase.COMPLETED, Phase.FAILED, Phase.TIMED_OUT}),
    Phase.RUNNING: frozenset({Phase.STOPPING, Phase.COMPLETED, Phase.FAILED, Phase.TIMED_OUT}),
    Phase.STOPPING: frozenset({Phase.STOPPED, Phase.FAILED}),
}


def check_transition(current: Phase, new: Phase) -> None:
    """Raise InvalidTransition unless `new` may follow `current`; staying put is always allowed."""
    if new == current:
        return
    if current.terminal:
        raise InvalidTransition(f"session is {current.value}, a final phase; it cannot become {new.value}")
    if new not in ALLOWED[current]:
        raise InvalidTransition(f"a session cannot go from {current.value} to {new.value}")
