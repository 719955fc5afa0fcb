"""The EventLog contract: durable, ordered, duplicate-free events per session, on SQLite and on S3."""

from __future__ import annotations

from tests.events.envelopes import runner_event, runner_events
from vteam.events import Envelope, EventLog

UID = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"


def deltas(envelopes: list[Envelope]) -> list[str]:
    return [env.data["delta"] for env in envelopes]


async def test_append_runner_assigns_log_seqs_in_order_and_keeps_data(log: EventLog) -> None:
    sent = runner_events(range(1, 4))

    stored = await log.append_runner(UID, sent)

    assert [env.seq for env in stored] == [1, 2, 3]
    assert [(env.ts, env.type, env.data) for env in stored] == [(env.ts, env.type, env.data) for env in sent]
    assert await log.read(UID) == stored


async def test_log_seqs_start_at_one_whatever_the_runner_numbers(log: EventLog) -> None:
    stored = await log.append_runner(UID, runner_events([41, 42, 50]))

    assert [env.seq for env in stored] == [1, 2, 3]
    assert deltas(await log.read(UID)) == ["chunk 41", "chunk 42", "chunk 50"]


async def test_append_runner_one_at_a_time_continues_the_sequence(log: EventLog) -> None:
    for seq in range(1, 6):
        await log.append_runner(UID, [runner_event(seq)])

    read = await log.read(UID)

    assert [env.seq for env in read] == [1, 2, 3, 4, 5]
    assert deltas(read) == [f"chunk {seq}" for seq in range(1, 6)]


async def test_resend_of_held_runner_seqs_stores_nothing(log: EventLog) -> None:
    await log.append_runner(UID, runner_events(range(1, 4)))
    before = await log.read(UID)

    again = await log.append_runner(UID, runner_events(range(1, 4)))
    partial = await log.append_runner(UID, [runner_event(2, "a different body for an old seq")])

    assert again == []
    assert partial == []
    assert await log.read(UID) == before


async def test_resend_overlapping_old_and_new_stores_only_the_new(log: EventLog) -> None:
    await log.append_runner(UID, runner_events(range(1, 4)))

    stored = await log.append_runner(UID, runner_events(range(2, 6)))

    assert [env.seq for env in stored] == [4, 5]
    assert deltas(stored) == ["chunk 4", "chunk 5"]
    read = await log.read(UID)
    assert [env.seq for env in read] == [1, 2, 3, 4, 5]
    assert deltas(read) == [f"chunk {seq}" for seq in range(1, 6)]


async def test_server_events_interleave_with_runner_events(log: EventLog) -> None:
    await log.append_runner(UID, runner_events([1, 2]))
    creating = await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})
    later = await log.append_runner(UID, runner_events([3, 4]))
    done = await log.append(UID, "vteam.phase", {"value": {"phase": "Completed", "final": True}})

    assert creating.seq == 3
    assert [env.seq for env in later] == [4, 5]
    assert done.seq == 6
    read = await log.read(UID)
    assert [env.seq for env in read] == [1, 2, 3, 4, 5, 6]
    assert [env.type for env in read] == [
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "vteam.phase",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "vteam.phase",
    ]
    assert read[2] == creating
    assert read[5].data == {"value": {"phase": "Completed", "final": True}}


async def test_resend_after_server_event_is_still_recognised(log: EventLog) -> None:
    # The server's own event takes log seq 3; the runner's seq 3 is still new, and seq 2 still old.
    await log.append_runner(UID, runner_events([1, 2]))
    await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})

    stored = await log.append_runner(UID, runner_events([2, 3]))

    assert [(env.seq, env.data["delta"]) for env in stored] == [(4, "chunk 3")]
    assert len(await log.read(UID)) == 4


async def test_read_pages_with_after_and_limit(log: EventLog) -> None:
    await log.append_runner(UID, runner_events(range(1, 11)))

    assert [env.seq for env in await log.read(UID, after=0, limit=4)] == [1, 2, 3, 4]
    assert [env.seq for env in await log.read(UID, after=4, limit=4)] == [5, 6, 7, 8]
    assert [env.seq for env in await log.read(UID, after=8, limit=4)] == [9, 10]
    assert await log.read(UID, after=10, limit=4) == []
    assert [env.seq for env in await log.read(UID, after=7)] == [8, 9, 10]


async def test_paging_through_the_log_returns_each_event_once(log: EventLog) -> None:
    await log.append_runner(UID, runner_events(range(1, 24)))
    seen: list[int] = []
    after = 0
    while page := await log.read(UID, after=after, limit=5):
        seen.extend(env.seq for env in page)
        after = page[-1].seq

    assert seen == list(range(1, 24))


async def test_read_of_unknown_session_is_empty(log: EventLog) -> None:
    assert await log.read("no-such-session") == []
    assert await log.last_runner_seq("no-such-session") == 0


async def test_last_runner_seq_reports_the_runners_seq_not_the_logs(log: EventLog) -> None:
    await log.append_runner(UID, runner_events([5, 6, 7]))
    await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})
    await log.append(UID, "vteam.log", {"value": {"line": "cloning"}})

    assert await log.last_runner_seq(UID) == 7
    assert [env.seq for env in await log.read(UID)] == [1, 2, 3, 4, 5]


async def test_last_runner_seq_is_zero_with_only_server_events(log: EventLog) -> None:
    await log.append(UID, "vteam.phase", {"value": {"phase": "Creating"}})

    assert await log.last_runner_seq(UID) == 0


async def test_last_runner_seq_ignores_a_resend(log: EventLog) -> None:
    await log.append_runner(UID, runner_events([1, 2, 3]))
    await log.append_runner(UID, runner_events([1, 2]))

    assert await log.last_runner_seq(UID) == 3


async def test_sessions_are_isolated_by_uid(log: EventLog) -> None:
    await log.append_runner(UID, runner_events([1, 2, 3]))
    await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})

    other = await log.append_runner(OTHER, [runner_event(1, "other session"), runner_event(2, "other again")])

    assert [env.seq for env in other] == [1, 2]
    assert deltas(await log.read(OTHER)) == ["other session", "other again"]
    assert await log.last_runner_seq(OTHER) == 2
    assert await log.last_runner_seq(UID) == 3
    assert [env.seq for env in await log.read(UID)] == [1, 2, 3, 4]
    assert (await log.append(OTHER, "vteam.phase", {"value": {}})).seq == 3


async def test_delete_removes_only_that_sessions_events(log: EventLog) -> None:
    await log.append_runner(UID, runner_events([1, 2, 3]))
    await log.append(UID, "vteam.phase", {"value": {"phase": "Running"}})
    kept = await log.append_runner(OTHER, runner_events([1, 2]))

    await log.delete(UID)

    assert await log.read(UID) == []
    assert await log.last_runner_seq(UID) == 0
    assert await log.read(OTHER) == kept
    assert await log.last_runner_seq(OTHER) == 2
