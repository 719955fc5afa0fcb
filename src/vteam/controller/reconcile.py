"""The reconcile decision: from a session and what its executor reports, the next action.

Pure and level-triggered: the same state gives the same decision, after any crash or restart.
The one reconcile loop of both modes (`reconciler.Reconciler`) calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from vteam.controller.executor import RunnerState
from vteam.resources import REPORTED, AgenticSession, Phase


class Action(StrEnum):
    NOTHING = "nothing"
    START = "start"
    QUEUE = "queue"
    KILL = "kill"
    FINISH = "finish"
    RELEASE = "release"


@dataclass(frozen=True)
class Decision:
    action: Action
    phase: Phase | None = None
    message: str | None = None
    requeue_after: float | None = None


def deadline(session: AgenticSession) -> datetime | None:
    start = session.status.start_time
    return start + timedelta(seconds=session.spec.timeout) if start else None


def decide(
    session: AgenticSession, runner: RunnerState, *, now: datetime, capacity: bool, why: str | None = None
) -> Decision:
    """The next step for a session. For a runner that has ended, the order of the checks is the policy:
    a clean exit completes even past the deadline (the work is done and pushed); otherwise a passed
    deadline means TimedOut; a runner that vanished means Failed; and a failure the runner reported
    itself is more precise than its exit status and log tail. `why` says why a Pending session without
    capacity waits (default QUEUED).
    """
    phase = session.status.phase
    if phase.terminal:
        return Decision(Action.KILL) if runner.alive else Decision(Action.RELEASE)
    if phase == Phase.STOPPING:
        if runner.alive:
            return Decision(Action.KILL)
        return Decision(Action.FINISH, Phase.STOPPED, session.status.message or "stopped on request")
    if phase == Phase.PENDING:
        if runner.alive:
            return Decision(Action.NOTHING)
        if not capacity:
            return Decision(Action.QUEUE, message=why or QUEUED)
        return Decision(Action.START)
    due = deadline(session)
    overdue = due is not None and now >= due
    if runner.alive:
        if overdue:
            return Decision(Action.KILL)
        wait = (due - now).total_seconds() if due else None
        return Decision(Action.NOTHING, requeue_after=wait)
    if runner.state == "exited" and runner.exit_code == 0:
        return Decision(Action.FINISH, Phase.COMPLETED, session.status.message or "completed")
    if overdue:
        return Decision(Action.FINISH, Phase.TIMED_OUT, f"timed out after {session.spec.timeout} s")
    if runner.state == "none":
        return Decision(
            Action.FINISH,
            Phase.FAILED,
            "runner is gone: vteam restarted while the session was running and its runner did not survive",
        )
    if _reported(session) and session.status.message:
        return Decision(Action.FINISH, Phase.FAILED, session.status.message)
    message = f"runner {runner.reason}"
    if runner.log_tail:
        message += "; last log lines:\n" + runner.log_tail
    return Decision(Action.FINISH, Phase.FAILED, message)


QUEUED = "queued: the most runners allowed at once are busy; this session starts when one finishes"


def project_limit(platform_limit: int, default: int | None, own: int | None) -> int:
    """How many runners one project may have at once: its own setting, else the platform's default share
    (half the platform's limit, rounded up), so one project never takes every slot."""
    if own is not None:
        return own
    return default if default is not None else max(1, (platform_limit + 1) // 2)


def project_queued(project: str, running: int, limit: int) -> str:
    return (
        f"queued: project {project!r} already runs {running} sessions, the most one project may run at once "
        f"({limit}); this session starts when one of them finishes"
    )


FAIR_QUEUED = (
    "queued: a session of a project running fewer sessions goes first; this session starts when a runner is free"
)


def _reported(session: AgenticSession) -> bool:
    return any(c.type == REPORTED and c.status == "True" for c in session.status.conditions)
