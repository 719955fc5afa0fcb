"""An event log that remembers the last phase it announced per session, so a phase is announced once.

In cluster mode the operator moves phases in the cluster and the backend announces them; the backend also
moves some phases itself (a stop request). Both announce through this log, which tells them what was said.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from vteam.events.agui import PHASE
from vteam.events.envelope import Envelope
from vteam.events.log import EventLog


class PhaseTrackingLog:
    def __init__(self, inner: EventLog) -> None:
        self.inner = inner
        self.announced: dict[str, str] = {}
        """Session uid → the phase its last `vteam.phase` event announced (since this process started)."""
        self._said: dict[str, Envelope] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def append_runner(self, session_uid: str, envelopes: list[Envelope]) -> list[Envelope]:
        return await self.inner.append_runner(session_uid, envelopes)

    async def append(self, session_uid: str, type: str, data: dict[str, Any]) -> Envelope:
        """A phase already announced is not stored again: its first announcement is returned instead, so
        whichever of the backend and the relay gets there second adds nothing."""
        phase = (data.get("value") or {}).get("phase") if type == PHASE else None
        if phase is None:
            return await self.inner.append(session_uid, type, data)
        async with self._locks[session_uid]:
            said = self._said.get(session_uid)
            if said is not None and self.announced.get(session_uid) == str(phase):
                return said
            env = await self.inner.append(session_uid, type, data)
            self.announced[session_uid] = str(phase)
            self._said[session_uid] = env
            return env

    async def read(self, session_uid: str, *, after: int = 0, limit: int = 500) -> list[Envelope]:
        return await self.inner.read(session_uid, after=after, limit=limit)

    async def last_runner_seq(self, session_uid: str) -> int:
        return await self.inner.last_runner_seq(session_uid)

    async def last_seq(self, session_uid: str) -> int:
        return await self.inner.last_seq(session_uid)

    async def stored_bytes(self, session_uid: str) -> int:
        return await self.inner.stored_bytes(session_uid)

    async def delete(self, session_uid: str) -> None:
        self._forget(session_uid)
        await self.inner.delete(session_uid)

    async def prune(self, keep: set[str]) -> int:
        for uid in set(self.announced) - keep:
            self._forget(uid)
        return await self.inner.prune(keep)

    def _forget(self, uid: str) -> None:
        self.announced.pop(uid, None)
        self._said.pop(uid, None)
        self._locks.pop(uid, None)
