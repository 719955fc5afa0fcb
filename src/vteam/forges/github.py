"""GitHub and GitHub Enterprise through githubkit: push access, forks, pull requests, the repo browser.

githubkit costs about 11 MiB once imported, so it is imported by the first call that needs it (`client` builds
every client), not at start.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from vteam.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from vteam.forges.base import (
    Blob,
    Branch,
    Credential,
    ForgeKind,
    ForgeUnavailable,
    Page,
    PullRequestDraft,
    PushTarget,
    RepoRef,
    Submodule,
    TreeEntry,
    choose_merge_method,
    forge_link,
    parse_gitmodules,
)
from vteam.forges.cache import Cached, EtagCache
from vteam.forges.http import SharedTransport
from vteam.resources import PullRequestStatus

if TYPE_CHECKING:
    from githubkit import GitHub
    from githubkit.exception import GitHubException, RequestFailed
    from githubkit.typing import RetryOption

log = logging.getLogger(__name__)

PUSH_PERMISSIONS = {"admin", "maintain", "write"}
_NEXT = re.compile(r'<[^>]*[?&]page=(\d+)[^>]*>;\s*rel="next"')


class RateLimitRetry:
    """Retry a rate-limited request after its reset when that is soon enough; otherwise give up with 429."""

    def __init__(self, max_wait: float, max_retry: int = 3) -> None:
        self.max_wait = max_wait
        self.max_retry = max_retry

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        from githubkit.exception import RateLimitExceeded
        from githubkit.retry import RETRY_SERVER_ERROR
        from githubkit.typing import RetryOption

        if isinstance(exc, RateLimitExceeded):
            # GitHub's reset is whole seconds: wait one more so the retry lands after it.
            wait = exc.retry_after + timedelta(seconds=1)
            if retry_count < self.max_retry and wait.total_seconds() <= self.max_wait:
                log.info("GitHub rate limit hit; retrying in %.1f s", wait.total_seconds())
                return RetryOption(True, wait)
            return RetryOption(False)
        return RETRY_SERVER_ERROR(exc, retry_count)


def api_url_for(web_url: str) -> str:
    """GitHub's REST API URL for its web URL: api.github.com, or `<host>/api/v3` for Enterprise."""
    web = web_url.rstrip("/")
    return "https://api.github.com" if web in ("https://github.com", "http://github.com") else f"{web}/api/v3"


def failure(exc: GitHubException, what: str) -> Exception:
    """The vTeam error for a failed GitHub call; never includes a token."""
    from githubkit.exception import RateLimitExceeded, RequestFailed, RequestTimeout

    if isinstance(exc, RateLimitExceeded):
        wait = max(1.0, exc.retry_after.total_seconds() + 1)
        return RateLimited(f"GitHub rate limit reached while {what}; retry in {wait:.0f} s", retry_after=wait)
    if isinstance(exc, RequestTimeout):
        return ForgeUnavailable(f"GitHub did not answer in time while {what}")
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        message = _message(exc)
        if status == 401:
            return ForgeUnavailable(f"GitHub rejected vTeam's credentials while {what}: {message}")
        if status == 403:
            return Forbidden(f"GitHub refused {what}: {message}")
        if status == 404:
            return NotFound(f"GitHub found nothing while {what} (the repo may not exist or be private)")
        if status == 422:
            return InvalidInput(f"GitHub refused {what}: {message}")
        return ForgeUnavailable(f"GitHub failed while {what}: HTTP {status} {message}")
    return ForgeUnavailable(f"GitHub could not be reached while {what}: {type(exc).__name__}")


def _message(exc: RequestFailed) -> str:
    try:
        body = exc.response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    details = [str(e.get("message") or e.get("code") or "") for e in body.get("errors") or [] if isinstance(e, dict)]
    return "; ".join(filter(None, [str(body.get("message") or ""), *details]))


