"""S3EventLog against moto's S3 server: where objects go, restarts, outages, the hot buffer, compaction,
retention, deletion and the settings it is built from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from pydantic import SecretStr

from tests.events.envelopes import runner_event, runner_events
from tests.events.s3_logs import OTHER, PLACES, UID, Requests, deltas, place, seqs
from tests.support.moto_s3 import MotoS3, free_port, keys, s3_client
from vteam.errors import NotFound, Unavailable
from vteam.events.s3 import S3EventLog
from vteam.settings import Settings

FINAL = {"value": {"phase": "Completed", "final": True}}


async def nowhere(uid: str) -> tuple[str, str] | None:
    """The platform's answer once a session's resource is gone."""
    return None


async def test_objects_land_under_project_session_and_uid(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    log = make_log(prefix="shared/vteam")
    await log.append_runner(UID, runner_events([1, 2]))
    await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})
    await log.append_runner(OTHER, runner_events([1]))

    stored = keys(moto_endpoint, s3_bucket)

    assert sorted(stored) == [
        f"shared/vteam/sessions/team-a/fix-login/{UID}/000000000001.jsonl",
        f"shared/vteam/sessions/team-a/fix-login/{UID}/000000000003.jsonl",
        f"shared/vteam/sessions/team-b/add-docs/{OTHER}/000000000001.jsonl",
    ]


async def test_a_recreated_session_of_the_same_name_starts_empty(make_log: Callable[..., S3EventLog]) -> None:
    log = make_log()
    await log.append_runner(UID, runner_events([1, 2, 3]))
    again = "0c0c0c0c-3333-4333-8333-333333333333"
    PLACES[again] = PLACES[UID]
    try:
        assert await log.read(again) == []
        assert await log.last_runner_seq(again) == 0
        assert seqs(await log.append_runner(again, runner_events([1]))) == [1]
    finally:
        del PLACES[again]


async def test_unknown_session_reads_empty_and_refuses_appends(make_log: Callable[..., S3EventLog]) -> None:
    log = make_log()

    assert await log.read("no-such-uid") == []
    assert await log.last_runner_seq("no-such-uid") == 0
    with pytest.raises(NotFound):
        await log.append_runner("no-such-uid", runner_events([1]))


async def test_a_restarted_writer_continues_without_loss_or_duplicate(make_log: Callable[..., S3EventLog]) -> None:
    before = make_log()
    await before.append_runner(UID, runner_events(range(1, 6)))
    await before.append(UID, "vteam.log", {"value": {"line": "cloned"}})

    after = make_log()
    resent_from = await after.last_runner_seq(UID) - 2  # a runner that missed its last acks resends more
    stored = await after.append_runner(UID, runner_events(range(resent_from, 9)))
    phase = await after.append(UID, "vteam.phase", {"value": {"phase": "Running"}})

    assert await after.last_runner_seq(UID) == 8
    assert seqs(stored) == [7, 8, 9]
    assert deltas(stored) == ["chunk 6", "chunk 7", "chunk 8"]
    assert phase.seq == 10
    read = await make_log().read(UID)
    assert seqs(read) == list(range(1, 11))
    assert deltas(read) == [
        *(f"chunk {n}" for n in range(1, 6)),
        "vteam.log",
        "chunk 6",
        "chunk 7",
        "chunk 8",
        "vteam.phase",
    ]


async def test_two_writers_never_overwrite_each_others_events(make_log: Callable[..., S3EventLog]) -> None:
    first, second = make_log(), make_log()
    await first.append_runner(UID, runner_events([1, 2, 3]))
    assert await second.last_runner_seq(UID) == 3  # both now believe seq 4 comes next

    await first.append_runner(UID, [runner_event(4, "from the first"), runner_event(5, "from the first")])
    stored = await second.append_runner(UID, [runner_event(n, "from the second") for n in (4, 5, 6)])

    assert [(env.seq, env.data["delta"]) for env in stored] == [(6, "from the second")]
    read = await make_log().read(UID)
    assert seqs(read) == [1, 2, 3, 4, 5, 6]
    assert deltas(read)[3:] == ["from the first", "from the first", "from the second"]


async def test_live_reads_are_served_from_memory_and_old_ranges_from_segments(
    make_log: Callable[..., S3EventLog], moto_endpoint: str
) -> None:
    client = s3_client(moto_endpoint)
    requests = Requests(client)
    log = make_log(client, hot_events=10)
    for start in range(1, 31, 3):
        await log.append_runner(UID, runner_events(range(start, start + 3)))
    everything = await log.read(UID, after=0, limit=100)
    requests.count = 0

    live = [await log.read(UID, after=after) for after in (20, 25, 29, 30)]
    served_from_memory = requests.count
    old = await log.read(UID, after=4, limit=6)

    assert served_from_memory == 0
    assert [seqs(page) for page in live] == [list(range(21, 31)), list(range(26, 31)), [30], []]
    assert requests.count > 0
    assert seqs(old) == list(range(5, 11))
    assert deltas(everything) == [f"chunk {n}" for n in range(1, 31)]
    restarted = make_log(hot_events=10)
    assert await restarted.read(UID, after=0, limit=100) == everything
    assert await restarted.read(UID, after=17, limit=5) == everything[17:22]


async def test_an_outage_acknowledges_nothing_and_the_resend_is_stored_once(s3_bucket: str) -> None:
    server = MotoS3().start()
    try:
        create = s3_client(server.endpoint)
        bucket = f"{s3_bucket}-outage"
        create.create_bucket(Bucket=bucket)
        log = S3EventLog(s3_client(server.endpoint), bucket=bucket, locate=place)
        await log.append_runner(UID, runner_events([1, 2, 3]))

        server.stop()
        with pytest.raises(Unavailable) as refused:
            await log.append_runner(UID, runner_events([4, 5, 6]))
        with pytest.raises(Unavailable):
            await log.append(UID, "vteam.log", {"value": {"line": "during the outage"}})
        server.start()

        resent = await log.append_runner(UID, runner_events([4, 5, 6]))
        again = await log.append_runner(UID, runner_events([4, 5, 6]))
        read = await S3EventLog(s3_client(server.endpoint), bucket=bucket, locate=place).read(UID)
    finally:
        server.stop()

    assert bucket in refused.value.detail
    assert seqs(resent) == [4, 5, 6]
    assert again == []
    assert seqs(read) == [1, 2, 3, 4, 5, 6]
    assert deltas(read) == [f"chunk {n}" for n in range(1, 7)]


async def test_a_lost_answer_to_a_stored_append_is_not_stored_twice(
    make_log: Callable[..., S3EventLog], moto_endpoint: str
) -> None:
    client = s3_client(moto_endpoint)
    lose_next_answer = False

    def lose(**_: Any) -> None:
        nonlocal lose_next_answer
        if lose_next_answer:
            lose_next_answer = False
            raise ReadTimeoutError(endpoint_url=moto_endpoint)

    client.meta.events.register("after-call.s3.PutObject", lose)
    log = make_log(client)
    await log.append_runner(UID, runner_events([1, 2]))

    lose_next_answer = True  # S3 stores the next segment, but its answer never arrives
    with pytest.raises(Unavailable):
        await log.append_runner(UID, runner_events([3]))
    resent = await log.append_runner(UID, runner_events([2, 3]))
    later = await log.append_runner(UID, runner_events([4]))

    assert resent == []
    assert seqs(later) == [4]
    assert await log.last_runner_seq(UID) == 4
    assert deltas(await make_log().read(UID)) == ["chunk 1", "chunk 2", "chunk 3", "chunk 4"]


async def test_compaction_keeps_every_read_the_same(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    log = make_log(compact_parts=1000)
    for seq in range(1, 21):
        await log.append_runner(UID, [runner_event(seq)])
        if seq % 7 == 0:
            await log.append(UID, "vteam.log", {"value": {"line": f"after {seq}"}})
    cold = make_log(hot_events=0)
    before = await cold.read(UID)
    pages_before = [await cold.read(UID, after=after, limit=4) for after in range(0, 23, 4)]

    removed = await log.compact(UID)

    assert removed == 22
    assert len(keys(moto_endpoint, s3_bucket)) == 1
    for reader in (log, make_log(hot_events=0)):
        assert await reader.read(UID) == before
        assert [await reader.read(UID, after=after, limit=4) for after in range(0, 23, 4)] == pages_before
        assert await reader.last_runner_seq(UID) == 20
    assert seqs(await make_log().append_runner(UID, runner_events([20, 21]))) == [23]


async def test_parts_are_compacted_as_they_pile_up_and_when_the_session_ends(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    log = make_log(compact_parts=5)
    for seq in range(1, 13):
        await log.append_runner(UID, [runner_event(seq)])
    await log.settle()
    piled = len(keys(moto_endpoint, s3_bucket))
    await log.append(UID, "vteam.phase", FINAL)
    await log.settle()

    assert piled < 5
    assert len(keys(moto_endpoint, s3_bucket)) == 1
    read = await make_log(hot_events=0).read(UID)
    assert seqs(read) == list(range(1, 14))
    assert deltas(read) == [*(f"chunk {n}" for n in range(1, 13)), "vteam.phase"]
    assert await log.read(UID, after=10) == read[10:]


async def test_an_interrupted_compaction_leaves_nothing_duplicated(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client(moto_endpoint)

    def refuse(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=moto_endpoint)

    client.meta.events.register("before-call.s3.DeleteObjects", refuse)
    log = make_log(client, compact_parts=1000)
    for seq in range(1, 9):
        await log.append_runner(UID, [runner_event(seq)])

    with pytest.raises(Unavailable):
        await log.compact(UID)  # the merged segment is written, its parts are not yet deleted
    overlapping = len(keys(moto_endpoint, s3_bucket))
    read = await make_log(hot_events=0).read(UID)
    paged = await make_log(hot_events=0).read(UID, after=5, limit=2)
    client.meta.events.unregister("before-call.s3.DeleteObjects", refuse)
    await log.compact(UID)

    assert overlapping == 9
    assert seqs(read) == list(range(1, 9))
    assert seqs(paged) == [6, 7]
    assert len(keys(moto_endpoint, s3_bucket)) == 1
    assert await make_log(hot_events=0).read(UID) == read


async def test_retention_deletes_old_segments_and_keeps_recent_ones(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    log = make_log(retention_days=7)
    await log.append_runner(UID, runner_events([1, 2]))
    await log.append_runner(UID, runner_events([3]))
    await log.append_runner(OTHER, runner_events([1]))
    await asyncio.sleep(1.1)  # S3 times objects to the second
    await log.append_runner(UID, runner_events([4, 5]))
    client = s3_client(moto_endpoint)
    newest = max(item["LastModified"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"])

    assert await make_log().expire(now=newest + timedelta(days=7)) == 0  # nothing in the setting
    removed = await log.expire(now=newest + timedelta(days=7))

    assert removed == 3
    assert deltas(await log.read(UID)) == ["chunk 4", "chunk 5"]
    assert deltas(await make_log().read(UID)) == ["chunk 4", "chunk 5"]
    assert await log.read(OTHER) == []
    assert await make_log().last_runner_seq(UID) == 5
    assert seqs(await make_log().append_runner(UID, runner_events([6]))) == [6]
    assert await log.expire(now=newest + timedelta(days=30)) == 2
    assert keys(moto_endpoint, s3_bucket) == []


async def test_delete_and_prune_remove_only_their_sessions(
    make_log: Callable[..., S3EventLog], moto_endpoint: str, s3_bucket: str
) -> None:
    third = "0d0d0d0d-4444-4444-8444-444444444444"
    PLACES[third] = ("team-b", "third")
    try:
        log = make_log()
        for uid in (UID, OTHER, third):
            await log.append_runner(uid, runner_events([1, 2]))
        client = s3_client(moto_endpoint)
        client.put_object(Bucket=s3_bucket, Key="not-events/keep.txt", Body=b"someone else's")

        await log.delete(UID)
        await make_log(locate=nowhere).delete(OTHER)  # its resource is already gone
        pruned = await make_log(locate=nowhere).prune({third})
        left_after_keep = sorted(keys(moto_endpoint, s3_bucket))
        pruned_all = await log.prune(set())
    finally:
        del PLACES[third]

    assert await log.read(UID) == []
    assert await make_log().read(OTHER) == []
    assert pruned == 0
    assert left_after_keep == ["not-events/keep.txt", f"sessions/team-b/third/{third}/000000000001.jsonl"]
    assert pruned_all == 1
    assert keys(moto_endpoint, s3_bucket) == ["not-events/keep.txt"]


async def test_from_settings_builds_a_working_log(moto_endpoint: str, s3_bucket: str) -> None:
    settings = Settings(
        s3_bucket=s3_bucket,
        s3_prefix="tenant-x/",
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id=SecretStr("AKIDFROMSETTINGS"),
        s3_secret_access_key=SecretStr("secret-from-settings"),
        event_hot_events=5,
    )
    log = S3EventLog.from_settings(settings, place)

    await log.check()
    await log.append_runner(UID, runner_events([1, 2]))

    assert seqs(await log.read(UID)) == [1, 2]
    assert keys(moto_endpoint, s3_bucket) == [f"tenant-x/sessions/team-a/fix-login/{UID}/000000000001.jsonl"]


@pytest.mark.parametrize("reachable", [True, False], ids=["bucket-missing", "endpoint-down"])
async def test_failures_name_the_object_and_never_a_credential(
    moto_endpoint: str, caplog: pytest.LogCaptureFixture, reachable: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, key_id = "sEcReT-never-shown-9f8e7d", "AKID-never-shown-1a2b3c"
    endpoint = moto_endpoint if reachable else f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        s3_bucket="missing-bucket-for-events",
        s3_endpoint_url=endpoint,
        s3_access_key_id=SecretStr(key_id),
        s3_secret_access_key=SecretStr(secret),
    )
    if reachable:
        log = S3EventLog.from_settings(settings, place)
    else:  # the same, without from_settings' retries, which only slow a test against a closed port
        client = s3_client(endpoint, key_id=key_id, secret=secret)
        log = S3EventLog(client, bucket="missing-bucket-for-events", locate=place)

    with pytest.raises(Unavailable) as failed:
        await log.append_runner(UID, runner_events([1]))
    with pytest.raises(Unavailable) as unready:
        await log.check()

    for exc in (failed.value, unready.value):
        shown = f"{exc} {exc.detail} {exc.__cause__!r} {exc.__context__!r}"
        assert "missing-bucket-for-events" in shown
        assert secret not in shown
        assert key_id not in shown
    assert ("NoSuchBucket" if reachable else "EndpointConnectionError") in failed.value.detail
    assert secret not in caplog.text
    # botocore's own DEBUG lines show the key id in the signed Authorization header; INFO and above never do.
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and key_id in r.getMessage()]
