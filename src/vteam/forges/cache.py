"""Responses a forge answered, kept with their ETags so a repeat asks `If-None-Match` and costs nothing."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cached:
    etag: str
    body: Any
    link: str | None = None


class EtagCache:
    """An LRU keyed by who asked and what: one caller's cached answer is never another's."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], Cached] = OrderedDict()
        self.hits = 0

    @staticmethod
    def who(token: str | None) -> str:
        return hashlib.sha256(token.encode()).hexdigest()[:16] if token else "anonymous"

    def get(self, token: str | None, url: str) -> Cached | None:
        key = (self.who(token), url)
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, token: str | None, url: str, item: Cached) -> None:
        key = (self.who(token), url)
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
