"""The session's repositories on disk: clone, branch, then commit, push and measure what changed."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vteam.agents import Emit
from vteam.agents.sandbox import Sandbox, widened
from vteam.errors import RepositoryRefused
from vteam.events.agui import BRANCH, CLONE, COMMIT, DIFF, PUSH, custom
from vteam.policy.repos import RepoPolicy, Vetted, display, recheck, vet
from vteam.resources import AgenticSession, DiffStat, FileStat, RepoStatus, SessionRepo
from vteam.resources.validation import same_repository
from vteam.runner import submodules
from vteam.runner.git import Credentials, Git, GitError, remote_access
from vteam.runner.redact import Redactor

MAX_DIFF_BYTES = 512 * 1024
"""The most of a diff the DIFF event carries; the rest is cut at a line and marked truncated."""

PushPlanner = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
"""Asks the server where each repo's branch goes and with which token (see `RunnerApi.push_targets`)."""


class WorkspaceError(Exception):
    """A repository could not be prepared or published; the message says which and why."""


@dataclass
class Repo:
    index: int
    spec: SessionRepo
    path: Path
    input_branch: str
    base_sha: str
    work_branch: str

    @property
    def base(self) -> str:
        """The branch a pull request targets: the one asked for, else the branch the work started from."""
        out = self.spec.output
        return (out.pull_request_base if out else None) or self.input_branch


def _dirname(url: str, taken: set[str]) -> str:
    base = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]) or "repo"
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip(".") or "repo"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


async def vetted(url: str, policy: RepoPolicy, field: str) -> Vetted:
    """The repository policy, applied again right before git runs; a refusal fails the session."""
    try:
        return await vet(url, policy, field=field)
    except RepositoryRefused as exc:
        raise WorkspaceError(f"refused before git ran: {exc.detail}") from None


async def prepare(
    session: AgenticSession,
    root: Path,
    credentials: Credentials,
    redactor: Redactor,
    emit: Emit,
    *,
    policy: RepoPolicy,
) -> list[Repo]:
    """Clone every repo, check out its input branch and create the work branch (before the agent runs).

    Every URL (outputs and submodules too) passes the repository policy first, and git is pinned to
    the address that passed; a failed clone says what failed, never what the remote answered."""
    repos: list[Repo] = []
    taken: set[str] = set()
    (root / "repos").mkdir(parents=True, exist_ok=True)
    git = Git.plain(redactor)
    for index, spec in enumerate(session.spec.repos):
        source = await vetted(spec.input.url, policy, f"repos[{index}].input.url")
        if spec.output is not None:
            await vetted(spec.output.url, policy, f"repos[{index}].output.url")
        path = root / "repos" / _dirname(spec.input.url, taken)
        args = ["clone", "--quiet"]
        if spec.input.branch:
            args += ["--branch", spec.input.branch]
        try:
            async with remote_access(credentials, redactor, policy=policy, target=source) as (remote, _):
                await remote(*args, "--", source.url, str(path))
        except GitError as exc:
            raise WorkspaceError(f"cloning repos[{index}] from {display(spec.input.url)} failed: {exc}") from exc
        try:
            await recheck(source, policy, field=f"repos[{index}].input.url")
        except RepositoryRefused as exc:
            raise WorkspaceError(f"refused after cloning: {exc.detail}") from None
        try:
            input_branch = (await git("rev-parse", "--abbrev-ref", "HEAD", cwd=path)).strip()
            base_sha = (await git("rev-parse", "HEAD", cwd=path)).strip()
        except GitError as exc:
            raise WorkspaceError(f"repos[{index}] {display(spec.input.url)}: {exc}") from exc
        work = spec.work_branch(session.name)
        try:
            problem = await submodules.fetch(
                path, spec.input.url, credentials, redactor, policy=policy, where=f"repos[{index}]"
            )
        except RepositoryRefused as exc:
            raise WorkspaceError(f"refused before git ran: {exc.detail}") from None
        notes = {"submodules": f"not all submodules could be fetched: {problem}"} if problem else {}
        await emit(custom(CLONE, repo=index, url=spec.input.url, branch=input_branch, commit=base_sha, **notes))
        out = spec.output
        if out and not out.allow_default_branch and work == input_branch and same_repository(out.url, spec.input.url):
            raise WorkspaceError(
                f"repos[{index}]: work branch {work!r} is the input's default branch; "
                "set output.allowDefaultBranch to push there on purpose"
            )
        if work != input_branch:
            await git("checkout", "--quiet", "-b", work, cwd=path)
        await emit(custom(BRANCH, repo=index, branch=work, base=input_branch))
        repos.append(Repo(index, spec, path, input_branch, base_sha, work))
    return repos


