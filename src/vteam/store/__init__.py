"""ResourceStore: the interface every resource read and write goes through, and its implementations."""

from typing import TYPE_CHECKING, Any

from vteam.store.base import ResourceList, ResourceStore, WatchEvent
from vteam.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from vteam.store.kube import KubeStore

__all__ = ["KubeStore", "ResourceList", "ResourceStore", "SqliteStore", "WatchEvent"]


def __getattr__(name: str) -> Any:
    """KubeStore loads the Kubernetes client (a third of a second) only when cluster mode asks for it."""
    if name == "KubeStore":
        from vteam.store.kube import KubeStore

        return KubeStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
