"""The embedded controller: the reconcile loop inside `vteam up`, fed by the store's watch, runs local runners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, NamedTuple

from vteam.agents import registry
from vteam.auth import RunnerTokens
from vteam.controller.executor import Executor, OnExit
from vteam.controller.job import repo_policy_env
from vteam.controller.reconciler import Reconciler, Refuses, TokenMinted
from vteam.controller.transitions import Announced
from vteam.errors import Expired, NotFound
from vteam.events import EventLog, Hub
from vteam.policy import repos
from vteam.protocol import Env
from vteam.resources import AgenticSession, Project
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


class Controller(Reconciler):
    """The reconcile loop with one worker, fed by the store's watch, a periodic resync and runners' exits;
    phase changes are written with their `vteam.phase` events, and a deleted session's runner, workspace and
    events are removed."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        events: EventLog,
        hub: Hub,
        tokens: RunnerTokens,
        executor_factory: Callable[[OnExit], Executor],
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
        super().__init__(
            store=store,
            tokens=tokens,
            executor_factory=executor_factory,
            phases=Announced(store, events, hub),
            max_running=max_running,
            max_running_per_project=max_running_per_project,
            runner_env=self._env,
            token_minted=token_minted,
            refuses=refuses,
            workers=1,
            name="controller",
        )
        self._events = events
        self._server_url = server_url
        self._base_env = runner_env
        self._agent_environ = agent_environ
        self._resync = resync_seconds
        self._project_secrets = project_secrets
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        await self.executor.prepare()
        resource_version = await self._relist()
        await self._sweep()
        await super().start()
        self._tasks = [
            asyncio.create_task(
                self._supervise("watch", lambda: self._watch(resource_version)), name="controller-watch"
            ),
            asyncio.create_task(self._supervise("resync", self._resync_loop), name="controller-resync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await super().stop()

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
        """Remember every session from a full list and queue them all; the list's version to watch from."""
        listing = await self._store.list(AgenticSession)
        self.seen_all(listing.items)
        self.enqueue_where(lambda _: True)
        return listing.resource_version

    async def _sweep(self) -> None:
        """Clean up after sessions deleted while no controller watched: runners, workspaces, events."""
        sessions = self.known()
        await self.executor.sweep(sessions)
        removed = await self._events.prune({s.metadata.uid or "" for s in sessions})
        if removed:
            log.info("removed the events of %d deleted sessions", removed)

    async def _watch(self, resource_version: str) -> None:
        while True:
            try:
                async for event in self._store.watch(AgenticSession, resource_version=resource_version):
                    session = event.object
                    resource_version = session.metadata.resource_version or resource_version
                    if event.type == "DELETED":
                        self.forget(session.key)
                        self._spawn(self._deleted(session))
                    else:
                        self.seen(session)
                        self.enqueue(session.key)
            except Expired:
                resource_version = await self._relist()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync)
            self.enqueue_where(lambda s: not s.phase.terminal)

    async def _deleted(self, session: AgenticSession) -> None:
        with contextlib.suppress(Exception):
            await self.executor.remove(session)
        with contextlib.suppress(Exception):
            await self._events.delete(session.metadata.uid or "")

    # --- a local runner's env -------------------------------------------------------------------

    async def _env(self, session: AgenticSession) -> dict[str, str]:
        """Everything a local runner is told: the platform's runner env, where it is, its repo policy, what it
        resumes, and its agent's secrets and settings (handed over a pipe, never in an exec environment)."""
        project, name = session.key
        secrets, settings = await self._agent_environment(session)
        env = {
            **self._base_env,
            Env.SERVER: self._server_url(),
            Env.PROJECT: project,
            Env.SESSION: name,
            Env.SESSION_UID: session.metadata.uid or "",
        }
        env.update(repo_policy_env(session, await self._local_roots(project)))
        env.update(await self._resume_env(session))
        env.update({f"{SECRET_PREFIX}{k}": v for k, v in secrets.items()})
        env.update({f"{SETTING_PREFIX}{k}": v for k, v in settings.items()})
        return env

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
