"""The recorder: one call stores an event and hands it to a live subscriber, on every log backend."""

from __future__ import annotations

import asyncio

from tests.events.envelopes import runner_events
from vteam.events import EventLog, Hub, Recorder
from vteam.events.agui import PHASE, custom, dump


async def test_a_recorded_event_is_in_the_log_and_reaches_a_live_subscriber(log: EventLog, hub: Hub) -> None:
    recorder = Recorder(log, hub)
    async with hub.subscribe("u1") as queue:
        env = await recorder.record("u1", PHASE, dump(custom(PHASE, phase="Running", previous="Creating")))
        delivered = await asyncio.wait_for(queue.get(), 5)
    assert delivered == env
    assert await log.read("u1") == [env]


async def test_runner_events_are_published_once_though_resent(log: EventLog, hub: Hub) -> None:
    recorder = Recorder(log, hub)
    events = runner_events(range(1, 4))
    async with hub.subscribe("u2") as queue:
        first = await recorder.record_runner("u2", events)
        again = await recorder.record_runner("u2", events)
        delivered = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [e.seq for e in first] == [1, 2, 3]
    assert again == []
    assert delivered == first
    assert [e.seq for e in await log.read("u2")] == [1, 2, 3]
