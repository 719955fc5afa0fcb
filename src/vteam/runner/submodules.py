"""Submodules of a session's repos: fetched before the agent runs, and published like repos of their own.

Which submodules exist, and where they live, is read from `.gitmodules` at the base commit, never
from what the agent left behind: an agent cannot point a push (or a token) at another repo by
editing `.gitmodules` or the repo's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vteam.policy.repos import RepoPolicy, vet
from vteam.resources.validation import resolve_relative_url
from vteam.runner.git import Credentials, Git, GitError, remote_access
from vteam.runner.redact import Redactor

MAX_DEPTH = 8
"""How deep submodules of submodules are fetched."""


@dataclass(frozen=True)
class Submodule:
    path: str
    """Its path inside the parent repo."""
    url: str
    """Where it lives, relative URLs resolved against the parent repo's URL."""
    branch: str | None
    """The branch `.gitmodules` names for it, if any: its pull request's base."""
    commit: str
    """The commit the parent's base commit points at."""


async def fetch(
    path: Path,
    parent_url: str,
    credentials: Credentials,
    redactor: Redactor,
    *,
    policy: RepoPolicy,
    where: str,
    depth: int = 0,
) -> str | None:
    """Check out the repo's submodules (recursively); the reason when some could not be fetched.

    Each submodule's URL passes the repository policy before git fetches it (RepositoryRefused
    otherwise), and git is pinned to the checked address: a `.gitmodules` cannot aim the runner
    at a repository the session itself could not name."""
    if not (path / ".gitmodules").exists():
        return None
    git = Git.plain(redactor)
    problems: list[str] = []
    for name, entry in (await _declared(git, path)).items():
        sub_path, raw_url = entry.get("path"), entry.get("url")
        if not sub_path or not raw_url or not await _is_gitlink(git, path, sub_path):
            continue
        url = resolve_relative_url(parent_url, raw_url)
        target = await vet(url, policy, field=f"{where} submodule {sub_path!r}")
        try:
            await git("submodule", "init", "--", sub_path, cwd=path)
            await git("config", f"submodule.{name}.url", target.url, cwd=path)
            async with remote_access(credentials, redactor, policy=policy, target=target) as (remote, _):
                await remote("-C", str(path), "submodule", "update", "--quiet", "--", sub_path)
        except GitError as exc:
            problems.append(f"{sub_path}: {exc}")
            continue
        if depth < MAX_DEPTH:
            deeper = await fetch(
                path / sub_path,
                url,
                credentials,
                redactor,
                policy=policy,
                where=f"{where} submodule {sub_path!r}",
                depth=depth + 1,
            )
            if deeper:
                problems.append(deeper)
    return "; ".join(problems) or None


async def _declared(git: Git, path: Path) -> dict[str, dict[str, str]]:
    """`.gitmodules` as it is checked out: each submodule's name with its fields."""
    try:
        listing = await git("config", "--file", ".gitmodules", "--get-regexp", r"^submodule\..*", cwd=path)
    except GitError:
        return {}
    return _fields(listing)


def _fields(listing: str) -> dict[str, dict[str, str]]:
    fields: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, _, value = line.partition(" ")
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        fields.setdefault(name, {})[field] = value
    return fields


async def _is_gitlink(git: Git, path: Path, sub_path: str) -> bool:
    try:
        staged = (await git("ls-files", "--stage", "--", sub_path, cwd=path)).split()
    except GitError:
        return False
    return bool(staged) and staged[0] == "160000"


async def at_base(git: Git, path: Path, base_sha: str, parent_url: str) -> list[Submodule]:
    """The submodules the base commit declares, with the commit it records for each."""
    try:
        listing = await git("config", "--blob", f"{base_sha}:.gitmodules", "--get-regexp", r"^submodule\..*", cwd=path)
    except GitError:
        return []
    fields = _fields(listing)
    found = []
    for entry in fields.values():
        if "path" not in entry or "url" not in entry:
            continue
        try:
            tree = (await git("ls-tree", base_sha, "--", entry["path"], cwd=path)).split()
        except GitError:
            continue
        if len(tree) < 3 or tree[1] != "commit":
            continue
        found.append(
            Submodule(
                path=entry["path"],
                url=resolve_relative_url(parent_url, entry["url"]),
                branch=entry.get("branch") if entry.get("branch") not in (None, ".") else None,
                commit=tree[2],
            )
        )
    return found


async def changed(git: Git, parent: Path, submodule: Submodule) -> bool:
    """Whether the agent changed the submodule: uncommitted edits, or a commit other than the recorded one."""
    where = parent / submodule.path
    if not (where / ".git").exists():
        return False
    if (await git("status", "--porcelain", cwd=where)).strip():
        return True
    return (await git("rev-parse", "HEAD", cwd=where)).strip() != submodule.commit
