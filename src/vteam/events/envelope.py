"""The envelope every event travels in, splitting/joining events larger than 64 KiB, and batches of whole
events in one frame."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

PARTIAL_LIMIT = 64 * 1024
MAX_EVENT_BYTES = 16 * 1024 * 1024
MAX_FRAME_BYTES = 2 * PARTIAL_LIMIT + 1024
"""The largest frame `split` makes: a partial's slice of JSON text (already free of control characters) at
most doubles when quoted again (each `"` and `\\` escaped), plus the envelope's few short fields."""
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
"""The most a backend takes in one batch frame; its Hello says so, never more than its WebSocket reads."""


class Envelope(BaseModel):
    """`seq` is strictly increasing per session; `data` is an AG-UI event as JSON."""

    seq: int = Field(ge=1)
    ts: str
    type: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]

    def frame(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "type": self.type, "data": self.data}


class PartialError(ValueError):
    """A partial frame arrived out of order, or an event grew past MAX_EVENT_BYTES."""


class BatchError(ValueError):
    """A batch frame holds no events or too many, a partial one, or seqs that do not strictly increase."""


def now_ts() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def split(envelope: Envelope, limit: int = PARTIAL_LIMIT) -> list[dict[str, Any]]:
    """Frames for the wire: the envelope itself, or ordered partials carrying slices of its data's JSON."""
    text = json.dumps(envelope.data, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= limit:
        return [envelope.frame()]
    chunks = _chunks(text, limit)
    part_id = uuid.uuid4().hex
    return [
        {
            "seq": envelope.seq,
            "ts": envelope.ts,
            "type": envelope.type,
            "partial": {"id": part_id, "index": index, "total": len(chunks)},
            "data": chunk,
        }
        for index, chunk in enumerate(chunks)
    ]


def _chunks(text: str, limit: int) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > limit:
            out.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        out.append("".join(current))
    return out


def batch_frame(texts: list[str]) -> str:
    """One frame carrying whole envelopes, from their JSON texts (made once, to measure them, by the sender)."""
    return '{"events":[' + ",".join(texts) + "]}"


class Joiner:
    """Reassembles partial frames into envelopes; whole frames pass straight through."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._parts: list[str] = []
        self._size = 0

    def feed_batch(self, frame: dict[str, Any], max_events: int) -> list[Envelope]:
        """A batch's envelopes, in order; a batch never interrupts a partial event (which travels on its own)."""
        if self._id is not None:
            raise PartialError("a batch arrived while a partial event was incomplete")
        events = frame["events"]
        if not isinstance(events, list) or not 0 < len(events) <= max_events:
            raise BatchError(f"a batch holds 1 to {max_events} events")
        envelopes: list[Envelope] = []
        for item in events:
            if not isinstance(item, dict) or "partial" in item:
                raise BatchError("a batch holds whole events only")
            envelope = Envelope.model_validate(item)
            if envelopes and envelope.seq <= envelopes[-1].seq:
                raise BatchError("a batch's seqs must strictly increase")
            envelopes.append(envelope)
        return envelopes

    def feed(self, frame: dict[str, Any]) -> Envelope | None:
        partial = frame.get("partial")
        if partial is None:
            if self._id is not None:
                raise PartialError("a whole event arrived while a partial one was incomplete")
            return Envelope.model_validate(frame)
        part_id, index, total = partial["id"], int(partial["index"]), int(partial["total"])
        if index == 0:
            self._id, self._parts, self._size = part_id, [], 0
        if part_id != self._id or index != len(self._parts) or index >= total:
            self._id = None
            raise PartialError(f"partial {index + 1} of {total} arrived out of order")
        chunk = str(frame["data"])
        self._size += len(chunk.encode())
        if self._size > MAX_EVENT_BYTES:
            self._id = None
            raise PartialError(f"event is larger than {MAX_EVENT_BYTES} bytes")
        self._parts.append(chunk)
        if len(self._parts) < total:
            return None
        self._id = None
        data = json.loads("".join(self._parts))
        return Envelope(seq=frame["seq"], ts=frame["ts"], type=frame["type"], data=data)
