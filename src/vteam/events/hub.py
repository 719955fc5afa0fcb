"""In-process fan-out of freshly stored events to live readers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from vteam.events.envelope import Envelope

QUEUE_LIMIT = 10_000


class Hub:
    """A slow reader's queue drops events rather than grow; the reader refills gaps from the log."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Envelope]]] = defaultdict(set)

    def publish(self, session_uid: str, envelopes: Iterable[Envelope]) -> None:
        for queue in self._subscribers.get(session_uid, ()):
            for env in envelopes:
                try:
                    queue.put_nowait(env)
                except asyncio.QueueFull:
                    break

    def readers(self, session_uid: str) -> int:
        """How many live readers follow a session: each open stream holds one until it is torn down."""
        return len(self._subscribers.get(session_uid, ()))

    @asynccontextmanager
    async def subscribe(self, session_uid: str) -> AsyncIterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers[session_uid].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[session_uid].discard(queue)
            if not self._subscribers[session_uid]:
                del self._subscribers[session_uid]
