"""In-process notices of access changes (a revoked token, a project's bindings changed or forgotten), so that
open streams re-check their caller at once instead of on their next idle tick."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccessChange:
    """What changed: one token (by id), or who may do what in one project."""

    token_id: str | None = None
    project: str | None = None


Listener = Callable[[AccessChange], None]


class AccessChanges:
    """Listeners are called synchronously on the event loop and must only note the change (set an event)."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    def publish(self, change: AccessChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # one broken listener must not keep the change from the others
                log.exception("an access-change listener failed")

    @contextmanager
    def subscribe(self, listener: Listener) -> Iterator[None]:
        self._listeners.add(listener)
        try:
            yield
        finally:
            self._listeners.discard(listener)

    def __len__(self) -> int:
        return len(self._listeners)
