"""Event ids from outside (a `Last-Event-ID` header, an `after=` parameter): one parser, one bound.

Event seqs are SQLite integers, so anything above 2^63 - 1 cannot name a stored event and would overflow
the query that looks it up.
"""

from __future__ import annotations

MAX_SEQ = 2**63 - 1
"""The largest seq an event can have: SQLite's largest integer."""


def parse_seq(text: str | None) -> int | None:
    """The seq an event id names, or None when it is absent or malformed (not ASCII digits, or above MAX_SEQ)."""
    if not text or len(text) > len(str(MAX_SEQ)) or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_SEQ else None


def resume_from(after: int | None, last_event_id: str | None) -> int:
    """Where a reader starts: after `after`, or after what a reconnecting EventSource says it last received."""
    return max(after or 0, parse_seq(last_event_id) or 0)
