"""What a new session must pass before it is stored, whichever door asks: each check is one
`SessionCheck`, and the composition root decides the list once (`standard_checks`)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from vteam.agents import registry
from vteam.auth import Identity, Vault
from vteam.controller.job import forbidden_roots
from vteam.forges import project_scope
from vteam.policy import repos
from vteam.resources import AgenticSession, Project
from vteam.settings import Settings
from vteam.store import ResourceStore

SessionCheck = Callable[[Identity, AgenticSession], Awaitable[None]]
"""Refuse a session the caller may not create by raising a `VteamError`; it may add annotations."""


async def available_secrets(vault: Vault, project: str, framework: str | None = None) -> set[str]:
    """The secret names a project's runner can get: the server's environment and the project's own secrets
    (with `framework`, only those whose scope includes it)."""
    stored = {
        s.name
        for s in await vault.list(project_scope(project))
        if framework is None or registry.reaches(s.frameworks, framework)
    }
    return {k for k, v in os.environ.items() if v} | stored


def platform_policy(
    settings: Settings, *, local_roots: tuple[str, ...] = (), any_local: bool = False
) -> repos.RepoPolicy:
    return repos.RepoPolicy(
        local_roots=local_roots,
        any_local=any_local,
        forbidden_roots=forbidden_roots(settings),
        allow_hosts=repos.split_list(settings.repo_allow_hosts),
        service_ranges=repos.split_list(settings.repo_service_ranges),
    )


async def framework_known(_caller: Identity, session: AgenticSession) -> None:
    """The framework exists, takes the model, and can run the session's mode."""
    spec = session.spec
    registry.check(spec.framework, spec.model, interactive=spec.interactive)


async def framework_ready(_caller: Identity, session: AgenticSession) -> None:
    """The framework's CLI is installed here: `make run` installs them in the background, after the platform starts."""
    await registry.check_ready(session.spec.framework)


def isolation_admits(admit: Callable[[Identity, str], None]) -> SessionCheck:
    """The isolation in force can confine this framework, or the caller may run it unconfined."""

    async def check(caller: Identity, session: AgenticSession) -> None:
        admit(caller, session.spec.framework)

    return check


def secrets_present(vault: Vault) -> SessionCheck:
    """Every secret the framework needs is in the server's environment or the project's secrets."""

    async def check(_caller: Identity, session: AgenticSession) -> None:
        framework = session.spec.framework
        registry.check_secrets(framework, await available_secrets(vault, session.metadata.namespace or "", framework))

    return check


def repositories_allowed(store: ResourceStore, settings: Settings) -> SessionCheck:
    """Refuse (422, naming the field) any repository the policy does not allow for the caller, and mark a
    platform admin's session so the runner allows its local paths too."""

    async def check(caller: Identity, session: AgenticSession) -> None:
        project = await store.get(Project, session.metadata.namespace or "")
        session.metadata.annotations.pop(repos.ANY_LOCAL_ANNOTATION, None)
        if caller.admin:
            session.metadata.annotations[repos.ANY_LOCAL_ANNOTATION] = "true"
        policy = platform_policy(
            settings, local_roots=repos.local_roots(project.metadata.annotations), any_local=caller.admin
        )
        for index, repo in enumerate(session.spec.repos):
            await repos.vet(repo.input.url, policy, field=f"repos[{index}].input.url", resolved_only=False)
            if repo.output is not None:
                await repos.vet(repo.output.url, policy, field=f"repos[{index}].output.url", resolved_only=False)

    return check


def standard_checks(
    *, store: ResourceStore, settings: Settings, vault: Vault, admit: Callable[[Identity, str], None]
) -> list[SessionCheck]:
    """The checks every platform runs, in the order their refusals are reported."""
    return [
        framework_known,
        framework_ready,
        isolation_admits(admit),
        secrets_present(vault),
        repositories_allowed(store, settings),
    ]
