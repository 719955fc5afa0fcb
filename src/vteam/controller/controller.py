"""The embedded controller: an asyncio service inside `vteam up` that applies reconcile decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, NamedTuple

from vteam.agents import registry
from vteam.auth import RunnerTokens
from vteam.controller.executor import Executor, Key
from vteam.controller.job import repo_policy_env
from vteam.controller.reconcile import FAIR_QUEUED, QUEUED, Action, Decision, decide, project_limit, project_queued
from vteam.controller.transitions import set_phase, utcnow
from vteam.errors import Conflict, Expired, InvalidTransition, NotFound, VteamError
from vteam.events import EventLog, Hub
from vteam.policy import repos
from vteam.protocol import Env
from vteam.resources import SETTINGS_NAME, AgenticSession, Phase, Project, ProjectSettings, status_patch
from vteam.store import ResourceStore

log = logging.getLogger(__name__)

SECRET_PREFIX = Env.SECRET_PREFIX
"""A framework's secret for the runner; the executor never puts these in an exec environment."""
SETTING_PREFIX = Env.AGENT_ENV_PREFIX


class ProjectSecret(NamedTuple):
    """A project secret's value and scope: the frameworks whose agents get it (None: all of them)."""

    value: str
    frameworks: tuple[str, ...] | None = None


ProjectSecrets = Callable[[str], Awaitable[dict[str, ProjectSecret]]]
"""A project's secrets for its agents, by name (read from the vault when a runner starts)."""
TokenMinted = Callable[[str, str], Awaitable[None]]
"""Called with (project, session) each time a runner token is minted, so the audit log records it."""
Refuses = Callable[[AgenticSession], Awaitable[str | None]]
"""Why a session may not start here now (the isolation in force would refuse to create it), or None."""


