"""Submodules of a session's repos: fetched before the agent runs, and published like repos of their own.

Which submodules exist, and where they live, is read from `.gitmodules` at the base commit, never
from what the agent left behind: an agent cannot point a push (or a token) at another repo by
editing `.gitmodules` or the repo's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vteam.resources.validation import resolve_relative_url
from vteam.runner.git import Credentials, Git, GitError, remote_access
from vteam.runner.redact import Redactor


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


async def fetch(path: Path, credentials: Credentials, redactor: Redactor) -> str | None:
    """Check out the repo's submodules (recursively); the reason when some could not be fetched."""
    if not (path / ".gitmodules").exists():
        return None
    try:
        async with remote_access(credentials, redactor) as (remote, _):
            await remote("-C", str(path), "submodule", "update", "--init", "--recursive", "--quiet")
    except GitError as exc:
        return str(exc)
    return None


async def at_base(git: Git, path: Path, base_sha: str, parent_url: str) -> list[Submodule]:
    """The submodules the base commit declares, with the commit it records for each."""
    try:
        listing = await git("config", "--blob", f"{base_sha}:.gitmodules", "--get-regexp", r"^submodule\..*", cwd=path)
    except GitError:
        return []
    fields: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, _, value = line.partition(" ")
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        fields.setdefault(name, {})[field] = value
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
