"""`vteam operator`: cluster mode's controller, a kopf operator that runs each session's runner as a Job.

The reconcile loop is the embedded controller's own (`reconciler.Reconciler`, with a `JobExecutor` and four
workers); this module is its wiring: every watch event on a session, its Job or its Pods queues the session,
and only the replica kopf lets lead acts. All state lives in the cluster, so a restart (or a hand-over between
replicas) reaches the same decisions. Phase changes are status patches only; the backend's `PhaseRelay` turns
them into events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from vteam.auth import RunnerTokens, load_or_create
from vteam.controller.job import SESSION_LABEL
from vteam.controller.job_executor import JobExecutor
from vteam.controller.job_state import finished, parse_time
from vteam.controller.reconciler import Reconciler
from vteam.controller.transitions import StatusOnly
from vteam.errors import VteamError
from vteam.kube import ApiException, KubeClients, load_configuration, translate
from vteam.resources import GROUP, VERSION, AgenticSession
from vteam.settings import Settings
from vteam.store import ResourceStore
from vteam.store.kube_mapping import from_custom

log = logging.getLogger(__name__)

PLURAL = "agenticsessions"
PEERING = "vteam"
WORKERS = 4
LEADER_CHECK_SECONDS = 5.0

Obj = dict[str, Any]


class Operator(Reconciler):
    """The reconcile loop through a `JobExecutor`; kopf's watch events feed its queue (see `registry`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        clients: KubeClients,
        store: ResourceStore,
        tokens: RunnerTokens,
        namespaces: Sequence[str] = (),
        leader: Callable[[], Awaitable[bool]] | None = None,
        workers: int = WORKERS,
    ) -> None:
        super().__init__(
            store=store,
            tokens=tokens,
            executor_factory=lambda _on_exit: JobExecutor(
                settings=settings, clients=clients, store=store, namespaces=namespaces
            ),
            phases=StatusOnly(store),
            max_running=settings.max_running_sessions,
            max_running_per_project=settings.max_running_sessions_per_project,
            workers=workers,
            name="operator",
        )
        self._resync_seconds = settings.resync_seconds
        self._leader = leader
        self._tasks: list[asyncio.Task[None]] = []
        self.leading = leader is None

    def session_event(self, kind: str | None, body: Obj) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if kind == "DELETED":
            self.forget(key)
            self.executor.release(key)
            self.enqueue_pending()
            return
        try:
            self.seen(from_custom(AgenticSession, body))
        except ValidationError:
            log.warning("session %s/%s does not read as an AgenticSession; deciding on it as stored", *key)
        self.enqueue(key)

    def runner_event(self, kind: str | None, body: Obj) -> None:
        """A Job or Pod of a session changed: reconcile the session; an ended Job frees a place for another."""
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SESSION_LABEL)
        if name:
            self.enqueue((meta.get("namespace") or "", name))
        if body.get("kind") == "Job" and (kind == "DELETED" or finished(body)):
            self.enqueue_pending()

    async def start(self) -> None:
        await super().start()
        self._tasks = [asyncio.create_task(self._resync(), name="operator-resync")]
        if self._leader is not None:
            self._tasks.append(asyncio.create_task(self._follow_leadership(), name="operator-leadership"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    async def _resync(self) -> None:
        """A safety net: waiting sessions are looked at again now and then (a project's limit may have grown)."""
        while True:
            await asyncio.sleep(self._resync_seconds)
            self.enqueue_pending()

    async def _follow_leadership(self) -> None:
        """Only the active replica acts: kopf pauses the watches of the others, this pauses their timers."""
        assert self._leader is not None
        while True:
            try:
                leading = await self._leader()
            except Exception:
                log.warning("could not read the peering object; keeping the last known role", exc_info=True)
                leading = self.leading
            if leading and not self.leading:
                log.info("this replica is now the active operator")
                self.enqueue_where(lambda _: True)
            self.leading = leading
            await asyncio.sleep(LEADER_CHECK_SECONDS)


# --- peering ------------------------------------------------------------------------------------


def peering_leader(clients: KubeClients, name: str, identity: str, priority: int) -> Callable[[], Awaitable[bool]]:
    """Whether this replica is the one kopf lets act: no live peer outranks it (kopf pauses all on a tie)."""

    async def leading() -> bool:
        try:
            peering = await clients.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
        except ApiException as exc:
            raise translate(exc, f"ClusterKopfPeering {name!r}") from exc
        now = datetime.now(UTC)
        for peer, info in ((peering or {}).get("status") or {}).items():
            if peer == identity or not isinstance(info, dict):
                continue
            seen = parse_time(info.get("lastseen"))
            alive = seen is not None and seen + timedelta(seconds=int(info.get("lifetime") or 60)) > now
            if alive and int(info.get("priority") or 0) >= priority:
                return False
        return True

    return leading


# --- kopf wiring --------------------------------------------------------------------------------


async def connection_info(settings: Settings) -> kopf.ConnectionInfo:
    """kopf's credentials from the same place the platform's clients take theirs (`VTEAM_KUBECONFIG` first)."""
    configuration = await load_configuration(settings.kubeconfig)
    header = await configuration.get_api_key_with_prefix("BearerToken")
    scheme, _, token = (header or "").partition(" ")
    if not token:
        scheme, token = "", scheme
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        expiration=None,
    )


def registry(operator: Operator, settings: Settings) -> kopf.OperatorRegistry:
    """kopf handlers that only feed the operator's queue: watch events in, no state kept by kopf."""
    handlers = kopf.OperatorRegistry()

    @kopf.on.login(registry=handlers)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await connection_info(settings)

    @kopf.on.startup(registry=handlers)
    async def startup(**_: Any) -> None:
        await operator.start()

    @kopf.on.cleanup(registry=handlers)
    async def cleanup(**_: Any) -> None:
        await operator.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=handlers)
    async def session_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.session_event(type, dict(body))

    @kopf.on.event("batch", "v1", "jobs", labels={SESSION_LABEL: kopf.PRESENT}, registry=handlers)
    async def job_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.runner_event(type, {**dict(body), "kind": "Job"})

    @kopf.on.event("v1", "pods", labels={SESSION_LABEL: kopf.PRESENT}, registry=handlers)
    async def pod_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.runner_event(type, {**dict(body), "kind": "Pod"})

    return handlers


