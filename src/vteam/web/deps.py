"""What the web pages still borrow from the API room, in one place: the platform (the composition root, which
moves to services in a later step of issue 14) and the stream guard both doors' event streams share.

Session pages import these from here and do everything else through `vteam.services`."""

from __future__ import annotations

from vteam.api.deps import PlatformDep
from vteam.api.platform import Platform
from vteam.api.stream_access import GuardedEventSource, StreamGuard

__all__ = ["GuardedEventSource", "Platform", "PlatformDep", "StreamGuard"]
