"""Splitting events larger than 64 KiB into partial frames and joining them back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vteam.events.envelope import PARTIAL_LIMIT, Envelope, Joiner, PartialError, split

TS = "2025-06-01T12:00:00.000000Z"


@pytest.fixture(scope="module")
def envelope() -> Envelope:
    # Mixes 1-, 2-, 3- and 4-byte UTF-8 characters so chunk edges land inside multibyte runs.
    delta = "héllo wörld — ✓ 🎉 ü\n" * 12_000
    data = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": delta, "quote": 'say "hi"\\'}
    assert len(json.dumps(data, ensure_ascii=False).encode()) > 300 * 1024
    return Envelope(seq=7, ts=TS, type="TEXT_MESSAGE_CONTENT", data=data)


@pytest.fixture(scope="module")
def frames(envelope: Envelope) -> list[dict[str, Any]]:
    return split(envelope)


def test_large_event_round_trips_through_partials(envelope: Envelope, frames: list[dict[str, Any]]) -> None:
    assert len(frames) > 4
    ids = {frame["partial"]["id"] for frame in frames}
    assert len(ids) == 1
    assert [frame["partial"]["index"] for frame in frames] == list(range(len(frames)))
    assert all(frame["partial"]["total"] == len(frames) for frame in frames)
    assert all(frame["seq"] == 7 and frame["type"] == "TEXT_MESSAGE_CONTENT" for frame in frames)
    for frame in frames:
        assert isinstance(frame["data"], str)
        assert len(frame["data"].encode()) <= PARTIAL_LIMIT

    joiner = Joiner()
    results = [joiner.feed(frame) for frame in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == envelope


def test_partial_frames_survive_json_on_the_wire(envelope: Envelope, frames: list[dict[str, Any]]) -> None:
    joiner = Joiner()
    joined = [joiner.feed(json.loads(json.dumps(frame))) for frame in frames]
    assert joined[-1] == envelope


def test_small_event_is_one_whole_frame() -> None:
    small = Envelope(seq=1, ts=TS, type="RUN_STARTED", data={"type": "RUN_STARTED", "runId": "r1"})
    whole = split(small)
    assert whole == [{"seq": 1, "ts": TS, "type": "RUN_STARTED", "data": {"type": "RUN_STARTED", "runId": "r1"}}]
    assert "partial" not in whole[0]
    assert Joiner().feed(whole[0]) == small


def test_event_of_exactly_the_limit_is_not_split() -> None:
    # {"d":"..."} is 8 bytes of JSON around the value.
    at_limit = Envelope(seq=1, ts=TS, type="X", data={"d": "a" * (PARTIAL_LIMIT - 8)})
    assert len(split(at_limit)) == 1
    over_limit = Envelope(seq=1, ts=TS, type="X", data={"d": "a" * (PARTIAL_LIMIT - 7)})
    assert len(split(over_limit)) == 2


def test_partial_out_of_order_is_rejected(frames: list[dict[str, Any]]) -> None:
    with pytest.raises(PartialError, match="out of order"):
        Joiner().feed(frames[1])


def test_skipped_partial_is_rejected(frames: list[dict[str, Any]]) -> None:
    joiner = Joiner()
    joiner.feed(frames[0])
    with pytest.raises(PartialError, match="out of order"):
        joiner.feed(frames[2])


def test_whole_frame_in_the_middle_of_a_partial_is_rejected(frames: list[dict[str, Any]]) -> None:
    small: dict[str, Any] = {"seq": 8, "ts": TS, "type": "RUN_FINISHED", "data": {"type": "RUN_FINISHED"}}
    joiner = Joiner()
    joiner.feed(frames[0])
    with pytest.raises(PartialError, match="whole event arrived while a partial one was incomplete"):
        joiner.feed(small)


def test_joiner_recovers_after_an_error(envelope: Envelope, frames: list[dict[str, Any]]) -> None:
    joiner = Joiner()
    joiner.feed(frames[0])
    with pytest.raises(PartialError):
        joiner.feed(frames[2])
    joined = [joiner.feed(frame) for frame in frames]
    assert joined[-1] == envelope
