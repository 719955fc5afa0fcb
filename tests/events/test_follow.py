"""`follow`: replay stored events, then live ones, with a real SqliteEventLog and Hub.

Writers here do what the API does: store first (`append_runner` / `append`), then
`hub.publish(uid, stored)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.events.envelopes import runner_event, runner_events
from vteam.events import Envelope, Hub, follow
from vteam.events import hub as hub_module
from vteam.events import stream as stream_module
from vteam.events.sqlite import SqliteEventLog

PHASE = "vteam.phase"
FINAL = {"value": {"phase": "Completed", "final": True}}
STEP = 5.0
"""Seconds to wait for any one event before calling the reader stuck: far above any real delay."""


async def never() -> bool:
    return False


async def always() -> bool:
    return True


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close a watch or reader early; the Protocols promise only an AsyncIterator."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def step(reader: AsyncIterator[Envelope]) -> Envelope:
    return await asyncio.wait_for(anext(reader), timeout=STEP)


async def collect(reader: AsyncIterator[Envelope], timeout: float = 10.0) -> list[Envelope]:
    """Everything the reader yields until it ends; fails the test if it never does."""
    got: list[Envelope] = []

    async def drain() -> None:
        async for env in reader:
            got.append(env)

    try:
        await asyncio.wait_for(drain(), timeout)
    except TimeoutError:
        pytest.fail(f"reader did not end; it had yielded seqs {[env.seq for env in got]}")
    return got


def seqs(envelopes: list[Envelope]) -> list[int]:
    return [env.seq for env in envelopes]


async def publish_final(log: SqliteEventLog, hub: Hub, uid: str) -> Envelope:
    final = await log.append(uid, PHASE, FINAL)
    hub.publish(uid, [final])
    return final


@pytest.mark.parametrize(
    ("stored_before", "start_after_batch"),
    [(0, 0), (6, 2), (30, 12)],
    ids=["empty-log", "short-log", "long-log"],
)
async def test_reader_joining_mid_stream_gets_every_event_once_in_order(
    log: SqliteEventLog, hub: Hub, stored_before: int, start_after_batch: int
) -> None:
    uid = "mid-stream"
    for seq in range(1, stored_before + 1):
        hub.publish(uid, await log.append_runner(uid, [runner_event(seq)]))
    reader_may_start = asyncio.Event()

    async def writer() -> None:
        last = stored_before
        for batch in range(25):
            # Each batch resends the runner's previous event, as a reconnecting runner does.
            sent = runner_events(range(max(1, last), last + 3))
            last += 2
            hub.publish(uid, await log.append_runner(uid, sent))
            if batch % 4 == 3:
                hub.publish(uid, [await log.append(uid, "vteam.log", {"value": {"line": f"batch {batch}"}})])
            if batch == start_after_batch:
                reader_may_start.set()
        await publish_final(log, hub, uid)

    writing = asyncio.create_task(writer())

    async def finished() -> bool:
        return writing.done()

    await reader_may_start.wait()
    got = await collect(follow(log, hub, uid, finished=finished, idle_check=0.05))
    await writing

    stored = await log.read(uid, limit=10_000)
    assert seqs(got) == list(range(1, len(stored) + 1))
    assert got == stored
    assert got[-1].type == PHASE
    assert got[-1].data == FINAL


async def test_reader_ends_on_the_final_event_even_if_never_told_finished(log: SqliteEventLog, hub: Hub) -> None:
    uid = "ends-on-final"
    await log.append_runner(uid, runner_events([1]))
    reader = follow(log, hub, uid, finished=never)
    try:
        first = await step(reader)
        hub.publish(uid, await log.append_runner(uid, runner_events([2, 3])))
        final = await publish_final(log, hub, uid)
        rest = await collect(reader)
    finally:
        await aclose(reader)

    assert seqs([first, *rest]) == [1, 2, 3, 4]
    assert rest[-1] == final


async def test_after_k_starts_after_k(log: SqliteEventLog, hub: Hub) -> None:
    uid = "after"
    await log.append_runner(uid, runner_events(range(1, 11)))
    reader = follow(log, hub, uid, after=7, finished=never)
    try:
        first = await step(reader)
        hub.publish(uid, await log.append_runner(uid, runner_events([11])))
        final = await publish_final(log, hub, uid)
        rest = await collect(reader)
    finally:
        await aclose(reader)

    assert seqs([first, *rest]) == [8, 9, 10, 11, 12]
    assert first.data["delta"] == "chunk 8"
    assert rest[-1] == final


async def test_after_the_last_stored_seq_yields_only_new_events(log: SqliteEventLog, hub: Hub) -> None:
    uid = "after-all"
    await log.append_runner(uid, runner_events(range(1, 4)))
    reader = follow(log, hub, uid, after=3, finished=never)
    try:
        pending = asyncio.ensure_future(step(reader))
        await asyncio.sleep(0.05)  # let the reader subscribe and find nothing to replay
        hub.publish(uid, await log.append_runner(uid, runner_events([4])))
        new = await pending
        final = await publish_final(log, hub, uid)
        rest = await collect(reader)
    finally:
        await aclose(reader)

    assert new.seq == 4
    assert rest == [final]


async def test_live_false_returns_only_stored_events(log: SqliteEventLog, hub: Hub) -> None:
    uid = "replay-only"
    stored = await log.append_runner(uid, runner_events(range(1, 6)))

    got = await collect(follow(log, hub, uid, finished=never, live=False))

    assert got == stored


async def test_live_false_with_after_returns_the_stored_tail(log: SqliteEventLog, hub: Hub) -> None:
    uid = "replay-tail"
    stored = await log.append_runner(uid, runner_events(range(1, 6)))

    got = await collect(follow(log, hub, uid, after=2, finished=never, live=False))

    assert got == stored[2:]


async def test_replay_spanning_several_pages_yields_everything_once(
    log: SqliteEventLog, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "PAGE", 3)
    uid = "pages"
    stored = await log.append_runner(uid, runner_events(range(1, 11)))

    got = await collect(follow(log, hub, uid, finished=never, live=False))

    assert got == stored


async def test_finished_session_without_final_event_still_ends(log: SqliteEventLog, hub: Hub) -> None:
    uid = "no-final"
    stored = await log.append_runner(uid, runner_events(range(1, 4)))

    got = await collect(follow(log, hub, uid, finished=always, idle_check=0.05))

    assert got == stored


async def test_finished_check_picks_up_stored_events_nobody_published(log: SqliteEventLog, hub: Hub) -> None:
    uid = "unpublished-tail"
    await log.append_runner(uid, runner_events(range(1, 4)))
    done = False

    async def finished() -> bool:
        return done

    reader = follow(log, hub, uid, finished=finished, idle_check=0.05)
    try:
        replayed = [await step(reader) for _ in range(3)]
        hub.publish(uid, await log.append_runner(uid, runner_events([4])))
        await log.append_runner(uid, runner_events([5]))  # stored, never published
        done = True
        rest = await collect(reader)
    finally:
        await aclose(reader)

    assert seqs(replayed) == [1, 2, 3]
    assert seqs(rest) == [4, 5]
    assert rest[-1].data["delta"] == "chunk 5"


async def test_overflowing_subscriber_gets_every_event_via_gap_refill(
    log: SqliteEventLog, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_LIMIT", 3)
    uid = "slow-reader"
    await log.append_runner(uid, runner_events([1]))
    reader = follow(log, hub, uid, finished=never, idle_check=0.05)
    try:
        async with hub.subscribe(uid) as probe:
            got = [await step(reader)]  # the reader is subscribed from here on
            for seq in range(2, 13):
                hub.publish(uid, await log.append_runner(uid, [runner_event(seq)]))
            assert probe.qsize() == 3, "the hub should have dropped events beyond its queue limit"
        got += [await step(reader) for _ in range(3)]
        final = await publish_final(log, hub, uid)
        got += await collect(reader)
    finally:
        await aclose(reader)

    assert seqs(got) == list(range(1, 14))
    assert got == await log.read(uid)
    assert got[-1] == final


async def test_overflowed_reader_catches_up_while_the_session_is_quiet(
    log: SqliteEventLog, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow reader overflows during a burst; then the session goes quiet (an interactive agent
    # waiting for input). The dropped events are stored, so the reader should deliver them
    # without needing yet another event to arrive first.
    monkeypatch.setattr(hub_module, "QUEUE_LIMIT", 3)
    uid = "quiet-after-burst"
    await log.append_runner(uid, runner_events([1]))
    reader = follow(log, hub, uid, finished=never, idle_check=0.05)
    try:
        got = [await step(reader)]
        for seq in range(2, 13):
            hub.publish(uid, await log.append_runner(uid, [runner_event(seq)]))
        got += [await step(reader) for _ in range(3)]
        try:
            got += [await asyncio.wait_for(anext(reader), timeout=2.0) for _ in range(8)]
        except TimeoutError:
            pytest.fail(
                f"events 5-12 are stored but the reader stopped at seq {got[-1].seq} "
                "and waited through 40 idle checks for another publish"
            )
    finally:
        await aclose(reader)

    assert seqs(got) == list(range(1, 13))