@dataclass
class Pending:
    """A branch ready to push: a repo's, or a changed submodule's inside it."""

    status: RepoStatus
    path: Path
    branch: str
    head: str
    url: str
    base: str
    index: int
    submodule: str | None = None

    @property
    def key(self) -> tuple[int, str | None]:
        return self.index, self.submodule


async def publish(
    session: AgenticSession,
    repos: list[Repo],
    credentials: Credentials,
    redactor: Redactor,
    emit: Emit,
    *,
    author: tuple[str, str],
    push: bool,
    planner: PushPlanner | None = None,
    policy: RepoPolicy,
    confine: Sandbox | None = None,
) -> list[RepoStatus]:
    """Commit each repo that has an output and changes, push it, and report every repo's result.

    Runs after the agent's processes are gone. The push goes from a fresh bare mirror in a private
    folder, so nothing the agent left in its repositories (config, hooks) sees the credentials.
    Where a planner is given, the server says where each branch goes (the repo or a fork) and
    hands over the token for it. A submodule the agent changed is committed on the work branch in
    the submodule and pushed first, so the parent's commit points at a commit that exists; its
    status follows the repos' (`submoduleOf`, `path`). With `confine`, git runs sandboxed in the repositories.
    """
    git = Git.plain(redactor, confine=confine)
    results: list[RepoStatus] = []
    extra: list[RepoStatus] = []
    pending: list[Pending] = []
    for repo in repos:
        out = repo.spec.output
        status = RepoStatus(url=out.url if out else repo.spec.input.url, branch=repo.work_branch, base_branch=repo.base)
        try:
            if out is not None and out.auto_commit and push:
                for sub in await submodules.at_base(git, repo.path, repo.base_sha, repo.spec.input.url):
                    if await submodules.changed(git, repo.path, sub):
                        found = await _commit_submodule(session, repo, sub, git, emit, author)
                        extra.append(found.status)
                        pending.append(found)
                await _commit(session, repo.path, repo.index, repo.work_branch, git, emit, author)
            else:
                await git("add", "-A", cwd=repo.path)
            status.diffstat = await _diffstat(repo.path, repo.base_sha, git, staged=out is None or not push)
            head = (await git("rev-parse", "HEAD", cwd=repo.path)).strip()
            status.commit_sha = head
            if out is not None and push and head != repo.base_sha:
                await _emit_diff(git, repo.path, repo.base_sha, head, repo.index, emit)
                pending.append(Pending(status, repo.path, repo.work_branch, head, out.url, repo.base, repo.index))
        except GitError as exc:
            status.error = str(exc)
        results.append(status)
    targets = await _plan(pending, planner)
    failed: set[int] = set()
    # Submodules first: a parent is pushed only once the commits it points at are.
    for item in sorted(pending, key=lambda p: p.submodule is None):
        if item.submodule is None and item.index in failed:
            item.status.error = "not pushed: a submodule it points at could not be pushed"
            continue
        if not await _push_pending(item, targets.get(item.key, {}), credentials, redactor, emit, policy, confine):
            failed.add(item.index)
    return results + extra


