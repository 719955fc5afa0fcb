"""Cluster mode's parts of the platform: the Kubernetes store, the S3 event log, Kubernetes identities and
RBAC, and the relay that announces the operator's phase changes.

Imported only when `VTEAM_MODE=cluster`, so the embedded mode never loads the Kubernetes client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from vteam.auth import EmbeddedAuthenticator, Role
from vteam.auth.cluster import ClusterAuthenticator, KubeAccess, digest
from vteam.controller import job
from vteam.controller.relay import PhaseRelay
from vteam.errors import InvalidInput, NotFound, VteamError
from vteam.events import Hub
from vteam.events.s3 import S3EventLog
from vteam.kube import MANAGED_LABEL, ApiException, Configuration, KubeApi, KubeClients, load_configuration, translate
from vteam.resources import RUNNER_SECRET, SETTINGS_NAME, AgenticSession, ProjectSettings
from vteam.settings import Settings
from vteam.store import ResourceStore
from vteam.store.kube import KubeStore

log = logging.getLogger(__name__)
RESERVED_NAMESPACES = frozenset({"default", "openshift"})
RESERVED_PREFIXES = ("kube-", "openshift-")
RETENTION_SECONDS = 3600.0
USER_STORE_SECONDS = 60.0
RETIRE_SECONDS = 300.0
"""A user's store is reused for a minute, and closed five minutes after it stops being handed out, long after
any request that holds it has ended."""


class UserStores:
    """Stores that act as one caller, with their own Kubernetes token, one connection pool each."""

    def __init__(self, base: Configuration, *, size: int = 256) -> None:
        self._base = base
        self._size = size
        self._live: OrderedDict[str, tuple[float, KubeStore]] = OrderedDict()
        self._retired: list[tuple[float, KubeStore]] = []

    async def get(self, token: str) -> ResourceStore:
        now = time.monotonic()
        await self._close_retired(now)
        key = digest(token)
        held = self._live.get(key)
        if held is not None and held[0] > now:
            self._live.move_to_end(key)
            return held[1]
        if held is not None:
            self._retire(self._live.pop(key)[1], now)
        store = KubeStore.for_user(self._base, token)
        self._live[key] = (now + USER_STORE_SECONDS, store)
        while len(self._live) > self._size:
            self._retire(self._live.popitem(last=False)[1][1], now)
        return store

    def _retire(self, store: KubeStore, now: float) -> None:
        self._retired.append((now + RETIRE_SECONDS, store))

    async def _close_retired(self, now: float) -> None:
        due = [store for when, store in self._retired if when <= now]
        self._retired = [(when, store) for when, store in self._retired if when > now]
        for store in due:
            await store.close()

    async def close(self) -> None:
        stores = [store for _, store in self._live.values()] + [store for _, store in self._retired]
        self._live.clear()
        self._retired.clear()
        await asyncio.gather(*(store.close() for store in stores), return_exceptions=True)


@dataclass
class Cluster:
    """What the platform holds in cluster mode besides the parts every mode has."""

    clients: KubeClients
    access: KubeAccess
    user_stores: UserStores
    events: S3EventLog
    _retention: asyncio.Task[None] | None = None

    async def grant(
        self, project: str, subject_type: str, subject: str, role: Role, *, token: str | None = None
    ) -> None:
        """Bind a user or group to a project role with a RoleBinding, so Kubernetes RBAC holds it too.

        With the caller's `token` the binding is made as them: Kubernetes refuses a binding its maker could not
        make, so an admin of one project cannot hand out roles elsewhere through vTeam.
        """
        clients = self._as(token)
        api = KubeApi(clients)
        name = binding_name(subject_type, subject)
        binding = {
            "metadata": {
                "name": name,
                "namespace": project,
                "labels": {MANAGED_LABEL: "true", "vteam.ambient-code/role": role.value},
                "annotations": {"vteam.ambient-code/subject": f"{subject_type}/{subject}"},
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"vteam-project-{role.value}",
            },
            "subjects": [
                {
                    "kind": "Group" if subject_type == "group" else "User",
                    "name": subject,
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        }
        what = f"RoleBinding {name!r} in {project!r}"
        try:
            try:
                await api.create_role_binding(project, binding)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # A binding's role cannot change in place; a new role means a new binding.
                await api.delete_role_binding(name, project)
                await api.create_role_binding(project, binding)
        except ApiException as exc:
            raise translate(exc, what) from None
        finally:
            await self._done(clients)

    async def revoke(self, project: str, subject_type: str, subject: str, *, token: str | None = None) -> None:
        clients = self._as(token)
        name = binding_name(subject_type, subject)
        try:
            await KubeApi(clients).delete_role_binding(name, project)
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, f"RoleBinding {name!r} in {project!r}") from None
        finally:
            await self._done(clients)

    def _as(self, token: str | None) -> KubeClients:
        return self.clients if token is None else self.clients.as_user(token)

    async def _done(self, clients: KubeClients) -> None:
        if clients is not self.clients:
            await clients.close()

    @staticmethod
    def check_project_name(name: str, own_namespace: str) -> None:
        """Projects are namespaces: names the cluster and its distributions keep for themselves are refused,
        so nobody claims, through vTeam's account, a namespace something else will install into."""
        if name in RESERVED_NAMESPACES or name == own_namespace or name.startswith(RESERVED_PREFIXES):
            raise InvalidInput(
                f"project name {name!r} is reserved for the cluster (names starting with "
                f"{', '.join(RESERVED_PREFIXES)}, and {', '.join(sorted({*RESERVED_NAMESPACES, own_namespace}))})"
            )

    async def prepare_project(self, project: str, runner_account: str) -> None:
        """What a new project's namespace needs besides its settings: the account its runner pods run as,
        which holds no rights and mounts no token."""
        account = {
            "metadata": {"name": runner_account, "namespace": project, "labels": {MANAGED_LABEL: "true"}},
            "automountServiceAccountToken": False,
        }
        try:
            await KubeApi(self.clients).create_service_account(project, account)
        except ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"ServiceAccount {runner_account!r} in {project!r}") from None

    async def sync_runner_secret(
        self,
        store: ResourceStore,
        project: str,
        name: str,
        value: str | None,
        frameworks: Sequence[str] | None = None,
    ) -> None:
        """Mirror a project secret into the Kubernetes Secret its runner Jobs read (None removes it), with its
        scope as an annotation beside it (`job.scope_annotation`), written in the same patch as the value."""
        try:
            secret_name = (await store.get(ProjectSettings, SETTINGS_NAME, project)).spec.runner_secret
        except NotFound:
            secret_name = RUNNER_SECRET
        encoded = base64.b64encode(value.encode()).decode() if value is not None else None
        what = f"Secret {secret_name!r} in {project!r}"
        annotations = job.scope_annotations(name, frameworks if value is not None else None)
        patch = {"metadata": {"annotations": annotations}, "data": {name: encoded}}
        api = KubeApi(self.clients)
        try:
            await api.patch_secret(secret_name, project, patch)
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, what) from None
            if encoded is None:
                return
            metadata = {"name": secret_name, "namespace": project, "labels": {MANAGED_LABEL: "true"}}
            kept = {k: v for k, v in annotations.items() if v is not None}
            body = {
                "metadata": metadata | ({"annotations": kept} if kept else {}),
                "data": {name: encoded},
                "type": "Opaque",
            }
            try:
                await api.create_secret(project, body)
            except ApiException as again:
                raise translate(again, what) from None

    async def start(self) -> None:
        self._retention = asyncio.create_task(self._expire_loop(), name="event-retention")

    async def _expire_loop(self) -> None:
        """Delete events past `VTEAM_EVENT_RETENTION_DAYS`, hourly; a failure waits for the next round."""
        while True:
            try:
                removed = await self.events.expire()
            except VteamError as exc:
                log.warning("event retention: %s", exc.detail)
            except Exception:
                log.exception("event retention failed; trying again in an hour")
            else:
                if removed:
                    log.info("event retention removed %d objects", removed)
            await asyncio.sleep(RETENTION_SECONDS)

    async def close(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await self.events.settle()
        await self.user_stores.close()
        await self.clients.close()


async def open_cluster(
    settings: Settings, embedded: EmbeddedAuthenticator, hub: Hub
) -> tuple[Cluster, ResourceStore, S3EventLog, ClusterAuthenticator, PhaseRelay]:
    """The backend's own store (its service account), the event log, the authenticator and the phase relay."""
    configuration = await load_configuration(settings.kubeconfig)
    clients = KubeClients.of(configuration)
    store = KubeStore.connect(configuration)
    admin_groups = tuple(g.strip() for g in settings.admin_groups.split(",") if g.strip())
    access = KubeAccess(clients, ttl=settings.access_cache_seconds, admin_groups=admin_groups)
    locations: dict[str, tuple[str, str]] = {}

    async def locate(uid: str) -> tuple[str, str] | None:
        """Where a session's events live, by its uid: the relay's watch tells of every session as it appears;
        a listing covers one it has not seen yet."""
        if uid not in locations:
            for session in (await store.list(AgenticSession)).items:
                locations[session.metadata.uid or ""] = (session.metadata.namespace or "", session.name)
        return locations.get(uid)

    s3 = S3EventLog.from_settings(settings, locate)
    await s3.check()
    cluster = Cluster(clients, access, UserStores(configuration), s3)

    def seen(session: AgenticSession) -> None:
        locations[session.metadata.uid or ""] = (session.metadata.namespace or "", session.name)

    def gone(session: AgenticSession) -> None:
        locations.pop(session.metadata.uid or "", None)

    relay = PhaseRelay(store, s3, hub, seen=seen, gone=gone)
    return cluster, store, s3, ClusterAuthenticator(embedded, access), relay


def binding_name(subject_type: str, subject: str) -> str:
    """One RoleBinding per subject and project; the digest keeps apart names that read alike."""
    return f"vteam-{subject_type}-{_dns_safe(subject)}-{digest(f'{subject_type}/{subject}')[:8]}"


def _dns_safe(name: str) -> str:
    """A readable part of a RoleBinding's name; the digest beside it keeps different users apart."""
    return "".join(c if (c.isascii() and c.isalnum()) or c == "-" else "-" for c in name.lower()).strip("-")[:40] or "x"