def _data(response: Any) -> Any:
    """A response's JSON as plain data: vTeam reads a few fields, not githubkit's typed models."""
    return response.json()


class GitHubForge:
    kind: ForgeKind = "github"

    def __init__(
        self,
        *,
        web_url: str,
        api_url: str,
        timeout: float,
        max_wait: float,
        fork_wait: float,
        cache: EtagCache,
    ) -> None:
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._retry = RateLimitRetry(max_wait)
        self._fork_wait = fork_wait
        self._cache = cache
        self.transport = SharedTransport()

    def client(self, token: str | None) -> GitHub[Any]:
        from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy

        auth: Any = TokenAuthStrategy(token) if token else UnauthAuthStrategy()
        return GitHub(
            auth,
            base_url=self.api_url,
            timeout=self._timeout,
            http_cache=False,
            auto_retry=self._retry,
            async_transport=self.transport,
            user_agent="vteam",
        )

    @asynccontextmanager
    async def _calls(self, what: str) -> AsyncIterator[None]:
        from githubkit.exception import GitHubException

        try:
            yield
        except GitHubException as exc:
            raise failure(exc, what) from None

    async def _get(self, token: str | None, path: str, what: str, params: dict[str, Any] | None = None) -> Cached:
        """A GET through the ETag cache: a repeat sends If-None-Match, and GitHub's 304 is free."""
        url = path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")
        cached = self._cache.get(token, url)
        headers = {"If-None-Match": cached.etag} if cached else {}
        async with self._calls(what):
            response = await self.client(token).arequest("GET", path, params=params, headers=headers)
        if response.status_code == 304 and cached is not None:
            self._cache.hits += 1
            return cached
        fresh = Cached(response.headers.get("etag", ""), response.json(), response.headers.get("link"))
        if fresh.etag:
            self._cache.put(token, url, fresh)
        return fresh

    async def login(self, credential: Credential) -> str:
        if credential.login:
            return credential.login
        gh = self.client(credential.token)  # githubkit's namespaces hold their client weakly: keep it alive
        async with self._calls("reading the token's user"):
            user = _data(await gh.rest.users.async_get_authenticated())
        return str(user["login"])

    async def push_target(
        self, repo: RepoRef, credential: Credential | None, *, branch: str, base: str | None
    ) -> PushTarget:
        if credential is None:
            return PushTarget(repo.url, None, base=base)
        gh = self.client(credential.token)
        async with self._calls(f"reading {repo.path}"):
            info = _data(await gh.rest.repos.async_get(repo.owner, repo.name))
        base = base or str(info["default_branch"])
        await self._require_branch(gh, repo, base)
        login = await self.login(credential)
        try:
            async with self._calls(f"reading {login}'s permission on {repo.path}"):
                permission = _data(
                    await gh.rest.repos.async_get_collaborator_permission_level(repo.owner, repo.name, login)
                )
        except Forbidden:
            permission = {}  # GitHub shows collaborators' permissions only to those who can push
        if permission.get("permission") in PUSH_PERMISSIONS or permission.get("role_name") in PUSH_PERMISSIONS:
            await self._refuse_protected(gh, repo, branch)
            return PushTarget(repo.url, credential, base=base)
        if credential.source == "app":
            raise Forbidden(
                f"{login} has no push access to {repo.path}, and the GitHub App cannot fork for them; "
                "add a personal access token to push from a fork"
            )
        fork = await self._fork(gh, repo, login)
        return PushTarget(str(fork["clone_url"]), credential, head_repo=str(fork["full_name"]), base=base)

    async def _require_branch(self, gh: GitHub[Any], repo: RepoRef, base: str) -> dict[str, Any]:
        try:
            async with self._calls(f"reading branch {base!r} of {repo.path}"):
                return dict(_data(await gh.rest.repos.async_get_branch(repo.owner, repo.name, base)))
        except NotFound:
            raise InvalidInput(
                f"base branch {base!r} does not exist in {repo.path}; set the repo's input branch to one that does"
            ) from None

    async def _refuse_protected(self, gh: GitHub[Any], repo: RepoRef, branch: str) -> None:
        try:
            async with self._calls(f"reading branch {branch!r} of {repo.path}"):
                found = _data(await gh.rest.repos.async_get_branch(repo.owner, repo.name, branch))
        except NotFound:
            return
        if found.get("protected"):
            raise Conflict(
                f"branch {branch!r} of {repo.path} is protected, so vTeam cannot push to it; "
                "choose another output.targetBranch"
            )

    async def _fork(self, gh: GitHub[Any], repo: RepoRef, login: str) -> dict[str, Any]:
        """Find or create the user's fork, and wait until GitHub has it ready."""
        async with self._calls(f"forking {repo.path}"):
            fork = _data(await gh.rest.repos.async_create_fork(repo.owner, repo.name))
        owner, name = str(fork["full_name"]).split("/", 1)
        deadline = time.monotonic() + self._fork_wait
        delay = 0.2
        while True:
            try:
                async with self._calls(f"waiting for the fork {owner}/{name}"):
                    return dict(_data(await gh.rest.repos.async_get(owner, name)))
            except NotFound:
                if time.monotonic() > deadline:
                    raise ForgeUnavailable(
                        f"GitHub did not finish forking {repo.path} to {owner}/{name} in {self._fork_wait:.0f} s"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def open_pull_request(self, credential: Credential, draft: PullRequestDraft) -> PullRequestStatus:
        repo = draft.repo
        gh = self.client(credential.token)
        async with self._calls(f"reading {repo.path}"):
            info = _data(await gh.rest.repos.async_get(repo.owner, repo.name))
        allowed = {
            "merge": bool(info.get("allow_merge_commit", True)),
            "squash": bool(info.get("allow_squash_merge", True)),
            "rebase": bool(info.get("allow_rebase_merge", True)),
        }
        method, note = choose_merge_method(draft.merge_method, allowed, repo.path)
        head_owner = draft.head_repo.split("/", 1)[0] if draft.head_repo else repo.owner
        async with self._calls(f"listing pull requests of {repo.path}"):
            existing = _data(
                await gh.rest.pulls.async_list(
                    repo.owner, repo.name, state="open", head=f"{head_owner}:{draft.branch}", base=draft.base
                )
            )
        if existing:
            number = int(existing[0]["number"])
            async with self._calls(f"updating pull request #{number} of {repo.path}"):
                pull = _data(
                    await gh.rest.pulls.async_update(
                        repo.owner, repo.name, number, data={"title": draft.title, "body": draft.body}
                    )
                )
        else:
            head = f"{head_owner}:{draft.branch}" if draft.head_repo else draft.branch
            data: Any = {
                "title": draft.title,
                "head": head,
                "base": draft.base,
                "body": draft.body,
                "draft": draft.draft,
            }
            if draft.head_repo:
                data["maintainer_can_modify"] = True
            async with self._calls(f"opening a pull request on {repo.path}"):
                pull = _data(await gh.rest.pulls.async_create(repo.owner, repo.name, data=data))
        return self._status(repo, pull, draft.head_repo, method, note)

    def _status(
        self,
        repo: RepoRef,
        pull: dict[str, Any],
        head_repo: str | None,
        method: str | None = None,
        note: str | None = None,
    ) -> PullRequestStatus:
        state = "merged" if pull.get("merged") or pull.get("merged_at") else str(pull.get("state", "open"))
        return PullRequestStatus(
            url=forge_link(pull["html_url"]),
            number=int(pull["number"]),
            forge=self.kind,
            repo=repo.path,
            head=str(pull["head"]["ref"]),
            base=str(pull["base"]["ref"]),
            state=state,
            draft=bool(pull.get("draft")),
            title=str(pull.get("title", "")),
            merge_method=method,
            merge_method_note=note,
            head_repo=head_repo,
        )

    async def set_body(self, credential: Credential, repo: RepoRef, number: int, body: str) -> None:
        async with self._calls(f"updating pull request #{number} of {repo.path}"):
            gh = self.client(credential.token)
            await gh.rest.pulls.async_update(repo.owner, repo.name, number, data={"body": body})

    async def pull_request(self, credential: Credential | None, repo: RepoRef, number: int) -> PullRequestStatus:
        token = credential.token if credential else None
        found = await self._get(token, f"/repos/{repo.path}/pulls/{number}", f"reading pull request #{number}")
        head = found.body.get("head", {}).get("repo") or {}
        head_repo = head.get("full_name") if head.get("full_name") != repo.path else None
        return self._status(repo, found.body, head_repo)

    async def branches(self, credential: Credential | None, repo: RepoRef, *, page: int, per_page: int) -> Page[Branch]:
        token = credential.token if credential else None
        found = await self._get(
            token,
            f"/repos/{repo.path}/branches",
            f"listing branches of {repo.path}",
            {"per_page": per_page, "page": page},
        )
        items = [Branch(str(b["name"]), str(b["commit"]["sha"]), bool(b.get("protected"))) for b in found.body]
        match = _NEXT.search(found.link or "")
        return Page(items, int(match[1]) if match else None)

    async def _contents(self, credential: Credential | None, repo: RepoRef, ref: str | None, path: str) -> Any:
        token = credential.token if credential else None
        params = {"ref": ref} if ref else None
        where = f"{repo.path}/{path}" if path else repo.path
        return (await self._get(token, f"/repos/{repo.path}/contents/{path}", f"reading {where}", params)).body

    async def tree(
        self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str
    ) -> list[TreeEntry]:
        found = await self._contents(credential, repo, ref, path)
        if isinstance(found, dict) and found.get("type") == "submodule":
            return [self._entry(found, {})]
        if not isinstance(found, list):
            raise InvalidInput(f"{path!r} in {repo.path} is a file, not a folder; ask for its blob")
        # A directory listing shows a submodule as a "file" with no download URL; .gitmodules says which.
        maybe = any(item.get("type") == "file" and not item.get("download_url") for item in found)
        modules = await self._gitmodules(credential, repo, ref) if maybe else {}
        return [self._entry(item, modules) for item in found]

    async def _gitmodules(self, credential: Credential | None, repo: RepoRef, ref: str | None) -> dict[str, str]:
        try:
            found = await self._contents(credential, repo, ref, ".gitmodules")
        except NotFound:
            return {}
        return parse_gitmodules(base64.b64decode(found.get("content") or "").decode("utf-8", "replace"))

    @staticmethod
    def _entry(item: dict[str, Any], modules: dict[str, str]) -> TreeEntry:
        kind = item.get("type", "file")
        path = str(item["path"])
        submodule = None
        if kind == "submodule" or (kind == "file" and (item.get("submodule_git_url") or path in modules)):
            kind = "submodule"
            url = str(item.get("submodule_git_url") or modules.get(path, ""))
            submodule = Submodule(url=url, commit=str(item["sha"]))
        return TreeEntry(
            name=str(item["name"]),
            path=path,
            type=kind,
            sha=str(item["sha"]),
            size=item.get("size") if kind == "file" else None,
            submodule=submodule,
        )

    async def blob(self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str) -> Blob:
        body = await self._contents(credential, repo, ref, path)
        if not isinstance(body, dict) or body.get("type") != "file":
            raise InvalidInput(f"{path!r} in {repo.path} is not a file; ask for its tree")
        content = base64.b64decode(body.get("content") or "")
        return Blob(
            path=str(body["path"]), sha=str(body["sha"]), size=int(body.get("size", len(content))), content=content
        )

    async def close(self) -> None:
        await self.transport.shutdown()
