"""What the web pages take from below them, in one place: the platform (`vteam.services.platform`, the
composition root) and what both doors share at the HTTP edge (`vteam.edge`); never from the API room."""

from __future__ import annotations

from vteam.edge.deps import PlatformDep, get_platform, role_in
from vteam.edge.stream_access import GuardedEventSource, StreamGuard
from vteam.services.isolation import Isolation
from vteam.services.platform import Platform

__all__ = ["GuardedEventSource", "Isolation", "Platform", "PlatformDep", "StreamGuard", "get_platform", "role_in"]
