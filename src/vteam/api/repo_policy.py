"""The repository policy at the API: the effective policy of a project and caller, and the check every
session passes before it is stored (created through the API, continued, or made from the web form)."""

from __future__ import annotations

from vteam.api.platform import Platform
from vteam.auth import Identity
from vteam.controller.job import forbidden_roots
from vteam.policy import repos
from vteam.resources import AgenticSession, Project
from vteam.settings import Settings


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


async def check_session(platform: Platform, caller: Identity, session: AgenticSession) -> None:
    """Refuse (422, naming the field) any repository of `session` the policy does not allow for `caller`,
    and mark a platform admin's session so the runner allows its local paths too."""
    project = await platform.store.get(Project, session.metadata.namespace or "")
    session.metadata.annotations.pop(repos.ANY_LOCAL_ANNOTATION, None)
    if caller.admin:
        session.metadata.annotations[repos.ANY_LOCAL_ANNOTATION] = "true"
    policy = platform_policy(
        platform.settings, local_roots=repos.local_roots(project.metadata.annotations), any_local=caller.admin
    )
    for index, repo in enumerate(session.spec.repos):
        await repos.vet(repo.input.url, policy, field=f"repos[{index}].input.url", resolved_only=False)
        if repo.output is not None:
            await repos.vet(repo.output.url, policy, field=f"repos[{index}].output.url", resolved_only=False)
