"""The recorder: one call stores an event and hands it to a live subscriber, on every log backend."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import vteam
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


def test_only_the_recorder_publishes_events() -> None:
    """A writer that stores an event and publishes it by hand can forget the second half, so outside
    `vteam.events` no module calls a hub's `publish`: they record through `Recorder`."""
    root = Path(vteam.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "events"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "publish"
                and "hub" in ast.unparse(node.func.value).lower()
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
