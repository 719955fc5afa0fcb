"""What one session may store: each event cut to a size, and the session's total capped.

The backend applies this where a runner's events are appended, so a runner cannot get past it; an event
it cuts or drops is still acknowledged, so the runner's exactly-once delivery is unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from vteam.events.agui import CONTROLS, custom, dump
from vteam.events.envelope import Envelope

TRUNCATED = "vteam.truncated"
"""Stands for output vTeam did not store: `value.reason` is `event` (one event too large) or `session`."""

LIFECYCLE = frozenset(
    {
        "RUN_STARTED",
        "RUN_FINISHED",
        "RUN_ERROR",
        "STEP_STARTED",
        "STEP_FINISHED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_END",
        "REASONING_MESSAGE_START",
        "REASONING_MESSAGE_END",
        "THINKING_TEXT_MESSAGE_START",
        "THINKING_TEXT_MESSAGE_END",
    }
)
"""Events that frame output rather than carry it; kept past a session's cap (within one more event's size)."""


def size_of(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _note(size: int, limit: int) -> str:
    return f"\n\n[vTeam cut this output: the event had {size:,} bytes, over the limit of {limit:,} bytes per event]"


def _longest(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The dict and key of the longest string in the event or in its custom `value`."""
    best: tuple[dict[str, Any], str] | None = None
    best_len = -1
    for holder in (data, data.get("value")):
        if not isinstance(holder, dict):
            continue
        for key, item in holder.items():
            if isinstance(item, str) and len(item) > best_len:
                best, best_len = (holder, key), len(item)
    return best


def cut(type: str, data: dict[str, Any], limit: int) -> tuple[str, dict[str, Any]]:
    """The event as it may be stored: unchanged when it fits, else its longest text cut with a note at its
    end, or, when no one text makes it large, a `vteam.truncated` event in its place."""
    size = size_of(data)
    if size <= limit:
        return type, data
    found = _longest(data)
    if found is not None:
        holder, key = found
        text = str(holder[key])
        note = _note(size, limit)
        rest = size - size_of({key: text}) + size_of({key: note})
        room = limit - rest
        if room > 0 and 2 * size_of({key: text}) >= size:
            keep = int(len(text) * room / max(size_of({key: text}), 1))
            copy = json.loads(json.dumps(data))
            target = _longest(copy)
            assert target is not None
            while keep > 0:
                target[0][target[1]] = text[:keep] + note
                if size_of(copy) <= limit:
                    return type, copy
                keep = int(keep * 0.9)
    value = {"reason": "event", "type": type, "bytes": size, "limit": limit}
    return TRUNCATED, dump(custom(TRUNCATED, **value))


class SessionQuota:
    """The running total of one session's stored events, as a runner's connection appends them."""

    def __init__(self, *, used: int, event_limit: int, session_limit: int) -> None:
        self.used = used
        self.event_limit = event_limit
        self.session_limit = session_limit
        self._said = used > session_limit

    def admit(self, env: Envelope) -> Envelope | None:
        """The envelope to store for `env` (cut to size, or the one marker once the session is full), or
        None to drop it; either way the runner's seq is acknowledged."""
        type, data = cut(env.type, env.data, self.event_limit)
        size = size_of(data)
        within = self.used + size <= self.session_limit
        framing = (type in LIFECYCLE or (type.startswith("vteam.") and type not in CONTROLS)) and (
            self.used + size <= self.session_limit + self.event_limit
        )
        if within or framing:
            self.used += size
            return env if data is env.data else Envelope(seq=env.seq, ts=env.ts, type=type, data=data)
        if self._said:
            return None
        self._said = True
        marker = dump(custom(TRUNCATED, reason="session", limit=self.session_limit))
        self.used += size_of(marker)
        return Envelope(seq=env.seq, ts=env.ts, type=TRUNCATED, data=marker)
