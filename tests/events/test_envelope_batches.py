"""Batch frames of whole envelopes: what the backend takes from one, and what it refuses."""

from __future__ import annotations

import json

import pytest

from vteam.events.envelope import BatchError, Envelope, Joiner, PartialError, batch_frame, split

TS = "2025-06-01T12:00:00.000000Z"


def _env(seq: int, text: str = "x") -> Envelope:
    return Envelope(seq=seq, ts=TS, type="TEXT_MESSAGE_CONTENT", data={"delta": text})


def _frame(*envelopes: Envelope) -> dict[str, object]:
    return json.loads(batch_frame([json.dumps(env.frame()) for env in envelopes]))


def test_a_batch_yields_its_envelopes_in_order() -> None:
    envelopes = [_env(3), _env(4, "é"), _env(9)]
    assert Joiner().feed_batch(_frame(*envelopes), 3) == envelopes


@pytest.mark.parametrize(
    "frame",
    [
        {"events": []},
        {"events": "nope"},
        _frame(_env(1), _env(2), _env(3), _env(4)),
        _frame(_env(2), _env(2)),
        _frame(_env(3), _env(1)),
        {"events": [split(_env(1, "y" * 70_000))[0]]},
    ],
    ids=["empty", "not-a-list", "too-many", "repeated-seq", "backwards", "partial"],
)
def test_a_malformed_batch_is_refused(frame: dict[str, object]) -> None:
    with pytest.raises(BatchError):
        Joiner().feed_batch(frame, 3)


def test_a_batch_cannot_interrupt_a_partial_event() -> None:
    joiner = Joiner()
    assert joiner.feed(split(_env(1, "y" * 70_000))[0]) is None
    with pytest.raises(PartialError):
        joiner.feed_batch(_frame(_env(2)), 3)
