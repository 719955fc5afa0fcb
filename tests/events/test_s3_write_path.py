"""S3EventLog's write path against moto's S3 server: appends that arrive together share one PUT, a failed
PUT fails all of its callers, and compaction runs beside appends and readers, surviving a crash midway."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from tests.events.envelopes import runner_event, runner_events
from tests.events.s3_logs import UID, Requests, deltas, seqs
from tests.support.moto_s3 import keys, s3_client
from vteam.errors import Unavailable
from vteam.events import Envelope
from vteam.events.s3 import S3EventLog

MERGED = "-"
"""Only a compacted segment's name holds a dash (`000000000001-000000000010.jsonl`)."""


class Crash(BaseException):
    """The backend dies here: nothing after this point runs."""


def when_put(client: Any, hook: Callable[[str], None]) -> None:
    """Call `hook` with the key of each PutObject, in the thread that sends it."""
    client.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: hook(params["Key"]))


async def test_appends_that_arrive_together_share_one_put_in_order(
    make_log: Callable[..., S3EventLog], moto_endpoint: str
) -> None:
    client = s3_client(moto_endpoint)
    puts = Requests(client, "PutObject")
    log = make_log(client)
    await log.last_seq(UID)

    stored = await asyncio.gather(
        *(log.append_runner(UID, [runner_event(seq)]) for seq in range(1, 21)),
        log.append(UID, "vteam.log", {"value": {"line": "between"}}),
        log.append_runner(UID, runner_events([20, 21, 22])),
        log.append_runner(UID, runner_events([22, 23])),
        log.append_runner(UID, runner_events([23])),
    )

    assert puts.count == 2  # the first append alone, then everything that arrived while it was in flight
    assert [seqs(envelopes) for envelopes in stored[:20]] == [[seq] for seq in range(1, 21)]
    assert [seqs(envelopes) for envelopes in stored[21:]] == [[22, 23], [24], []]
    assert stored[20].seq == 21
    read = await make_log(hot_events=0).read(UID)
    assert seqs(read) == list(range(1, 25))
    assert deltas(read) == [*(f"chunk {n}" for n in range(1, 21)), "vteam.log", "chunk 21", "chunk 22", "chunk 23"]
    assert await make_log().last_runner_seq(UID) == 23
    assert await log.read(UID) == read


@pytest.mark.parametrize("stage", ["refused", "answer-lost"])
async def test_a_failed_put_fails_every_caller_of_its_batch_and_the_resend_is_stored_once(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, stage: str
) -> None:
    client = s3_client(moto_endpoint)
    failing = False
    attempts = 0

    def fail(**_: Any) -> None:
        nonlocal attempts
        if failing:
            attempts += 1
            raise (EndpointConnectionError if stage == "refused" else ReadTimeoutError)(endpoint_url=moto_endpoint)

    client.meta.events.register("before-call.s3.PutObject" if stage == "refused" else "after-call.s3.PutObject", fail)
    log = make_log(client)
    await log.append_runner(UID, runner_events([1, 2, 3]))

    failing = True
    outcomes = await asyncio.gather(
        *(log.append_runner(UID, [runner_event(seq)]) for seq in range(4, 14)), return_exceptions=True
    )
    failing = False
    resent = await asyncio.gather(*(log.append_runner(UID, [runner_event(seq)]) for seq in range(4, 14)))
    again = await log.append_runner(UID, runner_events(range(1, 14)))

    assert attempts == 2  # the first append alone, then the nine that waited for it, together
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    stored_by_resend = [seq for envelopes in resent for seq in seqs(envelopes)]
    assert stored_by_resend == ([] if stage == "answer-lost" else list(range(4, 14)))
    assert again == []
    read = await make_log(hot_events=0).read(UID)
    assert seqs(read) == list(range(1, 14))
    assert deltas(read) == [f"chunk {n}" for n in range(1, 14)]


