"""The JobExecutor: the `Executor` of cluster mode, running each session's runner as a Kubernetes Job.

Kubernetes holds all the state, so reads are async: `refresh` loads a session's Job and Pods (and
`refresh_active` the running Jobs) into a cache that the Executor protocol's synchronous `observe`,
`decision_time`, `started_at` and `active` then answer from. The reconcile loop calls `refresh` before it decides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from vteam.agents import registry as agents
from vteam.controller.executor import NO_RUNNER, Key, Later, RunnerState
from vteam.controller.job import (
    SESSION_LABEL,
    agent_secret_keys,
    job_name,
    render_job,
    render_secret,
    secret_name,
)
from vteam.controller.job_state import decision_time, finished, lingers, parse_time, runner_state
from vteam.errors import Forbidden, NotFound, VteamError
from vteam.kube import ApiException, KubeClients, translate
from vteam.policy import repos
from vteam.protocol import Env
from vteam.resources import RUNNER_SECRET, SETTINGS_NAME, AgenticSession, Project, ProjectSettings
from vteam.settings import Settings
from vteam.store import ResourceStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
REFUSED_SECONDS = 10.0

Obj = dict[str, Any]


class JobExecutor:
    """Starts, observes and stops runner Jobs; the Job and its Secret are owned by the session (GC removes them)."""

    creating_first = False

    def __init__(
        self,
        *,
        settings: Settings,
        clients: KubeClients,
        store: ResourceStore,
        namespaces: Sequence[str] = (),
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._store = store
        self._namespaces = tuple(namespaces)
        self._jobs: dict[Key, Obj] = {}
        self._pods: dict[Key, list[Obj]] = {}
        self._running: list[Obj] = []

    # --- the Executor protocol ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Nothing to warm: the cluster pulls and schedules the runner image."""

    def observe(self, session: AgenticSession) -> RunnerState:
        """The runner as last read by `refresh` (none before it)."""
        key = session.key
        if key not in self._jobs:
            return NO_RUNNER
        return runner_state(self._jobs[key], self._pods.get(key, []))

    def decision_time(self, session: AgenticSession, now: datetime) -> datetime:
        return decision_time(session, self._jobs.get(session.key), now)

    def started_at(self, session: AgenticSession) -> datetime | None:
        """The Job's own creation time, so a start finished after a restart keeps it."""
        job = self._jobs.get(session.key)
        if job is None:
            return None
        return parse_time((job.get("metadata") or {}).get("creationTimestamp")) or datetime.now(UTC)

    async def start(self, session: AgenticSession, env: dict[str, str]) -> None:
        """Secret, then Job; a restart between the two, or after, picks up where it stopped."""
        try:
            await self._start(session, env)
        except Forbidden as exc:
            # A full ResourceQuota answers 403 too, and frees up; say why the session waits and look again.
            message = f"waiting: Kubernetes refused the runner: {exc.detail}"
            raise Later(REFUSED_SECONDS, exc.detail, message=message) from exc

    async def _start(self, session: AgenticSession, env: dict[str, str]) -> None:
        """The runner token comes from `env`, everything else from the session's project."""
        project, _ = session.key
        project_settings = await self.project_settings(project)
        secret = secret_name(session)
        token = env[Env.RUNNER_TOKEN]
        await self._create(
            session, render_secret(session, self._settings, token, secret), self._core.create_namespaced_secret
        )
        job = render_job(
            session,
            self._settings,
            project_settings,
            secret,
            agent_settings=self._agent_settings(session),
            local_roots=await self._local_roots(project),
            agent_secrets=await self._agent_secrets(session, project_settings),
        )
        self._jobs[session.key] = await self._create(session, job, self._batch.create_namespaced_job)
        self._pods[session.key] = []

    async def kill(self, session: AgenticSession) -> None:
        """Delete the session's Job (Kubernetes signals the pod and waits its grace period)."""
        await self._delete(session.key)

    async def cleanup(self, session: AgenticSession) -> None:
        """An unfinished Job whose runner will never run would count against the limits until its deadline."""
        job = self._jobs.get(session.key)
        if job is not None and lingers(job, self._pods.get(session.key, [])):
            await self._delete(session.key)
        self.release(session.key)

    def release(self, key: Key) -> None:
        self._jobs.pop(key, None)
        self._pods.pop(key, None)

    async def remove(self, session: AgenticSession) -> None:
        """The session's owner references let Kubernetes collect its Job and Secret; the Job is deleted at once."""
        self.release(session.key)
        await self._delete(session.key)

    async def sweep(self, sessions: list[AgenticSession]) -> None:
        """Nothing to sweep: a deleted session's Job and Secret are garbage-collected by their owner reference."""

    def agent_home(self, session: AgenticSession) -> str | None:
        """A finished pod's HOME is gone with it; a continued session starts a fresh agent home."""
        return None

    def active(self, project: str | None = None) -> int:
        """Running Jobs as last read by `refresh_active`, on the cluster or in one namespace."""
        if project is None:
            return len(self._running)
        return sum(1 for j in self._running if (j.get("metadata") or {}).get("namespace") == project)

    async def close(self) -> None:
        """Nothing to stop: every call was awaited."""

    # --- reads the loop awaits before it decides -----------------------------------------------

    async def refresh(self, session: AgenticSession) -> None:
        """Read the session's Job (if this session owns it) and its Pods afresh; `observe` answers from them."""
        job = await self._read_job(session)
        if job is None:
            self.release(session.key)
        else:
            self._jobs[session.key] = job
            self._pods[session.key] = await self._read_pods(session)

    def job(self, key: Key) -> Obj | None:
        """The session's Job as last read or created."""
        return self._jobs.get(key)

    async def refresh_active(self) -> None:
        """Read the runner Jobs that have not finished, for `active`."""
        self._running = [j for j in await self._list_jobs() if not finished(j)]

    async def project_settings(self, project: str) -> ProjectSettings | None:
        try:
            return await self._store.get(ProjectSettings, SETTINGS_NAME, project)
        except NotFound:
            return None

    # --- Kubernetes objects ---------------------------------------------------------------------

    @property
    def _core(self) -> Any:
        return self._clients.core

    @property
    def _batch(self) -> Any:
        return self._clients.batch

    def _plain(self, obj: Any) -> Obj:
        plain: Obj = self._clients.api.sanitize_for_serialization(obj)
        return plain

    async def _create(self, session: AgenticSession, body: Obj, create: Callable[..., Awaitable[Any]]) -> Obj:
        """Create an object the session owns; one that exists already is fine if it is this session's."""
        meta = body["metadata"]
        what = f"{body['kind']} {meta['name']!r} in {meta['namespace']!r}"
        try:
            return self._plain(await create(meta["namespace"], body))
        except ApiException as exc:
            if exc.status != 409:
                raise translate(exc, what) from exc
        kind = "secret" if body["kind"] == "Secret" else "job"
        read = getattr(self._core if kind == "secret" else self._batch, f"read_namespaced_{kind}")
        try:
            existing = self._plain(await read(meta["name"], meta["namespace"]))
        except ApiException as exc:
            raise translate(exc, what) from exc
        owners = (existing.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == session.metadata.uid for o in owners):
            raise Later(RETRY_SECONDS, f"{what} of an earlier session with this name is still being removed")
        return existing

    async def _read_job(self, session: AgenticSession) -> Obj | None:
        project, _ = session.key
        try:
            job = self._plain(await self._batch.read_namespaced_job(job_name(session), project))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"Job {job_name(session)!r} in {project!r}") from exc
        owners = (job.get("metadata") or {}).get("ownerReferences") or []
        return job if any(o.get("uid") == session.metadata.uid for o in owners) else None

    async def _read_pods(self, session: AgenticSession) -> list[Obj]:
        project, name = session.key
        try:
            listing = await self._core.list_namespaced_pod(project, label_selector=f"{SESSION_LABEL}={name}")
        except ApiException as exc:
            raise translate(exc, f"the Pods of session {name!r} in {project!r}") from exc
        return list(self._plain(listing).get("items") or [])

    async def _delete(self, key: Key) -> None:
        """Delete a session's Job (named after the session); one already gone is fine."""
        project, name = key
        try:
            await self._batch.delete_namespaced_job(name, project, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, f"Job {name!r} in {project!r}") from exc
        else:
            log.info("session %s/%s: deleted its runner Job", project, name)

    async def _list_jobs(self) -> list[Obj]:
        try:
            if not self._namespaces:
                listings = [await self._batch.list_job_for_all_namespaces(label_selector=SESSION_LABEL)]
            else:
                listings = [
                    await self._batch.list_namespaced_job(ns, label_selector=SESSION_LABEL) for ns in self._namespaces
                ]
        except ApiException as exc:
            raise translate(exc, "runner Jobs") from exc
        return [item for listing in listings for item in self._plain(listing).get("items") or []]

    async def _local_roots(self, project: str) -> tuple[str, ...]:
        """The local folders a platform admin allowed the project's sessions (paths inside the runner's pod)."""
        try:
            found = await self._store.get(Project, project)
        except NotFound:
            return ()
        return repos.local_roots(found.metadata.annotations)

    async def _agent_secrets(
        self, session: AgenticSession, project_settings: ProjectSettings | None
    ) -> list[str] | None:
        """The keys of the project's runner Secret the session's agent gets, by the one rule the embedded
        controller applies (`registry.reaches`); None for all of them, or when the project has no such Secret."""
        project = session.key[0]
        name = project_settings.spec.runner_secret if project_settings is not None else RUNNER_SECRET
        try:
            found = self._plain(await self._core.read_namespaced_secret(name, project))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"Secret {name!r} in {project!r}") from exc
        return agent_secret_keys(found, session.spec.framework)

    def _agent_settings(self, session: AgenticSession) -> dict[str, str]:
        """The framework's plain settings found in the operator's environment (its secrets come from the project)."""
        try:
            _, found = agents.agent_environment(session.spec.framework, dict(os.environ))
        except VteamError:
            return {}
        return found
