"""Segment objects of the S3 event log: key names that tell a segment's place, and JSON-lines bodies.

A part, written by one append, is named by its first log seq alone (`000000000007.jsonl`), so two
writers that both believe seq 7 is next race for the same name and a conditional write refuses one.
A compacted segment names its whole range (`000000000001-000000000064.jsonl`), so a listing alone
tells which parts it replaced, even when a crash left them behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vteam.events.envelope import Envelope

WIDTH = 12
SUFFIX = ".jsonl"
LAST_SEQ = "last-seq"
RUNNER_SEQ = "runner-seq"


@dataclass(frozen=True)
class Row:
    """A stored event; `runner` is the runner's highest seq held once this event is stored."""

    seq: int
    ts: str
    type: str
    data: dict[str, Any]
    runner: int

    def envelope(self) -> Envelope:
        return Envelope(seq=self.seq, ts=self.ts, type=self.type, data=self.data)


@dataclass(frozen=True)
class Segment:
    key: str
    first: int
    last: int | None
    """Known from the name for a compacted segment; a part's end is where the next segment starts."""
    size: int

    @property
    def compacted(self) -> bool:
        return self.last is not None


def part_name(first: int) -> str:
    return f"{first:0{WIDTH}d}{SUFFIX}"


def compacted_name(first: int, last: int) -> str:
    return f"{first:0{WIDTH}d}-{last:0{WIDTH}d}{SUFFIX}"


def parse(key: str, name: str, size: int) -> Segment | None:
    """The segment a listed object is, or None for an object the log did not write."""
    if not name.endswith(SUFFIX):
        return None
    bounds = name[: -len(SUFFIX)].split("-")
    if len(bounds) > 2 or not all(b.isdigit() and len(b) == WIDTH for b in bounds):
        return None
    first = int(bounds[0])
    last = int(bounds[1]) if len(bounds) == 2 else None
    if first < 1 or (last is not None and last < first):
        return None
    return Segment(key=key, first=first, last=last, size=size)


def live(segments: Iterable[Segment]) -> tuple[list[Segment], list[Segment]]:
    """Segments to read, in seq order, and those a compacted segment already holds (left by a crash)."""
    ordered = sorted(segments, key=lambda s: (s.first, -(s.last or s.first)))
    keep: list[Segment] = []
    covered: list[Segment] = []
    reach = 0
    for seg in ordered:
        if (seg.last or seg.first) <= reach:
            covered.append(seg)
            continue
        keep.append(seg)
        reach = max(reach, seg.last or 0)
    return keep, covered


def encode(rows: list[Row]) -> bytes:
    lines = (
        json.dumps(
            {"seq": r.seq, "ts": r.ts, "type": r.type, "data": r.data, "runner": r.runner},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for r in rows
    )
    return ("\n".join(lines) + "\n").encode()


def decode(body: bytes) -> list[Row]:
    rows: list[Row] = []
    for line in body.decode().splitlines():
        if line:
            item = json.loads(line)
            rows.append(Row(int(item["seq"]), item["ts"], item["type"], item["data"], int(item["runner"])))
    return rows


def metadata(rows: list[Row]) -> dict[str, str]:
    """The heads after a segment, so a restarted writer learns them from one HEAD request."""
    return {LAST_SEQ: str(rows[-1].seq), RUNNER_SEQ: str(rows[-1].runner)}
