"""The EventLog interface: durable, ordered, duplicate-free events per session."""

from __future__ import annotations

from typing import Any, Protocol

from vteam.events.envelope import Envelope


class EventLog(Protocol):
    """`append` returns only after events are durable; the caller acknowledges after that.

    The log assigns reader-visible `seq`s. Runner events carry the runner's own `seq`,
    kept for acknowledgement: one the log already holds is ignored.
    """

    async def append_runner(self, session_uid: str, envelopes: list[Envelope]) -> list[Envelope]:
        """Store the runner's envelopes not yet held; return them as stored (log seq)."""
        ...

    async def append(self, session_uid: str, type: str, data: dict[str, Any]) -> Envelope:
        """Store an event the backend itself emits (phase changes)."""
        ...

    async def read(self, session_uid: str, *, after: int = 0, limit: int = 500) -> list[Envelope]: ...

    async def last_runner_seq(self, session_uid: str) -> int: ...

    async def last_seq(self, session_uid: str) -> int:
        """The highest log seq stored (log seqs run 1, 2, 3 … without gaps), so a reader can start at the tail."""
        ...

    async def stored_bytes(self, session_uid: str) -> int:
        """About how many bytes the session's events take, for its storage cap."""
        ...

    async def delete(self, session_uid: str) -> None: ...

    async def prune(self, keep: set[str]) -> int:
        """Delete the events of every session not in `keep`; how many sessions' events went."""
        ...
