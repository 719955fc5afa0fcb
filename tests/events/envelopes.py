"""Envelopes as a runner sends them."""

from __future__ import annotations

from vteam.events import Envelope, now_ts


def runner_event(seq: int, text: str | None = None) -> Envelope:
    """What a runner sends: its own seq, and an AG-UI event as data."""
    return Envelope(
        seq=seq,
        ts=now_ts(),
        type="TEXT_MESSAGE_CONTENT",
        data={"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": text or f"chunk {seq}"},
    )


def runner_events(seqs: range | list[int]) -> list[Envelope]:
    return [runner_event(seq) for seq in seqs]
