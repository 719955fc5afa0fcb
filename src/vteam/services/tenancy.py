"""How a mode keeps projects' access and secrets where its runners find them, chosen once at start.

The embedded mode keeps everything in vTeam's own database (`Embedded`); cluster mode also mirrors role
bindings into Kubernetes RBAC, prepares each project's namespace and copies secrets into the project's runner
Secret (`OnCluster`). The services call the interface and never ask which mode they are in."""

from __future__ import annotations

from typing import Protocol

from vteam.auth import Identity, Role
from vteam.settings import Settings
from vteam.store import ResourceStore


class Tenancy(Protocol):
    local_users: bool
    """Whether vTeam's own accounts are its only users, so a user binding must name a user name vTeam allows."""

    def reviews_access(self, caller: Identity) -> bool:
        """Whether the caller's projects are known only by asking the cluster, one project at a time."""
        ...

    def check_project_name(self, name: str) -> None: ...

    async def prepare_project(self, project: str, creator: Identity) -> None: ...

    async def grant(self, project: str, subject_type: str, subject: str, role: Role, *, caller: Identity) -> None: ...

    async def revoke(self, project: str, subject_type: str, subject: str, *, caller: Identity) -> None: ...

    async def sync_secret(
        self, project: str, name: str, value: str | None, frameworks: list[str] | None = None
    ) -> None: ...


class Embedded:
    """vTeam's database is the whole truth: nothing to mirror."""

    def __init__(self, settings: Settings) -> None:
        self.local_users = not (settings.trust_proxy_headers and settings.proxy_secret is not None)

    def reviews_access(self, caller: Identity) -> bool:
        return False

    def check_project_name(self, name: str) -> None:
        return None

    async def prepare_project(self, project: str, creator: Identity) -> None:
        return None

    async def grant(self, project: str, subject_type: str, subject: str, role: Role, *, caller: Identity) -> None:
        return None

    async def revoke(self, project: str, subject_type: str, subject: str, *, caller: Identity) -> None:
        return None

    async def sync_secret(
        self, project: str, name: str, value: str | None, frameworks: list[str] | None = None
    ) -> None:
        return None


class ClusterAdapter(Protocol):
    """What `OnCluster` needs of the Kubernetes adapter (`vteam.services.cluster.Cluster`)."""

    async def grant(
        self, project: str, subject_type: str, subject: str, role: Role, *, token: str | None = None
    ) -> None: ...

    async def revoke(self, project: str, subject_type: str, subject: str, *, token: str | None = None) -> None: ...

    def check_project_name(self, name: str, own_namespace: str) -> None: ...

    async def prepare_project(self, project: str, runner_account: str) -> None: ...

    async def sync_runner_secret(
        self,
        store: ResourceStore,
        project: str,
        name: str,
        value: str | None,
        frameworks: list[str] | None = None,
    ) -> None: ...


class OnCluster:
    """Mirror access into Kubernetes RBAC (as the caller, so Kubernetes refuses what they could not do) and
    secrets into the project's runner Secret, except the token the backend keeps for pushes."""

    local_users = False

    def __init__(self, cluster: ClusterAdapter, store: ResourceStore, settings: Settings, keep: str) -> None:
        self._cluster = cluster
        self._store = store
        self._settings = settings
        self._keep = keep

    def reviews_access(self, caller: Identity) -> bool:
        return caller.access_token is not None and not caller.admin

    def check_project_name(self, name: str) -> None:
        self._cluster.check_project_name(name, self._settings.namespace)

    async def prepare_project(self, project: str, creator: Identity) -> None:
        await self._cluster.prepare_project(project, self._settings.runner_service_account)
        if creator.access_token:
            await self._cluster.grant(project, "user", creator.name, Role.ADMIN)

    async def grant(self, project: str, subject_type: str, subject: str, role: Role, *, caller: Identity) -> None:
        await self._cluster.grant(project, subject_type, subject, role, token=caller.access_token)

    async def revoke(self, project: str, subject_type: str, subject: str, *, caller: Identity) -> None:
        await self._cluster.revoke(project, subject_type, subject, token=caller.access_token)

    async def sync_secret(
        self, project: str, name: str, value: str | None, frameworks: list[str] | None = None
    ) -> None:
        if name != self._keep:
            await self._cluster.sync_runner_secret(self._store, project, name, value, frameworks)
