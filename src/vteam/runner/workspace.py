"""The session's repositories on disk: clone, branch, then commit, push and measure what changed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vteam.agents import Emit
from vteam.events.agui import BRANCH, CLONE, COMMIT, PUSH, custom
from vteam.resources import AgenticSession, DiffStat, FileStat, RepoStatus, SessionRepo
from vteam.resources.validation import same_repository
from vteam.runner.git import Credentials, Git, GitError, remote_access
from vteam.runner.redact import Redactor


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


def _dirname(url: str, taken: set[str]) -> str:
    base = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]) or "repo"
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip(".") or "repo"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


async def prepare(
    session: AgenticSession, root: Path, credentials: Credentials, redactor: Redactor, emit: Emit
) -> list[Repo]:
    """Clone every repo, check out its input branch and create the work branch (before the agent runs)."""
    repos: list[Repo] = []
    taken: set[str] = set()
    (root / "repos").mkdir(parents=True, exist_ok=True)
    git = Git.plain(redactor)
    for index, spec in enumerate(session.spec.repos):
        path = root / "repos" / _dirname(spec.input.url, taken)
        args = ["clone", "--quiet"]
        if spec.input.branch:
            args += ["--branch", spec.input.branch]
        try:
            async with remote_access(credentials, redactor) as (remote, _):
                await remote(*args, "--", spec.input.url, str(path))
            input_branch = (await git("rev-parse", "--abbrev-ref", "HEAD", cwd=path)).strip()
            base_sha = (await git("rev-parse", "HEAD", cwd=path)).strip()
        except GitError as exc:
            raise WorkspaceError(f"repos[{index}] {spec.input.url}: {exc}") from exc
        work = spec.work_branch(session.name)
        await emit(custom(CLONE, repo=index, url=spec.input.url, branch=input_branch, commit=base_sha))
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


async def publish(
    session: AgenticSession,
    repos: list[Repo],
    credentials: Credentials,
    redactor: Redactor,
    emit: Emit,
    *,
    author: tuple[str, str],
    push: bool,
) -> list[RepoStatus]:
    """Commit each repo that has an output and changes, push it, and report every repo's result.

    Runs after the agent's processes are gone. The push goes from a fresh bare mirror in a private
    folder, so nothing the agent left in its repositories (config, hooks) sees the credentials.
    """
    git = Git.plain(redactor)
    results: list[RepoStatus] = []
    for repo in repos:
        out = repo.spec.output
        status = RepoStatus(url=out.url if out else repo.spec.input.url, branch=repo.work_branch)
        try:
            if out is not None and out.auto_commit and push:
                await _commit(session, repo, git, emit, author)
            else:
                await git("add", "-A", cwd=repo.path)
            status.diffstat = await _diffstat(repo, git, staged=out is None or not push)
            head = (await git("rev-parse", "HEAD", cwd=repo.path)).strip()
            status.commit_sha = head
            if out is not None and push and head != repo.base_sha:
                await _push(repo, head, out.url, git, credentials, redactor)
                status.pushed = True
                await emit(custom(PUSH, repo=repo.index, url=out.url, branch=repo.work_branch, commit=head))
        except GitError as exc:
            status.error = str(exc)
        results.append(status)
    return results


async def _push(repo: Repo, head: str, url: str, git: Git, credentials: Credentials, redactor: Redactor) -> None:
    ref = f"refs/heads/{repo.work_branch}"
    async with remote_access(credentials, redactor) as (remote, private):
        mirror = str(private / "mirror.git")
        await git("init", "--quiet", "--bare", mirror)
        await git("--git-dir", mirror, "fetch", "--quiet", "--no-tags", str(repo.path), f"+HEAD:{ref}")
        fetched = (await git("--git-dir", mirror, "rev-parse", ref)).strip()
        if fetched != head:
            raise GitError(f"the repository changed while it was being pushed ({fetched[:12]} is not {head[:12]})")
        await remote("--git-dir", mirror, "push", "--porcelain", "--", url, f"{ref}:{ref}")


async def _commit(session: AgenticSession, repo: Repo, git: Git, emit: Emit, author: tuple[str, str]) -> None:
    await git("add", "-A", cwd=repo.path)
    if not (await git("status", "--porcelain", cwd=repo.path)).strip():
        return
    name, email = author
    summary = (session.spec.display_name or session.spec.prompt.strip().splitlines()[0])[:60]
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
        cwd=repo.path,
    )
    sha = (await git("rev-parse", "HEAD", cwd=repo.path)).strip()
    await emit(custom(COMMIT, repo=repo.index, branch=repo.work_branch, commit=sha, message=message.splitlines()[0]))


async def _diffstat(repo: Repo, git: Git, *, staged: bool) -> DiffStat:
    args = ["diff", "--numstat", "--no-renames"]
    args += ["--cached", repo.base_sha] if staged else [f"{repo.base_sha}..HEAD"]
    files = []
    for line in (await git(*args, cwd=repo.path)).splitlines():
        added, deleted, path = line.split("\t", 2)
        files.append(
            FileStat(
                path=path, insertions=int(added) if added != "-" else 0, deletions=int(deleted) if deleted != "-" else 0
            )
        )
    return DiffStat(
        files_changed=len(files),
        insertions=sum(f.insertions for f in files),
        deletions=sum(f.deletions for f in files),
        files=files,
    )