async def _commit_submodule(
    session: AgenticSession,
    repo: Repo,
    sub: submodules.Submodule,
    git: Git,
    emit: Emit,
    author: tuple[str, str],
) -> Pending:
    where = repo.path / sub.path
    status = RepoStatus(
        url=sub.url, branch=repo.work_branch, base_branch=sub.branch, submodule_of=repo.index, path=sub.path
    )
    current = (await git("rev-parse", "--abbrev-ref", "HEAD", cwd=where)).strip()
    if current != repo.work_branch:
        await git("checkout", "--quiet", "-B", repo.work_branch, cwd=where)
    await _commit(session, where, repo.index, repo.work_branch, git, emit, author, submodule=sub.path)
    status.diffstat = await _diffstat(where, sub.commit, git, staged=False)
    head = (await git("rev-parse", "HEAD", cwd=where)).strip()
    status.commit_sha = head
    await _emit_diff(git, where, sub.commit, head, repo.index, emit, submodule=sub.path)
    return Pending(status, where, repo.work_branch, head, sub.url, sub.branch or "", repo.index, sub.path)


async def _push_pending(
    item: Pending,
    target: dict[str, Any],
    credentials: Credentials,
    redactor: Redactor,
    emit: Emit,
    policy: RepoPolicy,
    confine: Sandbox | None,
) -> bool:
    status = item.status
    if target.get("error"):
        status.error = str(target["error"])
        return False
    url = str(target.get("url") or item.url)
    status.base_branch = str(target.get("base") or status.base_branch or "") or None
    token = target.get("token")
    pushing = credentials
    if token:
        host = urlsplit(url).hostname or ""
        username = str(target.get("username") or "x-access-token")
        pushing = Credentials(token=str(token), username=username, token_hosts=(host,) if host else ())
    where_field = f"repos[{item.index}]" + (f" submodule {item.submodule!r}" if item.submodule else "") + " output"
    try:
        target_repo = await vet(url, policy, field=where_field)
    except RepositoryRefused as exc:
        status.error = f"not pushed: refused before git ran: {exc.detail}"
        return False
    # A work branch is vTeam's own: a later session with the same targetBranch replaces it (and so updates
    # its open pull request); a push to the base branch itself only ever fast-forwards.
    replace = item.branch != (status.base_branch or item.base)
    try:
        await _push(
            item.path, item.branch, item.head, target_repo, pushing, redactor, policy, where_field, replace, confine
        )
    except GitError as exc:
        status.error = f"pushing {item.branch!r} to {display(url)} failed: {exc}"
        return False
    except RepositoryRefused as exc:
        status.error = f"not pushed: refused before git ran: {exc.detail}"
        return False
    status.pushed = True
    if url != item.url:
        status.pushed_url = url
    where = {"submodule": item.submodule} if item.submodule else {}
    await emit(custom(PUSH, repo=item.index, url=url, branch=item.branch, commit=item.head, **where))
    return True


async def _plan(pending: list[Pending], planner: PushPlanner | None) -> dict[tuple[int, str | None], dict[str, Any]]:
    if planner is None or not pending:
        return {}
    wanted: list[dict[str, Any]] = []
    for item in pending:
        entry: dict[str, Any] = {"index": item.index, "branch": item.branch, "base": item.base or None}
        if item.submodule is not None:
            entry |= {"submodule": item.submodule, "url": item.url}
        wanted.append(entry)
    return {(int(t["index"]), t.get("submodule")): t for t in await planner(wanted)}


