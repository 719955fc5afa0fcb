"""A git host vTeam knows no API for: it can push there, and says why it can do nothing more."""

from __future__ import annotations

from vteam.errors import InvalidInput
from vteam.forges.base import (
    Blob,
    Branch,
    Credential,
    ForgeKind,
    Page,
    PullRequestDraft,
    PushTarget,
    RepoRef,
    TreeEntry,
)
from vteam.resources import PullRequestStatus


def why_not(repo: RepoRef) -> str:
    where = repo.host or "a local path"
    return (
        f"{where} is not a GitHub or GitLab this vTeam is set up for "
        "(VTEAM_GITHUB_URL, VTEAM_GITLAB_URL), so it pushed the branch but could open no pull request"
    )


class PlainGit:
    kind: ForgeKind = "git"

    async def login(self, credential: Credential) -> str:
        raise InvalidInput("a plain git remote has no accounts vTeam can check")

    async def push_target(
        self, repo: RepoRef, credential: Credential | None, *, branch: str, base: str | None
    ) -> PushTarget:
        return PushTarget(repo.url, None, base=base)

    async def open_pull_request(self, credential: Credential, draft: PullRequestDraft) -> PullRequestStatus:
        raise InvalidInput(why_not(draft.repo))

    async def set_body(self, credential: Credential, repo: RepoRef, number: int, body: str) -> None:
        raise InvalidInput(why_not(repo))

    async def pull_request(self, credential: Credential | None, repo: RepoRef, number: int) -> PullRequestStatus:
        raise InvalidInput(why_not(repo))

    async def branches(self, credential: Credential | None, repo: RepoRef, *, page: int, per_page: int) -> Page[Branch]:
        raise InvalidInput(f"the repo browser needs a GitHub or GitLab repo; {repo.url} is a plain git remote")

    async def tree(
        self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str
    ) -> list[TreeEntry]:
        raise InvalidInput(f"the repo browser needs a GitHub or GitLab repo; {repo.url} is a plain git remote")

    async def blob(self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str) -> Blob:
        raise InvalidInput(f"the repo browser needs a GitHub or GitLab repo; {repo.url} is a plain git remote")

    async def close(self) -> None:
        return None