class Controller:
    """One worker drains a de-duplicated queue of session keys; watches, exits and timers feed it."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        events: EventLog,
        hub: Hub,
        tokens: RunnerTokens,
        executor_factory: Callable[[Callable[[Key], None]], Executor],
        server_url: Callable[[], str],
        runner_env: dict[str, str],
        agent_environ: dict[str, str],
        max_running: int,
        resync_seconds: float,
        max_running_per_project: int | None = None,
        project_secrets: ProjectSecrets | None = None,
        token_minted: TokenMinted | None = None,
        refuses: Refuses | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._hub = hub
        self._tokens = tokens
        self._server_url = server_url
        self._runner_env = runner_env
        self._agent_environ = agent_environ
        self._max_running = max_running
        self._per_project = max_running_per_project
        self._resync = resync_seconds
        self._project_secrets = project_secrets
        self._token_minted = token_minted
        self._refuses = refuses
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._cache: dict[Key, AgenticSession] = {}
        self.executor = executor_factory(self.enqueue)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def enqueue(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def start(self) -> None:
        await self.executor.prepare()
        resource_version = await self._relist()
        await self._sweep()
        self._tasks = [
            asyncio.create_task(self._supervise("work", self._work), name="controller-work"),
            asyncio.create_task(
                self._supervise("watch", lambda: self._watch(resource_version)), name="controller-watch"
            ),
            asyncio.create_task(self._supervise("resync", self._resync_loop), name="controller-resync"),
        ]

    async def _supervise(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Keep a loop running: an unexpected error is logged and the loop starts again."""
        failed = False
        while True:
            try:
                if failed and name == "watch":
                    loop = partial(self._watch, await self._relist())
                failed = False
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller %s loop failed; restarting it in 1 s", name)
                failed = True
                await asyncio.sleep(1.0)

    async def _relist(self) -> str:
        """Refresh the cache from a full list and queue every session; the list's version to watch from."""
        listing = await self._store.list(AgenticSession)
        self._cache = {session.key: session for session in listing.items}
        for session in sorted(listing.items, key=_created):
            self.enqueue(session.key)
        return listing.resource_version

    async def _sweep(self) -> None:
        """Clean up after sessions deleted while no controller watched: runners, workspaces, events."""
        sessions = list(self._cache.values())
        await self.executor.sweep(sessions)
        removed = await self._events.prune({s.metadata.uid or "" for s in sessions})
        if removed:
            log.info("removed the events of %d deleted sessions", removed)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        await self.executor.close()

    async def _watch(self, resource_version: str) -> None:
        while True:
            try:
                async for event in self._store.watch(AgenticSession, resource_version=resource_version):
                    session = event.object
                    resource_version = session.metadata.resource_version or resource_version
                    if event.type == "DELETED":
                        self._cache.pop(session.key, None)
                        self._spawn(self._deleted(session))
                    else:
                        self._cache[session.key] = session
                        self.enqueue(session.key)
            except Expired:
                resource_version = await self._relist()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync)
            self._enqueue_cached(lambda s: not s.phase.terminal)

    def _enqueue_cached(self, want: Callable[[AgenticSession], bool]) -> None:
        """Queue cached sessions in creation order; the cache follows the watch, so this reads nothing."""
        for session in sorted((s for s in self._cache.values() if want(s)), key=_created):
            self.enqueue(session.key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self.reconcile(key)
            except NotFound:
                pass
            except (Conflict, InvalidTransition):
                self.enqueue(key)
            except Exception:
                log.exception("reconciling %s/%s failed; retrying in 1 s", *key)
                self._later(key, 1.0)

    def _later(self, key: Key, delay: float) -> None:
        if (old := self._timers.pop(key, None)) is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self.enqueue, key)

    async def reconcile(self, key: Key) -> None:
        project, name = key
        session = await self._store.get(AgenticSession, name, project)
        runner = self.executor.observe(session)
        why = await self._waits(session) if session.phase == Phase.PENDING and not runner.alive else None
        decision = decide(session, runner, now=utcnow(), capacity=why is None, why=why)
        await self._apply(session, decision)

    async def _limit(self, project: str) -> int:
        try:
            own = (await self._store.get(ProjectSettings, SETTINGS_NAME, project)).spec.max_running_sessions
        except NotFound:
            own = None
        return project_limit(self._max_running, self._per_project, own)

    async def _waits(self, session: AgenticSession) -> str | None:
        """Why a Pending session may not start now, or None. Slots are shared round-robin: a waiting session
        of a project with fewer runners goes before it (oldest first), so a busy project cannot starve the rest."""
        if self.executor.active() >= self._max_running:
            return QUEUED
        project = session.key[0]
        running = self.executor.active(project)
        limit = await self._limit(project)
        if running >= limit:
            return project_queued(project, running, limit)
        rank = (running, _created(session))
        limits = {project: limit}
        for other in sorted(self._cache.values(), key=_created):
            theirs_project = other.key[0]
            if theirs_project == project or other.phase != Phase.PENDING:
                continue
            theirs = self.executor.active(theirs_project)
            if (theirs, _created(other)) >= rank:
                continue
            if theirs_project not in limits:
                limits[theirs_project] = await self._limit(theirs_project)
            # The cache may not show yet that a session has started: its runner says so.
            if theirs < limits[theirs_project] and not self.executor.observe(other).alive:
                self.enqueue(other.key)
                return FAIR_QUEUED
        return None

    async def _apply(self, session: AgenticSession, decision: Decision) -> None:
        project, name = session.key
        match decision.action:
            case Action.START:
                await self._start(session)
                # Another free slot may now go to a session that gave way to this one.
                self._enqueue_cached(lambda s: s.phase == Phase.PENDING and s.key != session.key)
            case Action.QUEUE:
                if session.status.message != decision.message:
                    await self._store.patch_status(
                        AgenticSession,
                        name,
                        project,
                        status_patch(message=decision.message),
                        resource_version=session.metadata.resource_version,
                    )
            case Action.KILL:
                self.executor.terminate(session.key)
            case Action.FINISH:
                assert decision.phase is not None
                await set_phase(
                    self._store, self._events, self._hub, project, name, decision.phase, message=decision.message
                )
                self.executor.release(session.key)
                self._forget_timer(session.key)
                self._enqueue_cached(lambda s: s.phase == Phase.PENDING)
            case Action.RELEASE:
                self.executor.release(session.key)
                self._forget_timer(session.key)
            case Action.NOTHING:
                if decision.requeue_after is not None:
                    self._later(session.key, decision.requeue_after + 0.05)

    async def _start(self, session: AgenticSession) -> None:
        project, name = session.key
        uid = session.metadata.uid or ""
        # Checked again here, not only at creation: a session created or queued while a sandbox could be made
        # may come to start after a restart on a machine where none can be made any more.
        if self._refuses is not None and (why := await self._refuses(session)) is not None:
            await set_phase(self._store, self._events, self._hub, project, name, Phase.FAILED, message=why)
            return
        await set_phase(
            self._store,
            self._events,
            self._hub,
            project,
            name,
            Phase.CREATING,
            message="starting runner",
            start_time=utcnow(),
            observed_generation=session.metadata.generation,
        )
        try:
            secrets, settings = await self._agent_environment(session)
        except VteamError as exc:
            # A secret the vault cannot decrypt will not decrypt on a retry either: say so and stop.
            await set_phase(
                self._store,
                self._events,
                self._hub,
                project,
                name,
                Phase.FAILED,
                message=f"runner did not start: {exc.detail}",
            )
            return
        env = {
            **self._runner_env,
            Env.SERVER: self._server_url(),
            Env.PROJECT: project,
            Env.SESSION: name,
            Env.SESSION_UID: uid,
            Env.RUNNER_TOKEN: self._tokens.mint(project, name, uid),
        }
        await self._minted(project, name)
        env.update(repo_policy_env(session, await self._local_roots(project)))
        env.update(await self._resume_env(session))
        env.update({f"{SECRET_PREFIX}{k}": v for k, v in secrets.items()})
        env.update({f"{SETTING_PREFIX}{k}": v for k, v in settings.items()})
        try:
            await self.executor.start(session, env)
        except OSError as exc:
            await set_phase(
                self._store,
                self._events,
                self._hub,
                project,
                name,
                Phase.FAILED,
                message=f"runner did not start: {exc}",
            )
            return
        self._later(session.key, session.spec.timeout + 0.05)

    async def _agent_environment(self, session: AgenticSession) -> tuple[dict[str, str], dict[str, str]]:
        """The agent's secrets and settings, by one rule: the platform-level secrets its framework declares,
        plus every project secret whose scope includes its framework (a secret with no scope: every framework).

        A project secret need not be one the framework declares, so a project can hand its agent keys of its
        own; the project's value wins over the platform's for the same name. The operator applies the same
        rule to a runner Job (`job.agent_secret_keys`).
        """
        framework = session.spec.framework
        secrets, settings = registry.agent_environment(framework, self._agent_environ)
        if self._project_secrets is not None:
            for name, secret in (await self._project_secrets(session.key[0])).items():
                if registry.reaches(secret.frameworks, framework):
                    secrets[name] = secret.value
        return secrets, settings

    async def _local_roots(self, project: str) -> tuple[str, ...]:
        """The local folders a platform admin allowed the project's sessions (none if the project is gone)."""
        try:
            found = await self._store.get(Project, project)
        except NotFound:
            return ()
        return repos.local_roots(found.metadata.annotations)

    async def _minted(self, project: str, name: str) -> None:
        """Tell the audit log a runner token exists; a failing audit write is logged, not fatal to the session."""
        if self._token_minted is None:
            return
        try:
            await self._token_minted(project, name)
        except Exception:
            log.exception("recording the runner token of %s/%s in the audit log failed", project, name)

    def _forget_timer(self, key: Key) -> None:
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()

    async def _resume_env(self, session: AgenticSession) -> dict[str, str]:
        """For a continued session: the parent's conversation id and agent home, where they exist."""
        if not session.spec.parent_session:
            return {}
        try:
            parent = await self._store.get(AgenticSession, session.spec.parent_session, session.namespace)
        except NotFound:
            return {}
        home = self.executor.agent_home(parent)
        if not parent.status.conversation_id or home is None:
            return {}
        return {Env.RESUME_CONVERSATION: parent.status.conversation_id, Env.RESUME_HOME: home}

    async def _deleted(self, session: AgenticSession) -> None:
        self._forget_timer(session.key)
        with contextlib.suppress(Exception):
            await self.executor.remove(session)
        with contextlib.suppress(Exception):
            await self._events.delete(session.metadata.uid or "")


def _created(session: AgenticSession) -> str:
    ts = session.metadata.creation_timestamp
    return ts.isoformat() if ts else ""