async def _push(
    path: Path,
    branch: str,
    head: str,
    target: Vetted,
    credentials: Credentials,
    redactor: Redactor,
    policy: RepoPolicy,
    field: str,
    replace: bool = False,
    confine: Sandbox | None = None,
) -> None:
    """Push `head` to `branch`; with `replace`, over whatever the branch held, leased on what it held just before.

    The commits go into a fresh bare mirror first. With `confine`, that fetch runs sandboxed: the agent's
    repository may name other object stores on the host (`objects/info/alternates`), which must stay out
    of reach. Only the push from the mirror, which the runner made, runs with credentials and unconfined."""
    ref = f"refs/heads/{branch}"
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="vteam-mirror-"))
    try:
        mirror = str(folder / "mirror.git")
        local = Git.plain(redactor, confine=widened(confine, folder))
        await local("init", "--quiet", "--bare", mirror, cwd=folder)
        await local("--git-dir", mirror, "fetch", "--quiet", "--no-tags", str(path), f"+HEAD:{ref}", cwd=folder)
        git = Git.plain(redactor)
        fetched = (await git("--git-dir", mirror, "rev-parse", ref)).strip()
        if fetched != head:
            raise GitError(f"the repository changed while it was being pushed ({fetched[:12]} is not {head[:12]})")
        await recheck(target, policy, field=field)
        async with remote_access(credentials, redactor, policy=policy, target=target) as (remote, _):
            push = ["--git-dir", mirror, "push", "--porcelain"]
            if replace:
                held = (await remote("--git-dir", mirror, "ls-remote", "--heads", "--", target.url, ref)).split()
                push.append(f"--force-with-lease={ref}:{held[0] if held else ''}")
            await remote(*push, "--", target.url, f"{ref}:{ref}")
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _commit(
    session: AgenticSession,
    path: Path,
    index: int,
    branch: str,
    git: Git,
    emit: Emit,
    author: tuple[str, str],
    *,
    submodule: str | None = None,
) -> None:
    await git("add", "-A", cwd=path)
    if not (await git("status", "--porcelain", cwd=path)).strip():
        return
    name, email = author
    first = next((line.strip() for line in session.spec.prompt.splitlines() if line.strip()), session.name)
    summary = (session.spec.display_name or first)[:60]
    message = (
        f"vteam: {summary}\n\n"
        f"Session: {session.metadata.namespace}/{session.name}\n"
        f"Framework: {session.spec.framework}\n"
    )
    await git(
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        cwd=path,
    )
    sha = (await git("rev-parse", "HEAD", cwd=path)).strip()
    where = {"submodule": submodule} if submodule else {}
    await emit(custom(COMMIT, repo=index, branch=branch, commit=sha, message=message.splitlines()[0], **where))


async def _emit_diff(
    git: Git, path: Path, base: str, head: str, index: int, emit: Emit, *, submodule: str | None = None
) -> None:
    """Publish the change as a unified diff, so it can be reviewed from the session's page without git.

    External diff drivers and textconv filters are off: they would run programs the agent configured.
    A diff that cannot be made is left out; the change is still pushed, and the diffstat tells its size.
    """
    try:
        text = await git("diff", "--no-color", "--no-ext-diff", "--no-textconv", f"{base}..{head}", cwd=path)
    except GitError:
        return
    raw = text.encode()
    truncated = len(raw) > MAX_DIFF_BYTES
    if truncated:
        cut = raw[:MAX_DIFF_BYTES]
        text = cut[: cut.rfind(b"\n") + 1 or MAX_DIFF_BYTES].decode("utf-8", "ignore")
    where = {"path": submodule} if submodule else {}
    await emit(custom(DIFF, repo=index, diff=text, truncated=truncated, **where))


async def _diffstat(path: Path, base_sha: str, git: Git, *, staged: bool) -> DiffStat:
    args = ["diff", "--numstat", "--no-renames"]
    args += ["--cached", base_sha] if staged else [f"{base_sha}..HEAD"]
    files = []
    for line in (await git(*args, cwd=path)).splitlines():
        added, deleted, name = line.split("\t", 2)
        files.append(
            FileStat(
                path=name, insertions=int(added) if added != "-" else 0, deletions=int(deleted) if deleted != "-" else 0
            )
        )
    return DiffStat(
        files_changed=len(files),
        insertions=sum(f.insertions for f in files),
        deletions=sum(f.deletions for f in files),
        files=files,
    )
