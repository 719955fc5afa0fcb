"""Cluster mode's backend half of session life: the operator (and the backend, for a stop or a runner's
report) moves phases in the cluster, and this relay turns each change into the `vteam.phase` event that live
readers follow and end on. It is the one writer of phase events in cluster mode: every other phase write there
is a status write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from vteam.controller.executor import Key
from vteam.errors import Expired, VteamError
from vteam.events import EventLog, Hub, Recorder
from vteam.events.agui import PHASE, custom, dump
from vteam.resources import AgenticSession, Phase
from vteam.store import ResourceStore

log = logging.getLogger(__name__)
ORDER = {
    Phase.PENDING: 0,
    Phase.CREATING: 1,
    Phase.RUNNING: 2,
    Phase.STOPPING: 3,
    **{phase: 4 for phase in Phase if phase.terminal},
}
"""Phases only move forward; an announcement never goes back."""
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


class PhaseRelay:
    """Watches every session with the backend's own store; announces a phase it has not announced yet.

    Phases held when the relay starts count as announced: a change made while no backend ran is not replayed,
    and readers of such a session still end, on its final status.
    """

    def __init__(
        self,
        store: ResourceStore,
        log: EventLog,
        hub: Hub,
        *,
        seen: Callable[[AgenticSession], None] | None = None,
        gone: Callable[[AgenticSession], None] | None = None,
    ) -> None:
        self._store = store
        self._log = log
        self._recorder = Recorder(log, hub)
        self.announced: dict[str, str] = {}
        """Session uid → the phase its last `vteam.phase` event announced (since this process started)."""
        self._seen = seen or (lambda _: None)
        """Told of every session the relay sees, so others (the event log's locator) need not list them."""
        self._gone = gone or (lambda _: None)
        self._task: asyncio.Task[None] | None = None

    def enqueue(self, key: Key) -> None:
        """Nothing to do here: the operator reacts to the cluster's own watch events."""

    async def start(self) -> None:
        version = await self._relist(first=True)
        try:
            removed = await self._log.prune(set(self.announced))
        except VteamError as exc:
            log.warning("could not remove the events of deleted sessions: %s", exc.detail)
        else:
            if removed:
                log.info("removed the events of %d deleted sessions", removed)
        self._task = asyncio.create_task(self._run(version), name="phase-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _relist(self, *, first: bool = False) -> str:
        """Catch up from a full listing: at the first start phases count as announced, later ones are announced."""
        listing = await self._store.list(AgenticSession)
        for session in listing.items:
            self._seen(session)
            if first:
                self.announced.setdefault(session.metadata.uid or "", session.phase.value)
            else:
                await self.announce(session)
        return listing.resource_version

    async def _run(self, version: str | None) -> None:
        """Watch for good: any failure (the API server gone for a while, history expired) relists, with a
        growing pause while relisting fails, and watches again."""
        pause = RETRY_SECONDS
        while True:
            try:
                if version is None:
                    version = await self._relist()
                    pause = RETRY_SECONDS
                async for event in self._store.watch(AgenticSession, resource_version=version):
                    session = event.object
                    version = session.metadata.resource_version or version
                    if event.type == "DELETED":
                        self.announced.pop(session.metadata.uid or "", None)
                        await self._log.delete(session.metadata.uid or "")
                        self._gone(session)
                    else:
                        self._seen(session)
                        await self.announce(session)
            except Expired:
                version = None
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("phase relay failed; watching again in %.0f s", pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_RETRY_SECONDS)
                version = None

    async def announce(self, session: AgenticSession) -> None:
        uid = session.metadata.uid or ""
        phase = session.phase
        previous = self.announced.get(uid)
        if previous is None and phase == Phase.PENDING:
            return
        if previous is not None and ORDER[phase] <= ORDER.get(Phase(previous), -1):
            return  # the same phase again, or a stale watch event behind what was announced
        value: dict[str, object] = {"phase": phase.value, "previous": previous or "", "final": phase.terminal}
        if session.status.message:
            value["message"] = session.status.message
        await self._recorder.record(uid, PHASE, dump(custom(PHASE, **value)))
        self.announced[uid] = phase.value
