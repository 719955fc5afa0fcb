"""Recording a phase change, by one of two writers chosen once per mode.

`Announced` writes the status and the `vteam.phase` event together (the embedded mode); `StatusOnly` writes
the status alone (cluster mode, where the backend's `PhaseRelay` is the one writer of phase events).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from vteam.errors import Conflict, InvalidTransition
from vteam.events import EventLog, Hub, Recorder
from vteam.events.agui import PHASE, custom, dump
from vteam.resources import AgenticSession, Phase, check_transition, status_patch
from vteam.store import ResourceStore

RETRIES = 5


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class PhaseWriter(Protocol):
    async def __call__(
        self,
        project: str,
        name: str,
        phase: Phase,
        *,
        message: str | None = None,
        based_on: AgenticSession | None = None,
        **fields: Any,
    ) -> AgenticSession:
        """Move a session to `phase` under the phase rules, retrying on write conflicts.

        With `based_on`, the session a decision was made on, the write holds only if nothing changed since: a
        runner's final report landing meanwhile is a Conflict, and the session is decided again with it.
        """
        ...


class StatusOnly:
    """Writes the status alone: someone else (cluster mode's relay) turns each change into its event."""

    def __init__(self, store: ResourceStore) -> None:
        self._store = store

    async def __call__(
        self,
        project: str,
        name: str,
        phase: Phase,
        *,
        message: str | None = None,
        based_on: AgenticSession | None = None,
        **fields: Any,
    ) -> AgenticSession:
        _, updated = await _write(self._store, project, name, phase, message, based_on, fields)
        return updated


class Announced:
    """Writes the status, then the `vteam.phase` event: readers end on the final event, so it must never
    announce a phase the store does not hold."""

    def __init__(self, store: ResourceStore, log: EventLog, hub: Hub) -> None:
        self._store = store
        self._recorder = Recorder(log, hub)

    async def __call__(
        self,
        project: str,
        name: str,
        phase: Phase,
        *,
        message: str | None = None,
        based_on: AgenticSession | None = None,
        **fields: Any,
    ) -> AgenticSession:
        previous, updated = await _write(self._store, project, name, phase, message, based_on, fields)
        if updated.status.phase != previous.status.phase:
            value = {"phase": phase.value, "previous": previous.status.phase.value, "final": phase.terminal}
            if message:
                value["message"] = message
            await self._recorder.record(previous.metadata.uid or "", PHASE, dump(custom(PHASE, **value)))
        return updated


async def _write(
    store: ResourceStore,
    project: str,
    name: str,
    phase: Phase,
    message: str | None,
    based_on: AgenticSession | None,
    fields: dict[str, Any],
) -> tuple[AgenticSession, AgenticSession]:
    """The status write behind both writers: the session as read before it, and as written."""
    for attempt in range(RETRIES):
        current = based_on if based_on is not None and attempt == 0 else await store.get(AgenticSession, name, project)
        check_transition(current.status.phase, phase)
        changes: dict[str, Any] = {"phase": phase, "message": message, **fields}
        if phase.terminal and current.status.completion_time is None:
            changes["completion_time"] = utcnow()
        if (
            phase == current.status.phase
            and all(getattr(current.status, k) == v for k, v in changes.items() if k != "message")
            and current.status.message == message
        ):
            return current, current
        try:
            updated = await store.patch_status(
                AgenticSession,
                name,
                project,
                status_patch(**changes),
                resource_version=current.metadata.resource_version,
            )
        except Conflict:
            if based_on is not None or attempt == RETRIES - 1:
                raise
            continue
        return current, updated
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