async def test_appends_go_on_while_a_compaction_is_held_up(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client(moto_endpoint)
    held, release = threading.Event(), threading.Event()

    def hold(key: str) -> None:
        if MERGED in key.rsplit("/", 1)[-1]:
            held.set()
            release.wait(10)

    when_put(client, hold)
    log = make_log(client, compact_parts=1000)
    for seq in range(1, 11):
        await log.append_runner(UID, [runner_event(seq)])

    compacting = asyncio.create_task(log.compact(UID))
    try:
        assert await asyncio.to_thread(held.wait, 10)
        for seq in range(11, 21):
            await log.append_runner(UID, [runner_event(seq)])
        still_held = not compacting.done()
        during = await make_log(hot_events=0).read(UID)
    finally:
        release.set()
        removed = await compacting

    assert still_held  # the appends were stored while the compaction waited
    assert seqs(during) == list(range(1, 21))
    assert removed == 10
    stored = sorted(key.rsplit("/", 1)[-1] for key in keys(moto_endpoint, s3_bucket))
    assert stored == ["000000000001-000000000010.jsonl", *(f"{seq:012d}.jsonl" for seq in range(11, 21))]
    read = await make_log(hot_events=0).read(UID)
    assert seqs(read) == list(range(1, 21))
    assert deltas(read) == [f"chunk {n}" for n in range(1, 21)]


async def test_compaction_beside_appends_and_readers_loses_and_doubles_nothing(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    compactions = 0

    def count(key: str) -> None:
        nonlocal compactions
        compactions += MERGED in key.rsplit("/", 1)[-1]

    client = s3_client(moto_endpoint)
    when_put(client, count)
    log = make_log(client, compact_parts=4)
    seen: list[list[int]] = []
    writing = True

    async def read_meanwhile() -> None:
        while writing:
            seen.append(seqs(await make_log(hot_events=0).read(UID, limit=1000)))

    async def write() -> None:
        nonlocal writing
        try:
            for seq in range(1, 61, 2):
                await asyncio.gather(
                    log.append_runner(UID, [runner_event(seq)]), log.append_runner(UID, [runner_event(seq + 1)])
                )
        finally:
            writing = False

    await asyncio.gather(write(), read_meanwhile())
    await log.settle()

    assert compactions >= 3
    assert seen
    assert all(page == list(range(1, len(page) + 1)) for page in seen)  # never a gap, never a duplicate
    read = await make_log(hot_events=0).read(UID, limit=1000)
    assert seqs(read) == list(range(1, 61))
    assert deltas(read) == [f"chunk {n}" for n in range(1, 61)]
    assert len(keys(moto_endpoint, s3_bucket)) < 30


async def test_the_end_of_a_session_compacts_it_whole_beside_later_appends(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    log = make_log(compact_parts=1000)
    for seq in range(1, 9):
        await log.append_runner(UID, [runner_event(seq)])
    final = await log.append(UID, "vteam.phase", {"value": {"phase": "Completed", "final": True}})
    after = await log.append(UID, "vteam.pr", {"value": {"url": "https://example.test/pr/1"}})
    await log.settle()

    assert (final.seq, after.seq) == (9, 10)
    read = await make_log(hot_events=0).read(UID)
    assert seqs(read) == list(range(1, 11))
    assert await log.read(UID) == read
    assert len(keys(moto_endpoint, s3_bucket)) <= 2


async def test_a_crash_between_compactions_write_and_delete_reads_and_appends_correctly(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client(moto_endpoint)

    def crash(**_: Any) -> None:
        raise Crash

    client.meta.events.register("before-call.s3.DeleteObjects", crash)
    crashed = make_log(client, compact_parts=1000)
    for seq in range(1, 13):
        await crashed.append_runner(UID, [runner_event(seq)])
    with pytest.raises(Crash):
        await crashed.compact(UID)  # the merged segment is stored; the backend dies before deleting its parts
    left = sorted(key.rsplit("/", 1)[-1] for key in keys(moto_endpoint, s3_bucket))

    restarted = make_log(hot_events=0)
    read = await restarted.read(UID)
    paged = [seqs(await restarted.read(UID, after=after, limit=5)) for after in range(0, 12, 5)]
    held = await restarted.last_runner_seq(UID)
    resent = await restarted.append_runner(UID, runner_events(range(10, 15)))
    removed = await restarted.compact(UID)

    assert left == ["000000000001-000000000012.jsonl", *(f"{seq:012d}.jsonl" for seq in range(1, 13))]
    assert seqs(read) == list(range(1, 13))
    assert paged == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert held == 12
    assert seqs(resent) == [13, 14]
    assert removed == 14  # the twelve parts left behind, the merged segment and the new part
    assert len(keys(moto_endpoint, s3_bucket)) == 1
    final: list[Envelope] = await make_log(hot_events=0).read(UID)
    assert seqs(final) == list(range(1, 15))
    assert deltas(final) == [f"chunk {n}" for n in range(1, 15)]
