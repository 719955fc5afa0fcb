"""Store an event, then publish it to live readers: one call, so no writer can store and forget to publish."""

from __future__ import annotations

from typing import Any

from vteam.events.envelope import Envelope
from vteam.events.hub import Hub
from vteam.events.log import EventLog


class Recorder:
    """The one way anything writes a session's event: the log first (durable), then the hub (live).

    A reader that missed the publish replays from the log, so publishing after storing never loses an event.
    """

    def __init__(self, log: EventLog, hub: Hub) -> None:
        self.log = log
        self.hub = hub

    async def record(self, session_uid: str, type: str, data: dict[str, Any]) -> Envelope:
        """A server-side event (phase, control, pull request): the log gives it its seq."""
        envelope = await self.log.append(session_uid, type, data)
        self.hub.publish(session_uid, [envelope])
        return envelope

    async def record_runner(self, session_uid: str, envelopes: list[Envelope]) -> list[Envelope]:
        """Events a runner numbered itself; the ones already stored are not published again."""
        stored = await self.log.append_runner(session_uid, envelopes)
        self.hub.publish(session_uid, stored)
        return stored
