"""`vteam operator`: cluster mode's controller, a kopf operator that runs each session's runner as a Job.

Level-triggered like the embedded controller and with the same `decide()`: every watch event on a
session, its Job or its Pods queues the session; a worker reads the session, Job and Pods afresh,
decides, and acts. All state lives in the cluster, so a restart (or a hand-over between replicas)
reaches the same decisions. Phase changes are status patches only; the backend turns them into events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from vteam.auth import RunnerTokens, load_or_create
from vteam.controller.executor import Key
from vteam.controller.job import SESSION_LABEL
from vteam.controller.job_executor import JobExecutor, Later
from vteam.controller.job_state import decision_time, finished, lingers
from vteam.controller.reconcile import Action, Decision, decide, project_limit
from vteam.controller.transitions import RETRIES, utcnow
from vteam.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound, VteamError
from vteam.kube import ApiException, KubeClients, load_configuration, translate
from vteam.protocol import Env
from vteam.resources import (
    GROUP,
    VERSION,
    AgenticSession,
    Phase,
    check_transition,
    status_patch,
)
from vteam.settings import Settings
from vteam.store import ResourceStore

log = logging.getLogger(__name__)

PLURAL = "agenticsessions"
PEERING = "vteam"
WORKERS = 4
RETRY_SECONDS = 1.0
REFUSED_SECONDS = 10.0
LEADER_CHECK_SECONDS = 5.0
BUSY = frozenset({Phase.CREATING, Phase.RUNNING, Phase.STOPPING})

Obj = dict[str, Any]


@dataclass
class _Seen:
    created: str
    phase: Phase


class Operator:
    """Applies reconcile decisions through a `JobExecutor`; kopf's watch events feed its queue (see `registry`)."""

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
        self._settings = settings
        self._store = store
        self._tokens = tokens
        self.executor = JobExecutor(settings=settings, clients=clients, store=store, namespaces=namespaces)
        self._leader = leader
        self._workers = workers
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._seen: dict[Key, _Seen] = {}
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._leading = leader is None

    # --- the queue ------------------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        """Queue a session; one worker at a time handles a key, and a key queued meanwhile runs once more."""
        if key in self._busy:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def session_event(self, kind: str | None, body: Obj) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if kind == "DELETED":
            self._seen.pop(key, None)
            self._forget_timer(key)
            self.executor.release(key)
            self.enqueue_pending()
            return
        phase = (body.get("status") or {}).get("phase") or Phase.PENDING.value
        self._seen[key] = _Seen(str(meta.get("creationTimestamp") or ""), Phase(phase))
        self.enqueue(key)

    def runner_event(self, kind: str | None, body: Obj) -> None:
        """A Job or Pod of a session changed: reconcile the session; an ended Job frees a place for another."""
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SESSION_LABEL)
        if name:
            self.enqueue((meta.get("namespace") or "", name))
        if body.get("kind") == "Job" and (kind == "DELETED" or finished(body)):
            self.enqueue_pending()

    def enqueue_pending(self) -> None:
        """Queue the waiting sessions, oldest first, so the longest-waiting one gets a free place."""
        waiting = [(seen.created, key) for key, seen in self._seen.items() if seen.phase == Phase.PENDING]
        for _, key in sorted(waiting):
            self.enqueue(key)

    def _later(self, key: Key, delay: float) -> None:
        self._forget_timer(key)
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._wake, key)

    def _wake(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    def _forget_timer(self, key: Key) -> None:
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"operator-worker-{i}") for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._resync(), name="operator-resync"))
        if self._leader is not None:
            self._tasks.append(asyncio.create_task(self._follow_leadership(), name="operator-leadership"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self.executor.close()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._busy.add(key)
            try:
                if self._leading:
                    await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Later as later:
                log.info("session %s/%s: %s; trying again in %.0f s", *key, later, later.delay)
                self._later(key, later.delay)
            except (Conflict, InvalidTransition):
                self._again.add(key)
            except Exception:
                log.exception("reconciling session %s/%s failed; retrying in %.0f s", *key, RETRY_SECONDS)
                self._later(key, RETRY_SECONDS)
            finally:
                self._busy.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.enqueue(key)

    async def _resync(self) -> None:
        """A safety net: waiting sessions are looked at again now and then (a project's limit may have grown)."""
        while True:
            await asyncio.sleep(self._settings.resync_seconds)
            self.enqueue_pending()

    async def _follow_leadership(self) -> None:
        """Only the active replica acts: kopf pauses the watches of the others, this pauses their timers."""
        assert self._leader is not None
        while True:
            try:
                leading = await self._leader()
            except Exception:
                log.warning("could not read the peering object; keeping the last known role", exc_info=True)
                leading = self._leading
            if leading and not self._leading:
                log.info("this replica is now the active operator")
                for key in list(self._seen):
                    self.enqueue(key)
            self._leading = leading
            await asyncio.sleep(LEADER_CHECK_SECONDS)

    # --- one session ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        project, name = key
        try:
            session = await self._store.get(AgenticSession, name, project)
        except NotFound:
            self._seen.pop(key, None)
            self._forget_timer(key)
            return
        self._seen[key] = _Seen(_created(session), session.phase)
        job, pods = await self.executor.refresh(session)
        runner = self.executor.observe(session)
        if session.phase == Phase.PENDING and not runner.alive:
            # Places are counted and taken under one lock, so two workers never take the last one.
            async with self._start_lock:
                capacity = await self._capacity(session)
                decision = decide(session, runner, now=decision_time(session, job, utcnow()), capacity=capacity)
                await self._apply(session, decision, job, pods)
            return
        decision = decide(session, runner, now=decision_time(session, job, utcnow()), capacity=True)
        await self._apply(session, decision, job, pods)

    async def _apply(self, session: AgenticSession, decision: Decision, job: Obj | None, pods: list[Obj]) -> None:
        key = session.key
        match decision.action:
            case Action.START:
                await self._start(session)
            case Action.QUEUE:
                await self._message(session, decision.message)
            case Action.KILL:
                await self.executor.delete(session)
            case Action.FINISH:
                assert decision.phase is not None
                await self.set_phase(key, decision.phase, message=decision.message, based_on=session)
                if job is not None and lingers(job, pods):
                    await self.executor.delete(session)
                self._forget_timer(key)
                self.enqueue_pending()
            case Action.RELEASE:
                if job is not None and lingers(job, pods):
                    await self.executor.delete(session)
                self.executor.release(key)
                self._forget_timer(key)
            case Action.NOTHING:
                if session.phase == Phase.PENDING and job is not None:
                    await self._started(session, job)
                if decision.requeue_after is not None:
                    self._later(key, decision.requeue_after + 0.05)

    async def _start(self, session: AgenticSession) -> None:
        """Secret, then Job, then the phase: a restart between any two steps picks up where it stopped."""
        project, name = session.key
        env = {Env.RUNNER_TOKEN: self._tokens.mint(project, name, session.metadata.uid or "")}
        try:
            await self.executor.start(session, env)
        except InvalidInput as exc:
            await self.set_phase(session.key, Phase.FAILED, message=f"runner did not start: {exc.detail}")
            return
        except Forbidden as exc:
            # A full ResourceQuota answers 403 too, and frees up; say why the session waits and look again.
            await self._message(session, f"waiting: Kubernetes refused the runner: {exc.detail}")
            raise Later(REFUSED_SECONDS, exc.detail) from exc
        created = self.executor.job(session.key)
        assert created is not None
        await self._started(session, created)

    async def _started(self, session: AgenticSession, job: Obj) -> None:
        """Pending → Creating; the start time is the Job's own, so a start finished after a restart keeps it."""
        created = (job.get("metadata") or {}).get("creationTimestamp")
        start = _parse_time(created) or utcnow()
        await self.set_phase(
            session.key,
            Phase.CREATING,
            message="starting runner",
            start_time=min(start, utcnow()),
            observed_generation=session.metadata.generation,
        )
        self._later(session.key, session.spec.timeout + 0.05)

    async def set_phase(
        self,
        key: Key,
        phase: Phase,
        *,
        message: str | None = None,
        based_on: AgenticSession | None = None,
        **fields: Any,
    ) -> AgenticSession:
        """Move a session to `phase` under the phase rules, retrying on write conflicts; no event is written here.

        With `based_on`, the session a decision was made on, the write holds only if nothing changed since: a
        runner's final report landing meanwhile is a Conflict, and the session is decided again with it.
        """
        project, name = key
        for attempt in range(RETRIES):
            if based_on is not None and attempt == 0:
                current = based_on
            else:
                current = await self._store.get(AgenticSession, name, project)
            check_transition(current.phase, phase)
            changes: dict[str, Any] = {"phase": phase, "message": message, **fields}
            if phase.terminal and current.status.completion_time is None:
                changes["completion_time"] = utcnow()
            if phase == current.phase and current.status.message == message:
                return current
            try:
                updated = await self._patch_status(current, status_patch(**changes))
            except Conflict:
                if based_on is not None or attempt == RETRIES - 1:
                    raise
                continue
            if updated.phase != current.phase:
                log.info("session %s/%s: %s -> %s (%s)", project, name, current.phase, phase, message or "")
            self._seen[key] = _Seen(_created(updated), updated.phase)
            return updated
        raise AssertionError("unreachable")

    async def _message(self, session: AgenticSession, message: str | None) -> None:
        if session.status.message != message:
            await self._patch_status(session, status_patch(message=message))

    async def _patch_status(self, session: AgenticSession, patch: Obj) -> AgenticSession:
        """The one place status is written: a merge patch on /status, conditional on the version read."""
        project, name = session.key
        return await self._store.patch_status(
            AgenticSession, name, project, patch, resource_version=session.metadata.resource_version
        )

    async def _capacity(self, session: AgenticSession) -> bool:
        """Whether a runner may start: the platform's limit over all projects, and the project's own."""
        project = session.key[0]
        await self.executor.refresh_active()
        if self.executor.active() >= self._settings.max_running_sessions:
            return False
        project_settings = await self.executor.project_settings(project)
        own = project_settings.spec.max_running_sessions if project_settings is not None else None
        limit = project_limit(self._settings.max_running_sessions, self._settings.max_running_sessions_per_project, own)
        return self.executor.active(project) < limit


def _created(session: AgenticSession) -> str:
    ts = session.metadata.creation_timestamp
    return ts.isoformat() if ts else ""


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
            seen = _parse_time(info.get("lastseen"))
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
