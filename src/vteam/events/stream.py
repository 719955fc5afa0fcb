"""Replay stored events after a point, then live ones: no gap, no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from vteam.events.envelope import Envelope
from vteam.events.hub import Hub
from vteam.events.log import EventLog

PAGE = 500


async def follow(
    log: EventLog,
    hub: Hub,
    session_uid: str,
    *,
    after: int = 0,
    finished: Callable[[], Awaitable[bool]],
    idle_check: float = 2.0,
    live: bool = True,
) -> AsyncGenerator[Envelope, None]:
    """Yield events with seq > after until the session is finished and everything stored was sent.

    Subscribing before reading the log closes the window where an event could fall between them.
    """
    last = after
    async with hub.subscribe(session_uid) as queue:
        while True:
            page = await log.read(session_uid, after=last, limit=PAGE)
            for env in page:
                last = env.seq
                yield env
                if is_final(env):
                    return
            if len(page) < PAGE:
                break
        while live:
            try:
                env = await asyncio.wait_for(queue.get(), timeout=idle_check)
            except TimeoutError:
                done = await finished()
                for env in await log.read(session_uid, after=last, limit=PAGE):
                    last = env.seq
                    yield env
                    if is_final(env):
                        return
                if done and not await log.read(session_uid, after=last, limit=1):
                    return
                continue
            if env.seq <= last:
                continue
            if env.seq > last + 1:
                for stored in await log.read(session_uid, after=last, limit=env.seq - last - 1):
                    last = stored.seq
                    yield stored
            last = env.seq
            yield env
            if is_final(env):
                return


def is_final(env: Envelope) -> bool:
    """The backend's last word on a session: a phase event carrying a final phase."""
    if env.type != "vteam.phase":
        return False
    value = env.data.get("value") or {}
    return bool(value.get("final"))
