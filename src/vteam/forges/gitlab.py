"""GitLab through python-gitlab: push access, forks, merge requests, the repo browser.

python-gitlab is synchronous, so every call runs in a worker thread; it obeys GitLab's 429s
(Retry-After, RateLimit-Reset) by itself. All clients share one `requests` session. python-gitlab and
requests cost about 5 MiB once imported, so the first call that needs them imports them (`client` builds
every client), not the start.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

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
from vteam.resources import PullRequestStatus

if TYPE_CHECKING:
    import gitlab
    import requests

T = TypeVar("T")
DEVELOPER = 30
STATES = {"opened": "open", "closed": "closed", "merged": "merged", "locked": "closed"}
TREE_TYPES: dict[str, Any] = {"blob": "file", "tree": "dir", "commit": "submodule"}


def failure(exc: Exception, what: str) -> Exception:
    import requests
    from gitlab.exceptions import GitlabAuthenticationError, GitlabError

    if isinstance(exc, GitlabAuthenticationError):
        return ForgeUnavailable(f"GitLab rejected vTeam's credentials while {what}")
    if isinstance(exc, GitlabError):
        status = exc.response_code or 0
        message = str(exc.error_message or "")
        if status == 403:
            return Forbidden(f"GitLab refused {what}: {message}")
        if status == 404:
            return NotFound(f"GitLab found nothing while {what} (the project may not exist or be private)")
        if status in (400, 422):
            return InvalidInput(f"GitLab refused {what}: {message}")
        if status == 409:
            return Conflict(f"GitLab refused {what}: {message}")
        if status == 429:
            return RateLimited(f"GitLab rate limit reached while {what}", retry_after=60)
        return ForgeUnavailable(f"GitLab failed while {what}: HTTP {status} {message}")
    if isinstance(exc, requests.RequestException):
        return ForgeUnavailable(f"GitLab could not be reached while {what}: {type(exc).__name__}")
    raise exc


class GitLabForge:
    kind: ForgeKind = "gitlab"

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        fork_wait: float,
        cache: EtagCache,
        interactive_timeout: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._interactive_timeout = min(timeout, interactive_timeout or timeout)
        self._fork_wait = fork_wait
        self._cache = cache
        self._session: requests.Session | None = None

    def client(self, token: str | None, *, interactive: bool = False) -> gitlab.Gitlab:
        """A client; an interactive one (a person is waiting) has a short timeout and never retries."""
        import gitlab
        import requests

        if self._session is None:
            self._session = requests.Session()
        return gitlab.Gitlab(
            self.url,
            private_token=token,
            timeout=self._interactive_timeout if interactive else self._timeout,
            retry_transient_errors=not interactive,
            session=self._session,
            user_agent="vteam",
        )

    async def _run(self, what: str, call: Callable[[], T]) -> T:
        import requests
        from gitlab.exceptions import GitlabError

        try:
            return await asyncio.to_thread(call)
        except (GitlabError, requests.RequestException) as exc:
            raise failure(exc, what) from None

    async def login(self, credential: Credential) -> str:
        gl = self.client(credential.token, interactive=True)

        def whoami() -> str:
            gl.auth()
            assert gl.user is not None
            return str(gl.user.username)

        return await self._run("reading the token's user", whoami)

    async def push_target(
        self, repo: RepoRef, credential: Credential | None, *, branch: str, base: str | None
    ) -> PushTarget:
        if credential is None:
            return PushTarget(repo.url, None, base=base)
        from gitlab.exceptions import GitlabError

        gl = self.client(credential.token)

        def plan() -> PushTarget:
            project = gl.projects.get(repo.path)
            target = base or str(project.default_branch)
            try:
                project.branches.get(target)
            except GitlabError as exc:
                if exc.response_code == 404:
                    raise InvalidInput(
                        f"base branch {target!r} does not exist in {repo.path}; "
                        "set the repo's input branch to one that does"
                    ) from None
                raise
            gl.auth()
            user = gl.user
            assert user is not None
            try:
                level = int(project.members_all.get(user.id).access_level)
            except GitlabError as exc:
                if exc.response_code != 404:
                    raise
                level = 0
            if level >= DEVELOPER or project.namespace.get("path") == user.username:
                try:
                    existing = project.branches.get(branch)
                except GitlabError as exc:
                    if exc.response_code != 404:
                        raise
                else:
                    if existing.protected:
                        raise Conflict(
                            f"branch {branch!r} of {repo.path} is protected, so vTeam cannot push to it; "
                            "choose another output.targetBranch"
                        )
                return PushTarget(repo.url, credential, base=target)
            fork = self._fork(gl, project, str(user.username))
            head = str(fork.path_with_namespace)
            return PushTarget(str(fork.http_url_to_repo), credential, head_repo=head, base=target)

        return await self._run(f"planning the push to {repo.path}", plan)

    def _fork(self, gl: gitlab.Gitlab, project: Any, username: str) -> Any:
        """The user's fork of `project`, found by GitLab's forks API (renamed or in a group), else a new one."""
        from gitlab.exceptions import GitlabError

        path = self._existing_fork(project, username)
        if path is None:
            try:
                created = project.forks.create({})
                path = str(created.path_with_namespace)
            except GitlabError as exc:
                if exc.response_code != 409:
                    raise
                path = self._existing_fork(project, username)
                if path is None:
                    raise Conflict(
                        f"GitLab could not fork {project.path_with_namespace} for {username}: a project of theirs "
                        "already has its path and is not a fork of it; rename that project or fork it yourself"
                    ) from None
        deadline = time.monotonic() + self._fork_wait
        while True:
            fork = gl.projects.get(path)
            if getattr(fork, "import_status", "finished") in ("finished", "none"):
                return fork
            if time.monotonic() > deadline:
                raise ForgeUnavailable(f"GitLab did not finish forking {project.path_with_namespace} to {path}")
            time.sleep(0.3)

    @staticmethod
    def _existing_fork(project: Any, username: str) -> str | None:
        """A fork of `project` the user can push to: theirs by preference, else one in a group of theirs."""
        forks = project.forks.list(min_access_level=DEVELOPER, order_by="id", sort="asc", get_all=True)
        mine = [f for f in forks if (getattr(f, "namespace", None) or {}).get("path") == username]
        found = (mine or list(forks))[:1]
        return str(found[0].path_with_namespace) if found else None

    async def open_pull_request(self, credential: Credential, draft: PullRequestDraft) -> PullRequestStatus:
        gl = self.client(credential.token)
        repo = draft.repo

        def open_() -> PullRequestStatus:
            target = gl.projects.get(repo.path)
            source = gl.projects.get(draft.head_repo) if draft.head_repo else target
            merge_method = str(getattr(target, "merge_method", "merge"))
            allowed = {
                "merge": merge_method == "merge",
                "rebase": merge_method in ("rebase_merge", "ff"),
                "squash": getattr(target, "squash_option", "default_off") != "never",
            }
            method, note = choose_merge_method(draft.merge_method, allowed, repo.path)
            title = f"Draft: {draft.title}" if draft.draft else draft.title
            existing = [
                mr
                for mr in target.mergerequests.list(
                    source_branch=draft.branch, target_branch=draft.base, state="opened", get_all=True
                )
                if int(mr.source_project_id) == int(source.id)
            ]
            if existing:
                mr = target.mergerequests.get(existing[0].iid)
                mr.title = title
                mr.description = draft.body
                mr.save()
                mr = target.mergerequests.get(existing[0].iid)
            else:
                data: dict[str, Any] = {
                    "source_branch": draft.branch,
                    "target_branch": draft.base,
                    "title": title,
                    "description": draft.body,
                    "squash": method == "squash",
                }
                if draft.head_repo:
                    data["target_project_id"] = target.id
                    data["allow_collaboration"] = True
                mr = source.mergerequests.create(data)
            return self._status(repo, mr.attributes, draft.head_repo, method, note)

        return await self._run(f"opening a merge request on {repo.path}", open_)

    def _status(
        self,
        repo: RepoRef,
        mr: dict[str, Any],
        head_repo: str | None,
        method: str | None = None,
        note: str | None = None,
    ) -> PullRequestStatus:
        return PullRequestStatus(
            url=forge_link(mr["web_url"]),
            number=int(mr["iid"]),
            forge=self.kind,
            repo=repo.path,
            head=str(mr["source_branch"]),
            base=str(mr["target_branch"]),
            state=STATES.get(str(mr.get("state")), str(mr.get("state"))),
            draft=bool(mr.get("draft") or mr.get("work_in_progress")),
            title=str(mr.get("title", "")),
            merge_method=method,
            merge_method_note=note,
            head_repo=head_repo,
        )

    async def set_body(self, credential: Credential, repo: RepoRef, number: int, body: str) -> None:
        gl = self.client(credential.token)

        def update() -> None:
            mr = gl.projects.get(repo.path, lazy=True).mergerequests.get(number)
            mr.description = body
            mr.save()

        await self._run(f"updating merge request !{number} of {repo.path}", update)

    async def _get(
        self, credential: Credential | None, path: str, what: str, params: dict[str, Any] | None = None
    ) -> tuple[Cached, requests.Response | None]:
        import requests
        from gitlab.exceptions import GitlabError

        token = credential.token if credential else None
        gl = self.client(token, interactive=True)
        url = path + ("?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items())) if params else "")
        cached = self._cache.get(token, url)
        headers = {"If-None-Match": cached.etag} if cached else {}

        def get() -> requests.Response | None:
            try:
                response = gl.http_get(path, query_data=params or {}, raw=True, extra_headers=headers)
            except GitlabError as exc:
                if exc.response_code == 304 and cached is not None:
                    return None
                raise
            assert isinstance(response, requests.Response)
            return response

        response = await self._run(what, get)
        if response is None:
            assert cached is not None
            self._cache.hits += 1
            return cached, None
        body = response.json() if "json" in response.headers.get("content-type", "") else response.content
        fresh = Cached(response.headers.get("etag", ""), body, response.headers.get("x-next-page") or None)
        if fresh.etag:
            self._cache.put(token, url, fresh)
        return fresh, response

    @staticmethod
    def _project(repo: RepoRef) -> str:
        return "/projects/" + quote(repo.path, safe="")

    async def pull_request(self, credential: Credential | None, repo: RepoRef, number: int) -> PullRequestStatus:
        found, _ = await self._get(
            credential, f"{self._project(repo)}/merge_requests/{number}", f"reading merge request !{number}"
        )
        body = found.body
        head_repo = None
        if body.get("source_project_id") != body.get("target_project_id"):
            head_repo = str(body.get("source_project_id"))
        return self._status(repo, body, head_repo)

    async def branches(self, credential: Credential | None, repo: RepoRef, *, page: int, per_page: int) -> Page[Branch]:
        found, _ = await self._get(
            credential,
            f"{self._project(repo)}/repository/branches",
            f"listing branches of {repo.path}",
            {"page": page, "per_page": per_page},
        )
        items = [Branch(str(b["name"]), str(b["commit"]["id"]), bool(b.get("protected"))) for b in found.body]
        return Page(items, int(found.link) if found.link else None)

    async def _ref(self, credential: Credential | None, repo: RepoRef, ref: str | None) -> str:
        if ref:
            return ref
        found, _ = await self._get(credential, self._project(repo), f"reading {repo.path}")
        return str(found.body.get("default_branch") or "main")

    async def tree(
        self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str
    ) -> list[TreeEntry]:
        ref = await self._ref(credential, repo, ref)
        params: dict[str, Any] = {"ref": ref, "per_page": 100}
        if path:
            params["path"] = path
        found, _ = await self._get(
            credential, f"{self._project(repo)}/repository/tree", f"reading {repo.path}/{path}", params
        )
        entries = found.body
        if not entries and path:
            raise NotFound(f"{path!r} is not a folder of {repo.path} at {ref}")
        submodules = (
            await self._gitmodules(credential, repo, ref) if any(e["type"] == "commit" for e in entries) else {}
        )
        out = []
        for e in entries:
            kind = TREE_TYPES.get(str(e["type"]), "file")
            if kind == "file" and str(e.get("mode")) == "120000":
                kind = "symlink"
            sub = (
                Submodule(url=submodules.get(str(e["path"]), ""), commit=str(e["id"])) if kind == "submodule" else None
            )
            out.append(TreeEntry(name=str(e["name"]), path=str(e["path"]), type=kind, sha=str(e["id"]), submodule=sub))
        return out

    async def _gitmodules(self, credential: Credential | None, repo: RepoRef, ref: str) -> dict[str, str]:
        try:
            found, _ = await self._get(
                credential,
                f"{self._project(repo)}/repository/files/.gitmodules/raw",
                f"reading .gitmodules of {repo.path}",
                {"ref": ref},
            )
        except NotFound:
            return {}
        text = found.body.decode() if isinstance(found.body, bytes) else str(found.body)
        return parse_gitmodules(text)

    async def blob(self, credential: Credential | None, repo: RepoRef, *, ref: str | None, path: str) -> Blob:
        ref = await self._ref(credential, repo, ref)
        found, _ = await self._get(
            credential,
            f"{self._project(repo)}/repository/files/{quote(path, safe='')}",
            f"reading {repo.path}/{path}",
            {"ref": ref},
        )
        body = found.body
        content = base64.b64decode(body.get("content") or "")
        return Blob(path=str(body["file_path"]), sha=str(body["blob_id"]), size=int(body["size"]), content=content)

    async def close(self) -> None:
        if self._session is not None:
            await asyncio.to_thread(self._session.close)
