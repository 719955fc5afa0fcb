"""Recording a phase change: the status write and the `vteam.phase` event, always together."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vteam.errors import Conflict, InvalidTransition
from vteam.events import EventLog, Hub, Recorder
from vteam.events.agui import PHASE, custom, dump
from vteam.resources import AgenticSession, Phase, check_transition, status_patch
from vteam.store import ResourceStore

RETRIES = 5


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def set_phase(
    store: ResourceStore,
    log: EventLog,
    hub: Hub,
    project: str,
    name: str,
    phase: Phase,
    *,
    message: str | None = None,
    **fields: Any,
) -> AgenticSession:
    """Move a session to `phase` under the phase rules, retrying on write conflicts.

    The status write comes first and the event second: readers end on the final event, so it
    must never announce a phase the store does not hold.
    """
    for attempt in range(RETRIES):
        current = await store.get(AgenticSession, name, project)
        check_transition(current.status.phase, phase)
        changes: dict[str, Any] = {"phase": phase, "message": message, **fields}
        if phase.terminal and current.status.completion_time is None:
            changes["completion_time"] = utcnow()
        if (
            phase == current.status.phase
            and all(getattr(current.status, k) == v for k, v in changes.items() if k != "message")
            and current.status.message == message
        ):
            return current
        try:
            updated = await store.patch_status(
                AgenticSession,
                name,
                project,
                status_patch(**changes),
                resource_version=current.metadata.resource_version,
            )
        except Conflict:
            if attempt == RETRIES - 1:
                raise
            continue
        if updated.status.phase != current.status.phase:
            value = {"phase": phase.value, "previous": current.status.phase.value, "final": phase.terminal}
            if message:
                value["message"] = message
            await Recorder(log, hub).record(current.metadata.uid or "", PHASE, dump(custom(PHASE, **value)))
        return updated
    raise AssertionError("unreachable")


async def update_status(store: ResourceStore, project: str, name: str, **fields: Any) -> AgenticSession:
    """Merge status fields into a live session, retrying on write conflicts; a final session refuses.

    A stopping session keeps the stop's message: it ends Stopped, so a runner's late "completed" must not
    become the message of that phase.
    """
    for attempt in range(RETRIES):
        current = await store.get(AgenticSession, name, project)
        if current.phase.terminal:
            raise InvalidTransition(f"session already ended ({current.phase.value})")
        changes = {k: v for k, v in fields.items() if not (k == "message" and current.phase == Phase.STOPPING)}
        try:
            return await store.patch_status(
                AgenticSession,
                name,
                project,
                status_patch(**changes),
                resource_version=current.metadata.resource_version,
            )
        except Conflict:
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")
