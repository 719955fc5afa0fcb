"""Events: the envelope and partials, the event log, the fan-out hub and replay-then-live readers.

Backends are imported from their modules (`vteam.events.sqlite`), so the runner, which only
builds envelopes, does not load a database driver.
"""

from vteam.events.envelope import Envelope, Joiner, PartialError, now_ts, split
from vteam.events.hub import Hub
from vteam.events.log import EventLog
from vteam.events.recorder import Recorder
from vteam.events.seq import MAX_SEQ, parse_seq, resume_from
from vteam.events.stream import follow, is_final

__all__ = [
    "MAX_SEQ",
    "Envelope",
    "EventLog",
    "Hub",
    "Joiner",
    "PartialError",
    "Recorder",
    "follow",
    "is_final",
    "now_ts",
    "parse_seq",
    "resume_from",
    "split",
]
