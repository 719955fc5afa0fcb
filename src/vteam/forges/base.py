"""What vTeam asks of a forge (GitHub, GitLab, a plain git host), whichever one holds a repo."""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from vteam.errors import Unavailable
from vteam.policy.links import link_problem
from vteam.resources import PullRequestStatus

ForgeKind = Literal["github", "gitlab", "git"]
CredentialSource = Literal["pat", "app", "project"]
T = TypeVar("T")


class ForgeUnavailable(Unavailable):
    """The forge failed, rejected vTeam's credentials, or could not be reached."""


def forge_link(value: object) -> str:
    """A URL from a forge's answer that the web UI will link to: anything but an http(s) URL with a host is a bad
    answer, refused here rather than stored."""
    url = str(value)
    problem = link_problem(url)
    if problem is not None:
        raise ForgeUnavailable(f"the forge answered with a pull-request URL that {problem}")
    return url


@dataclass(frozen=True)
class RepoRef:
    kind: ForgeKind
    url: str
    host: str
    path: str
    """`owner/name` on GitHub; `group/subgroup/name` on GitLab; the URL's path on a plain host."""

    @property
    def owner(self) -> str:
        return self.path.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Credential:
    """A token vTeam acts with at a forge, and whom it acts for."""

    token: str = field(repr=False)
    source: CredentialSource
    username: str = "x-access-token"
    login: str | None = None
    """The person at the forge (for an App token: the user who linked the installation)."""


@dataclass(frozen=True)
class PushTarget:
    url: str
    credential: Credential | None
    head_repo: str | None = None
    """The fork's path when the branch goes to a fork instead of the repo itself."""
    base: str | None = None
    """The pull request's base branch, when the forge had to say (the repo's default branch)."""


@dataclass(frozen=True)
class PullRequestDraft:
    repo: RepoRef
    branch: str
    base: str
    head_repo: str | None
    title: str
    body: str
    draft: bool
    merge_method: str


@dataclass(frozen=True)
class Branch:
    name: str
    commit: str
    protected: bool


@dataclass(frozen=True)
class Submodule:
    url: str
    commit: str
    repo: str | None = None
    """The submodule's repo as `host/path` when its URL names a repo on a known forge."""


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str
    type: Literal["file", "dir", "submodule", "symlink"]
    sha: str
    size: int | None = None
    submodule: Submodule | None = None


@dataclass(frozen=True)
class Blob:
    path: str
    sha: str
    size: int
    content: bytes


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page: int | None


class Forge(Protocol):
    kind: ForgeKind

    async def login(self, credential: Credential) -> str:
        """Whom the credential acts as at the forge; also how a newly added token is checked."""
        ...

    async def push_target(
        self, repo: RepoRef, credential: Credential | None, *, branch: str, base: str | None
    ) -> PushTarget:
        """Where the work branch should go: the repo itself with push access, else the caller's fork."""
        ...

    async def open_pull_request(self, credential: Credential, draft: PullRequestDraft) -> PullRequestStatus:
        """Open the pull request, or update the open one for the same branch."""
        ...

    async def set_body(self, credential: Credential, repo: RepoRef, number: int, body: str) -> None: ...

    async def pull_request(self, credential: Credential | None, repo: RepoRef, number: int) -> PullRequestStatus: ...

    async def branches(
        self, credential: Credential | None, repo: RepoRef, *, page: int, per_page: int
    ) -> Page[Branch]: ...

    async def tree(
        self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str
    ) -> list[TreeEntry]: ...

    async def blob(self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str) -> Blob: ...

    async def close(self) -> None: ...


MERGE_METHODS = ("merge", "squash", "rebase")


def choose_merge_method(preferred: str, allowed: dict[str, bool], repo: str) -> tuple[str, str | None]:
    """The preferred merge method if the repo allows it, else the first it does, with a note saying so."""
    if allowed.get(preferred, False):
        return preferred, None
    for method in MERGE_METHODS:
        if allowed.get(method, False):
            return method, f"{repo} does not allow {preferred} merges; the change set uses {method}"
    raise ForgeUnavailable(
        f"{repo} allows no merge method vTeam knows ({', '.join(MERGE_METHODS)}); "
        "enable one in the repository's settings under Pull Requests"
    )


def parse_gitmodules(text: str) -> dict[str, str]:
    """Submodule path → URL from a `.gitmodules` file."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    found = {}
    for section in parser.sections():
        if section.startswith("submodule") and parser.has_option(section, "path") and parser.has_option(section, "url"):
            found[parser.get(section, "path")] = parser.get(section, "url")
    return found
