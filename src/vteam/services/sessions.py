"""Every action on a session, whichever door (API, web UI, CLI through the API) asks for it.

Each method takes the caller and returns models. It checks the caller's role in the project itself, runs
the admission checks the composition root chose (`checks`), writes the audit record, and picks the store
by one rule:

    The caller's own store (`store_for(caller)`) for what the caller reads or writes on their own behalf
    (list, get, create, continue, delete), so that in cluster mode Kubernetes RBAC has the last word; the
    platform's store for what the platform does as a consequence (reading a project or a parent session,
    a phase change on stop, a control event).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableSequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field, field_validator

from vteam.auth import AuditLog, Identity, Role, Vault
from vteam.controller import PhaseWriter
from vteam.errors import Forbidden, InvalidTransition, NotFound
from vteam.events import Envelope, EventLog, Hub, Recorder
from vteam.events import follow as follow_events
from vteam.events.agui import END, INTERRUPT, USER_MESSAGE, custom, dump
from vteam.resources import (
    CREATED_BY,
    AgenticSession,
    CamelModel,
    ObjectMeta,
    Phase,
    Project,
    RepoInput,
    SessionRepo,
    SessionSpec,
    validation,
)
from vteam.services.checks import SessionCheck, available_secrets
from vteam.services.session_body import generate_name, parse_session_body
from vteam.store import ResourceList, ResourceStore

PARENT_LABEL = "vteam.ambient-code/parent"

RoleOf = Callable[[Identity, str], Awaitable[Role | None]]
StoreFor = Callable[[Identity], Awaitable[ResourceStore]]


class SessionLife(Protocol):
    """What the services ask of whatever drives sessions: the embedded controller, or cluster mode's relay."""

    def enqueue(self, key: tuple[str, str]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ContinueIn(CamelModel):
    """What a continued session changes: its prompt, and optionally its name and whether it is interactive."""

    prompt: str = Field(min_length=1, max_length=200_000)
    name: str | None = None
    interactive: bool | None = Field(None, strict=True)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        validation.check_text(value, "prompt")
        return value


class MessageIn(CamelModel):
    text: str = Field(min_length=1, max_length=100_000)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        """The message becomes the agent's next prompt, which no process can be handed with a NUL in it."""
        validation.check_text(value, "text")
        return value


@dataclass(frozen=True)
class Sent:
    """A control event stored for a session's runner: its seq, and the values it carried."""

    seq: int
    values: dict[str, Any]


class Sessions:
    """The one place a session is created, continued, stopped, deleted, read, talked to and followed."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        store_for: StoreFor,
        events: EventLog,
        hub: Hub,
        life: Callable[[], SessionLife],
        phases: PhaseWriter,
        audit: AuditLog,
        vault: Vault,
        role_of: RoleOf,
        checks: MutableSequence[SessionCheck],
    ) -> None:
        self._store = store
        self._store_for = store_for
        self._events = events
        self._hub = hub
        self._recorder = Recorder(events, hub)
        self._life = life
        self._phases = phases
        """This mode's phase writer: with its event in the embedded mode, the status alone in cluster mode."""
        self._audit = audit
        self._vault = vault
        self._role_of = role_of
        self.checks = checks
        """The admission checks, in order; the composition root fills it, and every create runs them all."""

    # ---------------------------------------------------------------------------------------------
    # Reading

    async def list(
        self,
        *,
        caller: Identity,
        project: str,
        label_selector: str | None = None,
        phase: Phase | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ResourceList[AgenticSession]:
        """The store filters by phase itself, so a filtered page costs what an unfiltered one does."""
        await self._authorize(caller, project, Role.VIEW)
        await self._store.get(Project, project)
        return await (await self._store_for(caller)).list(
            AgenticSession,
            project,
            label_selector=label_selector,
            limit=limit,
            continue_token=continue_token,
            phase=None if phase is None else phase.value,
        )

    async def get(self, *, caller: Identity, project: str, name: str) -> AgenticSession:
        """A session, to anyone with a role in its project and to its own runner."""
        if not _own_runner(caller, project, name):
            await self._authorize(caller, project, Role.VIEW)
        return await (await self._store_for(caller)).get(AgenticSession, name, project)

    async def available_secrets(self, *, project: str, framework: str | None = None) -> set[str]:
        """The secret names a runner of `project` (running `framework`) can get."""
        return await available_secrets(self._vault, project, framework)

    def follow(self, session: AgenticSession, *, after: int, live: bool = True) -> AsyncGenerator[Envelope, None]:
        """The session's events after `after`: the stored ones, then live ones until it ends (or is deleted)."""
        uid = session.metadata.uid or ""
        project, name = session.metadata.namespace or "", session.name

        async def finished() -> bool:
            try:
                current = await self._store.get(AgenticSession, name, project)
            except NotFound:
                return True
            return current.metadata.uid != uid or current.phase.terminal

        return follow_events(self._events, self._hub, uid, after=after, finished=finished, live=live)

    # ---------------------------------------------------------------------------------------------
    # Creating

    async def create(
        self, *, caller: Identity, project: str, body: Any, request_id: str | None = None
    ) -> AgenticSession:
        """Parse a create body (either shape, the project's defaults filling the gaps), admit it and store it."""
        await self._authorize(caller, project, Role.EDIT)
        found = await self._store.get(Project, project)
        session = parse_session_body(body, project, defaults=found.spec.defaults)
        return await self._admit_and_store(caller, session, request_id=request_id)

    async def continue_(
        self, *, caller: Identity, project: str, name: str, change: ContinueIn, request_id: str | None = None
    ) -> AgenticSession:
        """A child session on the same repos, continuing from each work branch the parent pushed, and
        resuming the framework's conversation where the framework can."""
        await self._authorize(caller, project, Role.EDIT)
        parent = await self._store.get(AgenticSession, name, project)
        if not parent.phase.terminal:
            raise InvalidTransition(
                f"session {name!r} is still {parent.phase.value}; end or stop it before continuing it"
            )
        changes: dict[str, Any] = {"prompt": change.prompt, "repos": _continued_repos(parent), "parent_session": name}
        if change.interactive is not None:
            changes |= {"interactive": change.interactive, "mode": "interactive" if change.interactive else "batch"}
        child = AgenticSession(
            metadata=ObjectMeta(
                name=change.name or generate_name(parent.name[:54]),
                namespace=project,
                labels={**parent.metadata.labels, PARENT_LABEL: parent.name},
            ),
            spec=SessionSpec.model_validate(parent.spec.model_copy(update=changes).model_dump()),
        )
        return await self._admit_and_store(caller, child, request_id=request_id, details={"parent": parent.name})

    async def _admit_and_store(
        self,
        caller: Identity,
        session: AgenticSession,
        *,
        request_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> AgenticSession:
        """The one way a session comes into being: mark its creator, run every check, store, audit."""
        session.metadata.annotations[CREATED_BY] = caller.name
        for check in self.checks:
            await check(caller, session)
        created = await (await self._store_for(caller)).create(session)
        await self._record(
            caller,
            "session.create",
            created,
            request_id=request_id,
            details={"framework": created.spec.framework, **(details or {})},
        )
        return created

    # ---------------------------------------------------------------------------------------------
    # Ending

    async def stop(self, *, caller: Identity, project: str, name: str, request_id: str | None = None) -> AgenticSession:
        """Ask the controller to stop the session; stopping a stopping or stopped session changes nothing."""
        await self._authorize(caller, project, Role.EDIT)
        session = await self._store.get(AgenticSession, name, project)
        if session.phase in (Phase.STOPPING, Phase.STOPPED):
            return session
        if session.phase.terminal:
            raise InvalidTransition(f"session {name!r} already ended ({session.phase.value}); there is nothing to stop")
        updated = await self._phases(project, name, Phase.STOPPING, message="stopped on request")
        self._life().enqueue(updated.key)
        await self._record(caller, "session.stop", updated, request_id=request_id)
        return updated

    async def delete(self, *, caller: Identity, project: str, name: str, request_id: str | None = None) -> None:
        """Delete the session; its runner is killed and its workspace and events removed."""
        await self._authorize(caller, project, Role.EDIT)
        await (await self._store_for(caller)).delete(AgenticSession, name, project)
        await self._audit.record(
            actor=caller.name, project=project, action="session.delete", target=f"session/{name}", request_id=request_id
        )

    # ---------------------------------------------------------------------------------------------
    # Talking to a running session

    async def send_message(self, *, caller: Identity, project: str, name: str, message: MessageIn) -> Sent:
        """Send the agent a message; it is taken up when the current turn ends."""
        await self._authorize(caller, project, Role.EDIT)
        return await self.deliver(
            project=project, name=name, kind=USER_MESSAGE, sender=caller, id=uuid.uuid4().hex, text=message.text
        )

    async def interrupt(self, *, caller: Identity, project: str, name: str, request_id: str | None = None) -> Sent:
        """Stop the agent's current turn; the session stays, waiting for input."""
        await self._authorize(caller, project, Role.EDIT)
        sent = await self.deliver(project=project, name=name, kind=INTERRUPT, sender=caller)
        await self._audit.record(
            actor=caller.name,
            project=project,
            action="session.interrupt",
            target=f"session/{name}",
            request_id=request_id,
        )
        return sent

    async def end(self, *, caller: Identity, project: str, name: str, request_id: str | None = None) -> Sent:
        """Finish the conversation: the current turn is stopped, the work committed and pushed."""
        await self._authorize(caller, project, Role.EDIT)
        sent = await self.deliver(project=project, name=name, kind=END, sender=caller)
        await self._audit.record(
            actor=caller.name, project=project, action="session.end", target=f"session/{name}", request_id=request_id
        )
        return sent

    async def deliver(self, *, project: str, name: str, kind: str, sender: Identity, **values: Any) -> Sent:
        """Store a control event (with who sent it) for the runner's connection to forward, and publish it.
        The sender's role is checked by the caller of this method (a WebSocket's guard checks it per frame)."""
        session = await self._store.get(AgenticSession, name, project)
        if session.phase.terminal:
            raise InvalidTransition(f"session {name!r} already ended ({session.phase.value})")
        if not session.spec.interactive:
            raise InvalidTransition(
                f"session {name!r} is not interactive; create it with interactive: true to talk to it, "
                "or stop it with POST .../stop"
            )
        uid = session.metadata.uid or ""
        env = await self._recorder.record(uid, kind, dump(custom(kind, user=sender.name, **values)))
        return Sent(seq=env.seq, values=values)

    # ---------------------------------------------------------------------------------------------

    async def _authorize(self, caller: Identity, project: str, role: Role) -> None:
        """The caller's role in the project allows `role`; no role at all reads as a missing project."""
        have = await self._role_of(caller, project)
        if have is None:
            raise NotFound(f"project {project!r} not found")
        if not have.allows(role):
            raise Forbidden(f"your role in project {project!r} is {have.value}; this needs {role.value}")

    async def _record(
        self,
        caller: Identity,
        action: str,
        session: AgenticSession,
        *,
        request_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._audit.record(
            actor=caller.name,
            project=session.metadata.namespace,
            action=action,
            target=f"session/{session.name}",
            request_id=request_id,
            details=details,
        )


def _own_runner(caller: Identity, project: str, name: str) -> bool:
    return caller.is_runner and (caller.project, caller.session) == (project, name)


def _continued_repos(parent: AgenticSession) -> list[SessionRepo]:
    """The parent's repos, each continuing from the work branch the parent pushed (where it pushed one)."""
    repos: list[SessionRepo] = []
    for index, repo in enumerate(parent.spec.repos):
        pushed = parent.status.repos[index] if index < len(parent.status.repos) else None
        if repo.output is not None and pushed is not None and pushed.pushed and pushed.branch:
            output = repo.output.model_copy(
                update={
                    "target_branch": pushed.branch,
                    "allow_default_branch": True,
                    "pull_request_base": repo.output.pull_request_base or pushed.base_branch,
                }
            )
            source = pushed.pushed_url or repo.output.url
            repos.append(SessionRepo(input=RepoInput(url=source, branch=pushed.branch), output=output))
        else:
            repos.append(repo)
    return repos