def kopf_settings(*, peering: str, standalone: bool, priority: int) -> kopf.OperatorSettings:
    options = kopf.OperatorSettings()
    # Only watch-event handlers: kopf keeps no progress, adds no finalizers and posts no Events.
    options.posting.enabled = False
    # The CRDs are installed before the operator; no need to watch for new kinds or namespaces (or the RBAC).
    options.scanning.disabled = True
    options.peering.name = peering
    options.peering.standalone = standalone
    options.peering.mandatory = not standalone
    options.peering.priority = priority
    options.watching.server_timeout = 300
    options.watching.client_timeout = 330
    options.networking.request_timeout = 30
    return options


async def run(
    settings: Settings,
    *,
    namespaces: Sequence[str] = (),
    peering: str = PEERING,
    standalone: bool = False,
    priority: int | None = None,
    liveness: str | None = None,
    stop_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until stopped: all namespaces unless some are named, one active replica per peering."""
    if not settings.public_url:
        raise VteamError("set VTEAM_PUBLIC_URL to the URL runner pods reach the backend API at")
    # kopf logs every handled event at INFO; the operator's own log says what changed.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    fresh = not settings.key_path.exists()
    tokens = RunnerTokens(load_or_create(settings.key_path))
    if fresh:
        log.warning("created a new platform key at %s; the backend must use the same key file", settings.key_path)
    rank = priority if priority is not None else 1 + secrets.randbelow(2**31 - 2)
    identity = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
    clients = KubeClients.of(await load_configuration(settings.kubeconfig))
    from vteam.store.kube import KubeStore

    store = KubeStore(clients)
    leader = None if standalone or namespaces else peering_leader(clients, peering, identity, rank)
    operator = Operator(
        settings=settings, clients=clients, store=store, tokens=tokens, namespaces=namespaces, leader=leader
    )
    try:
        await kopf.operator(
            registry=registry(operator, settings),
            settings=kopf_settings(peering=peering, standalone=standalone, priority=rank),
            identity=identity,  # type: ignore[arg-type]
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=standalone,
            priority=rank,
            peering_name=None if standalone else peering,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
        )
    finally:
        with contextlib.suppress(Exception):
            await operator.stop()
        await clients.close()
