"""Issue 24: the log tells where a session's events end and about how much they take, on SQLite and S3,
so a page can start at the tail and the storage cap can count what a session already holds."""

from __future__ import annotations

from tests.events.envelopes import runner_event
from vteam.events import EventLog

UID = "33333333-3333-3333-3333-333333333333"


async def test_last_seq_and_stored_bytes_follow_appends(log: EventLog) -> None:
    assert await log.last_seq(UID) == 0
    assert await log.stored_bytes(UID) == 0

    await log.append_runner(UID, [runner_event(1, "a" * 10_000), runner_event(2, "b" * 10_000)])
    await log.append(UID, "vteam.phase", {"type": "CUSTOM", "name": "vteam.phase", "value": {"phase": "Running"}})

    assert await log.last_seq(UID) == 3
    held = await log.stored_bytes(UID)
    assert 20_000 <= held < 21_000
    await log.append_runner(UID, [runner_event(3, "c" * 10_000)])
    assert await log.stored_bytes(UID) >= held + 10_000
