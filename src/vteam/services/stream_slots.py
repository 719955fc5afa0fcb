"""How many event streams each caller holds open in this process, so that one user or key cannot hold
thousands (each costs a socket, a task and a queue)."""

from __future__ import annotations

from types import TracebackType

from vteam.auth import Identity
from vteam.errors import RateLimited

RETRY_STREAM_SECONDS = 5.0


class StreamSlots:
    """How many streams each principal (`Identity.principal`) holds open, in this process."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def take(self, identity: Identity, limit: int) -> Slot:
        """A slot for one more stream, or RateLimited when the caller already holds `limit` (0: no limit)."""
        key = identity.principal
        held = self.open.get(key, 0)
        if limit and held >= limit:
            raise RateLimited(
                f"{held} event streams are already open for this caller, the most allowed "
                "(VTEAM_MAX_STREAMS_PER_CALLER); close one first",
                retry_after=RETRY_STREAM_SECONDS,
            )
        self.open[key] = held + 1
        return Slot(self, key)

    def _give_back(self, key: str) -> None:
        held = self.open.get(key, 0) - 1
        if held > 0:
            self.open[key] = held
        else:
            self.open.pop(key, None)


class Slot:
    """One held stream; given back once, however often `release` is called."""

    def __init__(self, slots: StreamSlots, key: str) -> None:
        self._slots = slots
        self._key: str | None = key

    def release(self) -> None:
        if self._key is not None:
            self._slots._give_back(self._key)
            self._key = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
