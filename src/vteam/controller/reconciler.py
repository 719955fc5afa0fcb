"""The one reconcile loop of both modes: a de-duplicated queue of session keys, workers that read, decide
(`reconcile.decide`) and act through an `Executor`, timers, admission and the start of a runner.

What differs by mode sits behind the executor (`LocalExecutor`, `JobExecutor`) and the strategies passed in:
how a phase is written (`transitions.Announced` or `StatusOnly`) and what env a runner gets. The embedded
`Controller` and cluster mode's `Operator` only feed the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from vteam.auth import RunnerTokens
from vteam.controller.executor import Executor, Key, Later, OnExit
from vteam.controller.reconcile import FAIR_QUEUED, QUEUED, Action, Decision, decide, project_limit, project_queued
from vteam.controller.transitions import PhaseWriter, utcnow
from vteam.errors import Conflict, InvalidInput, InvalidTransition, NotFound, VteamError
from vteam.protocol import Env
from vteam.resources import SETTINGS_NAME, AgenticSession, Phase, ProjectSettings, status_patch
from vteam.store import ResourceStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0

RunnerEnv = Callable[[AgenticSession], Awaitable[dict[str, str]]]
"""The env a runner starts with, but for its token (the reconciler mints that); may raise VteamError."""
TokenMinted = Callable[[str, str], Awaitable[None]]
"""Called with (project, session) each time a runner token is minted, so the audit log records it."""
Refuses = Callable[[AgenticSession], Awaitable[str | None]]
"""Why a session may not start here now (the isolation in force would refuse to create it), or None."""


async def no_env(session: AgenticSession) -> dict[str, str]:
    """Nothing but the token: the executor builds the rest (cluster mode's Job reads its project's Secret)."""
    return {}


class Reconciler:
    """Workers drain a de-duplicated queue of session keys; one worker at a time handles a key, and a key
    queued meanwhile runs once more. Every decision is made afresh from the stored session and its runner."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        tokens: RunnerTokens,
        executor_factory: Callable[[OnExit], Executor],
        phases: PhaseWriter,
        max_running: int,
        max_running_per_project: int | None = None,
        runner_env: RunnerEnv = no_env,
        token_minted: TokenMinted | None = None,
        refuses: Refuses | None = None,
        workers: int = 1,
        name: str = "reconciler",
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._phases = phases
        self._max_running = max_running
        self._per_project = max_running_per_project
        self._runner_env = runner_env
        self._token_minted = token_minted
        self._refuses = refuses
        self._workers = workers
        self._name = name
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._cache: dict[Key, AgenticSession] = {}
        self._owed: set[Key] = set()
        """Sessions another one gave way to: each starts, or hands the free place on to the rest."""
        self._start_lock = asyncio.Lock()
        self._worker_tasks: list[asyncio.Task[None]] = []
        self.leading = True
        """Whether this process acts; a replica that does not lead drains its queue without acting."""
        self.executor = executor_factory(self.enqueue)

    # --- the queue ------------------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        if key in self._busy:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def seen(self, session: AgenticSession) -> None:
        """Remember a session as a watch reported it, for admission and the `enqueue_*` helpers."""
        self._cache[session.key] = session

    def seen_all(self, sessions: list[AgenticSession]) -> None:
        """Replace what is remembered with a full listing."""
        self._cache = {session.key: session for session in sessions}

    def forget(self, key: Key) -> None:
        """A deleted session: nothing remembered, no timer left."""
        self._cache.pop(key, None)
        self._forget_timer(key)

    def known(self) -> list[AgenticSession]:
        return list(self._cache.values())

    def enqueue_where(self, want: Callable[[AgenticSession], bool]) -> None:
        """Queue remembered sessions in creation order, so the longest-waiting one gets a free place first."""
        for session in sorted((s for s in self._cache.values() if want(s)), key=_created):
            self.enqueue(session.key)

    def enqueue_pending(self) -> None:
        self.enqueue_where(lambda s: s.phase == Phase.PENDING)

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
        self._worker_tasks = [
            asyncio.create_task(self._work(), name=f"{self._name}-worker-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._worker_tasks:
            task.cancel()
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)
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
                if self.leading:
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

    # --- one session ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        try:
            await self._reconcile(key)
        finally:
            # A session others gave way to may have gone or changed meanwhile: the place it left goes on.
            if key in self._owed:
                self._owed.discard(key)
                if self._free():
                    self.enqueue_pending()

    async def _reconcile(self, key: Key) -> None:
        project, name = key
        try:
            session = await self._store.get(AgenticSession, name, project)
        except NotFound:
            self.forget(key)
            return
        self.seen(session)
        await self.executor.refresh(session)
        runner = self.executor.observe(session)
        if session.phase == Phase.PENDING and not runner.alive:
            # Places are counted and taken under one lock, so two workers never take the last one.
            async with self._start_lock:
                why = await self._waits(session)
                now = self.executor.decision_time(session, utcnow())
                await self._apply(session, decide(session, runner, now=now, capacity=why is None, why=why))
            return
        now = self.executor.decision_time(session, utcnow())
        await self._apply(session, decide(session, runner, now=now, capacity=True))

    async def _apply(self, session: AgenticSession, decision: Decision) -> None:
        key = session.key
        match decision.action:
            case Action.START:
                await self._start(session)
                # Another free place may now go to a session that gave way to this one.
                if self._free():
                    self.enqueue_where(lambda s: s.phase == Phase.PENDING and s.key != key)
            case Action.QUEUE:
                await self._message(session, decision.message)
            case Action.KILL:
                await self.executor.kill(session)
            case Action.FINISH:
                assert decision.phase is not None
                await self.set_phase(key, decision.phase, message=decision.message, based_on=session)
                await self.executor.cleanup(session)
                self._forget_timer(key)
                self.enqueue_pending()
            case Action.RELEASE:
                await self.executor.cleanup(session)
                self._forget_timer(key)
            case Action.NOTHING:
                if session.phase == Phase.PENDING and (began := self.executor.started_at(session)) is not None:
                    await self._creating(session, began)
                if decision.requeue_after is not None:
                    self._later(key, decision.requeue_after + 0.05)

    async def set_phase(
        self,
        key: Key,
        phase: Phase,
        *,
        message: str | None = None,
        based_on: AgenticSession | None = None,
        **fields: Any,
    ) -> AgenticSession:
        """Move a session to `phase` with this mode's writer (see `transitions.PhaseWriter`)."""
        project, name = key
        before = based_on or self._cache.get(key)
        updated = await self._phases(project, name, phase, message=message, based_on=based_on, **fields)
        if before is None or before.phase != updated.phase:
            was = before.phase if before is not None else "?"
            log.info("session %s/%s: %s -> %s (%s)", project, name, was, phase, message or "")
        self.seen(updated)
        return updated

    async def _message(self, session: AgenticSession, message: str | None) -> None:
        if session.status.message != message:
            project, name = session.key
            await self._store.patch_status(
                AgenticSession,
                name,
                project,
                status_patch(message=message),
                resource_version=session.metadata.resource_version,
            )

    # --- admission ------------------------------------------------------------------------------

    async def _limit(self, project: str) -> int:
        try:
            own = (await self._store.get(ProjectSettings, SETTINGS_NAME, project)).spec.max_running_sessions
        except NotFound:
            own = None
        return project_limit(self._max_running, self._per_project, own)

    def _free(self) -> bool:
        return self.executor.active() < self._max_running

    async def _waits(self, session: AgenticSession) -> str | None:
        """Why a Pending session may not start now, or None. Places go round-robin between projects: a waiting
        session of a project with fewer runners goes first, so a busy project cannot starve the rest; within
        a project, and between projects running as many, the longest-waiting session goes first."""
        await self.executor.refresh_active()
        if not self._free():
            return QUEUED
        project = session.key[0]
        running = self.executor.active(project)
        limit = await self._limit(project)
        if running >= limit:
            return project_queued(project, running, limit)
        limits = {project: limit}
        waiting = self._by_age()
        rank = (running, next((age for age, s in enumerate(waiting) if s.key == session.key), len(waiting)))
        for age, other in enumerate(waiting):
            theirs_project = other.key[0]
            theirs = self.executor.active(theirs_project)
            if (theirs, age) >= rank:
                continue
            if theirs_project not in limits:
                limits[theirs_project] = await self._limit(theirs_project)
            # What is remembered may not show yet that a session has started: its runner says so.
            if theirs < limits[theirs_project] and not self.executor.observe(other).alive:
                self._owed.add(other.key)
                self.enqueue(other.key)
                return QUEUED if theirs_project == project else FAIR_QUEUED
        return None

    def _by_age(self) -> list[AgenticSession]:
        """Pending sessions, oldest first; those created in the same second in the order they were first seen."""
        return [s for s in sorted(self._cache.values(), key=_created) if s.phase == Phase.PENDING]

    # --- starting a runner ----------------------------------------------------------------------

    async def _start(self, session: AgenticSession) -> None:
        key = session.key
        project, name = key
        # Checked again here, not only at creation: a session created or queued while a sandbox could be made
        # may come to start after a restart on a machine where none can be made any more.
        if self._refuses is not None and (why := await self._refuses(session)) is not None:
            await self.set_phase(key, Phase.FAILED, message=why)
            return
        if self.executor.creating_first:
            await self._creating(session, utcnow())
        try:
            env = await self._runner_env(session)
        except VteamError as exc:
            # A secret the vault cannot decrypt will not decrypt on a retry either: say so and stop.
            await self.set_phase(key, Phase.FAILED, message=f"runner did not start: {exc.detail}")
            return
        env[Env.RUNNER_TOKEN] = self._tokens.mint(project, name, session.metadata.uid or "")
        await self._minted(project, name)
        try:
            await self.executor.start(session, env)
        except Later as later:
            if later.message is not None:
                await self._message(session, later.message)
            raise
        except InvalidInput as exc:
            await self.set_phase(key, Phase.FAILED, message=f"runner did not start: {exc.detail}")
            return
        except OSError as exc:
            await self.set_phase(key, Phase.FAILED, message=f"runner did not start: {exc}")
            return
        if not self.executor.creating_first:
            await self._creating(session, self.executor.started_at(session) or utcnow())

    async def _creating(self, session: AgenticSession, began: datetime) -> None:
        """Pending → Creating, with the start time the deadline counts from."""
        await self.set_phase(
            session.key,
            Phase.CREATING,
            message="starting runner",
            start_time=min(began, utcnow()),
            observed_generation=session.metadata.generation,
        )
        self._later(session.key, session.spec.timeout + 0.05)

    async def _minted(self, project: str, name: str) -> None:
        """Tell the audit log a runner token exists; a failing audit write is logged, not fatal to the session."""
        if self._token_minted is None:
            return
        try:
            await self._token_minted(project, name)
        except Exception:
            log.exception("recording the runner token of %s/%s in the audit log failed", project, name)


def _created(session: AgenticSession) -> str:
    ts = session.metadata.creation_timestamp
    return ts.isoformat() if ts else ""
