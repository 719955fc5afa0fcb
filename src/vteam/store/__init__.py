"""ResourceStore: the interface every resource read and write goes through, and its implementations."""

from vteam.store.base import ResourceList, ResourceStore, WatchEvent
from vteam.store.sqlite import SqliteStore

__all__ = ["ResourceList", "ResourceStore", "SqliteStore", "WatchEvent"]
