"""Forges as the platform uses them: which forge holds a repo, whose token acts there, and change sets.

Credentials are tried in the issue's order: the session creator's personal token, then the GitHub App
installation they linked, then the project's `GIT_TOKEN` (and the platform's `VTEAM_GIT_TOKEN`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vteam.auth import Vault
from vteam.errors import VteamError
from vteam.forges.base import Credential, Forge, ForgeUnavailable, PullRequestDraft, PushTarget, RepoRef
from vteam.forges.cache import EtagCache
from vteam.forges.changeset import body_for, title_for
from vteam.forges.github import GitHubForge, api_url_for
from vteam.forges.github_app import GitHubApp
from vteam.forges.gitlab import GitLabForge
from vteam.forges.plain import PlainGit, why_not
from vteam.forges.urls import host_of, repo_ref
from vteam.resources import CREATED_BY as CREATOR
from vteam.resources import AgenticSession, PullRequestStatus, RepoStatus
from vteam.settings import Settings

log = logging.getLogger(__name__)

PROJECT_TOKEN = "GIT_TOKEN"  # noqa: S105 - the secret's name, not its value
INSTALLATION = "github-installation"


def user_scope(user: str) -> str:
    return f"user:{user}"


def project_scope(project: str) -> str:
    return f"project:{project}"


def token_name(kind: str) -> str:
    return f"token:{kind}"


@dataclass(frozen=True)
class Link:
    """A user's GitHub App installation, as they linked it."""

    installation: int
    login: str


Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


