"""The ResourceStore interface: the only way code touches resources, in either mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from vteam.resources import Resource

R = TypeVar("R", bound=Resource)
T = TypeVar("T", bound=Resource)

WatchType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class WatchEvent(Generic[T]):
    type: WatchType
    object: T


@dataclass(frozen=True)
class ResourceList(Generic[T]):
    items: list[T]
    resource_version: str
    continue_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ResourceStore(Protocol):
    """Kubernetes semantics: optimistic concurrency on resourceVersion, watches from a version.

    Errors: NotFound, AlreadyExists, Conflict (stale resourceVersion), Expired (watch history gone).
    """

    async def create(self, obj: R) -> R: ...

    async def get(self, kind: type[R], name: str, namespace: str | None = None) -> R: ...

    async def versions(self, kind: type[R], namespace: str | None = None) -> dict[str, str]:
        """Name → resourceVersion of every object of a kind: what changed since a cached listing, cheaply."""
        ...

    async def current_version(self) -> str:
        """The store's latest resourceVersion, cheaply: a cache of a listing is fresh while it is unchanged."""
        ...

    async def list(
        self,
        kind: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        phase: str | None = None,
    ) -> ResourceList[R]:
        """A page of at most `limit` objects matching the label selector and, with `phase`, whose status.phase
        is that; `continue_token` goes on after the page it came with, and is None after the last."""
        ...

    async def replace(self, obj: R) -> R:
        """Write spec, labels and annotations; fails with Conflict if obj's resourceVersion is stale."""
        ...

    async def patch_status(
        self,
        kind: type[R],
        name: str,
        namespace: str | None,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> R:
        """Merge top-level status fields; with resource_version, fail with Conflict if it is stale."""
        ...

    async def delete(self, kind: type[R], name: str, namespace: str | None = None) -> None: ...

    def watch(
        self, kind: type[R], namespace: str | None = None, *, resource_version: str | None = None
    ) -> AsyncIterator[WatchEvent[R]]:
        """Changes after resource_version (all live changes when None), in order, forever."""
        ...

    async def close(self) -> None: ...