class Forges:
    def __init__(self, settings: Settings, vault: Vault, signing_key: bytes) -> None:
        self._settings = settings
        self._vault = vault
        self.cache = EtagCache()
        self.github = GitHubForge(
            web_url=settings.github_url,
            api_url=settings.github_api_url or api_url_for(settings.github_url),
            timeout=settings.forge_timeout_seconds,
            max_wait=settings.forge_max_wait_seconds,
            fork_wait=settings.forge_fork_wait_seconds,
            cache=self.cache,
        )
        self.gitlab = GitLabForge(
            url=settings.gitlab_url,
            timeout=settings.forge_timeout_seconds,
            interactive_timeout=settings.forge_interactive_timeout_seconds,
            fork_wait=settings.forge_fork_wait_seconds,
            cache=self.cache,
        )
        self.plain = PlainGit()
        self.app = self._app(settings, signing_key)

    def _app(self, settings: Settings, signing_key: bytes) -> GitHubApp | None:
        key = settings.github_app_private_key.get_secret_value() if settings.github_app_private_key else None
        if key is None and settings.github_app_private_key_file is not None:
            key = Path(settings.github_app_private_key_file).read_text()
        if not settings.github_app_id or not key:
            return None
        secret = settings.github_app_client_secret
        return GitHubApp(
            self.github,
            app_id=settings.github_app_id,
            private_key=key,
            slug=settings.github_app_slug,
            client_id=settings.github_app_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            signing_key=hashlib.sha256(b"vteam-github-link\0" + signing_key).digest(),
        )

    async def close(self) -> None:
        await self.github.close()
        await self.gitlab.close()

    def ref(self, url: str) -> RepoRef:
        return repo_ref(
            url, github_host=host_of(self._settings.github_url), gitlab_host=host_of(self._settings.gitlab_url)
        )

    def forge(self, repo: RepoRef) -> Forge:
        forges: dict[str, Forge] = {"github": self.github, "gitlab": self.gitlab}
        return forges.get(repo.kind, self.plain)

    # Credentials

    async def link(self, user: str) -> Link | None:
        raw = await self._vault.get(user_scope(user), INSTALLATION)
        if raw is None:
            return None
        data = json.loads(raw)
        return Link(int(data["installation"]), str(data["login"]))

    async def save_link(self, user: str, link: Link) -> None:
        value = json.dumps({"installation": link.installation, "login": link.login})
        await self._vault.put(user_scope(user), INSTALLATION, value)

    async def credential(
        self, repo: RepoRef, user: str | None, project: str, *, fresh: bool = False
    ) -> Credential | None:
        """The first credential that can act on `repo`: the user's token, the App, the project's token."""
        if repo.kind == "git":
            return None
        username = "oauth2" if repo.kind == "gitlab" else "x-access-token"
        if user and (token := await self._vault.get(user_scope(user), token_name(repo.kind))):
            return Credential(token, "pat", username)
        if repo.kind == "github" and user and self.app is not None and (link := await self.link(user)):
            installation = await self.app.installation_for(repo)
            if installation == link.installation:
                if fresh:
                    self.app.forget(installation, (repo.name,))
                token = await self.app.token(installation, (repo.name,))
                return Credential(token, "app", username, login=link.login)
        token = await self._vault.get(project_scope(project), PROJECT_TOKEN)
        if token is None and self._settings.git_token is not None:
            token = self._settings.git_token.get_secret_value()
        return Credential(token, "project", username) if token else None

    async def _acting(
        self,
        repo: RepoRef,
        user: str | None,
        project: str,
        act: Callable[[Credential | None], Awaitable[Any]],
    ) -> Any:
        """Act with the repo's credential; an App token GitHub rejected is re-minted and tried once more."""
        credential = await self.credential(repo, user, project)
        try:
            return await act(credential)
        except ForgeUnavailable as exc:
            if credential is None or credential.source != "app" or "credentials" not in exc.detail:
                raise
            log.info("GitHub rejected the installation token for %s; minting a new one", repo.path)
            return await act(await self.credential(repo, user, project, fresh=True))

    # The session's side

    async def push_targets(self, session: AgenticSession, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """For each repo the runner is about to push: where to, and the token to push with."""
        user = session.metadata.annotations.get(CREATOR)
        out: list[dict[str, Any]] = []
        for item in wanted:
            index = int(item["index"])
            spec = session.spec.repos[index].output
            if spec is None:
                continue
            submodule = item.get("submodule")
            url = str(item["url"]) if submodule and item.get("url") else spec.url
            repo = self.ref(url)
            if submodule and repo.host != self.ref(spec.url).host:
                out.append({"index": index, "submodule": submodule, "error": f"{url} is on another host than its repo"})
                continue
            forge = self.forge(repo)
            branch, base = str(item["branch"]), item.get("base") or None

            async def plan(
                credential: Credential | None,
                forge: Forge = forge,
                repo: RepoRef = repo,
                branch: str = branch,
                base: str | None = base,
            ) -> PushTarget:
                return await forge.push_target(repo, credential, branch=branch, base=base)

            key: dict[str, Any] = {"index": index, "submodule": submodule} if submodule else {"index": index}
            try:
                target: PushTarget = await self._acting(repo, user, session.namespace or "", plan)
            except VteamError as exc:
                out.append({**key, "error": exc.detail})
                continue
            entry: dict[str, Any] = {**key, "url": target.url, "headRepo": target.head_repo, "base": target.base}
            if target.credential is not None:
                entry |= {"token": target.credential.token, "username": target.credential.username}
            out.append(entry)
        return out

    async def open_change_set(
        self, session: AgenticSession, repos: list[RepoStatus], result_text: str | None, session_url: str, emit: Emit
    ) -> list[RepoStatus]:
        """Open or update one pull request per pushed repo that asked for one, then link them to each other."""
        user = session.metadata.annotations.get(CREATOR)
        title = title_for(session, result_text)
        opened: list[tuple[int, RepoRef, Credential | None, PullRequestStatus]] = []
        repos = [r.model_copy() for r in repos]
        for index, status in enumerate(repos):
            owner = index if status.submodule_of is None else status.submodule_of
            spec = session.spec.repos[owner].output if owner < len(session.spec.repos) else None
            if spec is None or not spec.create_pull_request or not status.pushed or not status.branch:
                continue
            repo = self.ref(status.url if status.submodule_of is not None else spec.url)
            if repo.kind == "git":
                status.note = why_not(repo)
                continue
            base = status.base_branch or ""
            draft = PullRequestDraft(
                repo=repo,
                branch=status.branch,
                base=base,
                head_repo=_head_repo(self.ref(status.pushed_url) if status.pushed_url else None, repo),
                title=title,
                body=body_for(session, result_text, session_url, []),
                draft=spec.draft,
                merge_method=spec.merge_method,
            )
            forge = self.forge(repo)

            async def open_(
                credential: Credential | None, forge: Forge = forge, draft: PullRequestDraft = draft
            ) -> Any:
                if credential is None:
                    raise ForgeUnavailable(f"vTeam has no token for {draft.repo.host}; add one to open pull requests")
                return credential, await forge.open_pull_request(credential, draft)

            try:
                credential, pull = await self._acting(repo, user, session.namespace or "", open_)
            except VteamError as exc:
                status.error = f"pull request: {exc.detail}"
                continue
            status.pull_request = pull
            status.pull_request_url = pull.url
            opened.append((index, repo, credential, pull))
        for index, repo, credential, pull in opened:
            siblings = [p for i, _, _, p in opened if i != index]
            if siblings or pull.merge_method_note:
                body = body_for(session, result_text, session_url, siblings, pull.merge_method_note)
                try:
                    await self.forge(repo).set_body(credential, repo, pull.number, body)  # type: ignore[arg-type]
                except VteamError as exc:
                    repos[index].error = f"linking the change set: {exc.detail}"
            await emit(
                "vteam.pull_request",
                {"repo": index, **pull.model_dump(by_alias=True, exclude_none=True), "siblings": len(siblings)},
            )
        return repos

    async def refresh(self, session: AgenticSession) -> list[PullRequestStatus]:
        """The change set's pull requests with their current state at the forge."""
        user = session.metadata.annotations.get(CREATOR)
        out = []
        for status in session.status.repos:
            pull = status.pull_request
            if pull is None:
                continue
            repo = self.ref(status.url)

            async def read(credential: Credential | None, repo: RepoRef = repo, number: int = pull.number) -> Any:
                return await self.forge(repo).pull_request(credential, repo, number)

            try:
                fresh: PullRequestStatus = await self._acting(repo, user, session.namespace or "", read)
            except VteamError as exc:
                log.warning("could not refresh %s: %s", pull.url, exc.detail)
                out.append(pull)
                continue
            out.append(
                fresh.model_copy(
                    update={
                        "merge_method": pull.merge_method,
                        "merge_method_note": pull.merge_method_note,
                        "head_repo": pull.head_repo,
                    }
                )
            )
        return out

    async def browse_credential(self, repo: RepoRef, user: str, project: str) -> Credential | None:
        return await self.credential(repo, user, project)


def _head_repo(pushed: RepoRef | None, repo: RepoRef) -> str | None:
    if pushed is None or pushed.path == repo.path:
        return None
    return pushed.path
