"""Submodules of a session's repos: fetched before the agent runs, and published like repos of their own.

Which submodules exist, and where they live, is read from `.gitmodules` at the base commit, never
from what the agent left behind: an agent cannot point a push (or a token) at another repo by
editing `.gitmodules` or the repo's config.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from vteam.errors import RepositoryRefused
from vteam.policy.repos import RepoPolicy, Vetted, recheck, vet
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

    Every submodule `.gitmodules` declares passes the repository policy, and its checked address is
    written to the repo's config, before git fetches any of them (RepositoryRefused otherwise): git
    picks a submodule by its path, so a `.gitmodules` must not get one name vetted and another fetched.
    What git registered is read back and checked again before each update."""
    if not (path / ".gitmodules").exists():
        return None
    git = Git.plain(redactor)
    declared = await _declared(git, path, where)
    vetted: dict[str, Vetted] = {}
    for name, entry in declared.items():
        if raw_url := entry.get("url"):
            shown = entry.get("path") or name
            vetted[name] = await vet(
                resolve_relative_url(parent_url, raw_url), policy, field=f"{where} submodule {shown!r}"
            )
    try:
        for name, target in vetted.items():
            await git("config", f"submodule.{name}.url", target.url, cwd=path)
    except GitError as exc:
        return f"submodules: {exc}"
    problems: list[str] = []
    for name, entry in declared.items():
        sub_path = entry.get("path")
        if not sub_path or name not in vetted or not await _is_gitlink(git, path, sub_path):
            continue
        target = vetted[name]
        field = f"{where} submodule {sub_path!r}"
        try:
            await git("submodule", "init", "--", sub_path, cwd=path)
            await _check_registered(git, path, {n: v.url for n, v in vetted.items()}, field)
            async with remote_access(credentials, redactor, policy=policy, target=target) as (remote, _):
                await remote("-C", str(path), "submodule", "update", "--quiet", "--", sub_path)
        except GitError as exc:
            problems.append(f"{sub_path}: {exc}")
            continue
        await recheck(target, policy, field=field)
        if depth < MAX_DEPTH:
            deeper = await fetch(
                path / sub_path,
                resolve_relative_url(parent_url, entry["url"]),
                credentials,
                redactor,
                policy=policy,
                where=field,
                depth=depth + 1,
            )
            if deeper:
                problems.append(deeper)
    return "; ".join(problems) or None


async def _declared(git: Git, path: Path, where: str) -> dict[str, dict[str, str]]:
    """`.gitmodules` as it is checked out: each submodule's name with its fields; refused when ambiguous."""
    try:
        listing = await git("config", "-z", "--file", ".gitmodules", "--get-regexp", r"^submodule\.", cwd=path)
    except GitError:
        return {}
    try:
        return _fields(listing)
    except ValueError as exc:
        raise RepositoryRefused(str(exc), field=f"{where} .gitmodules") from None


async def _check_registered(git: Git, path: Path, written: dict[str, str], field: str) -> None:
    """Every submodule URL in the repo's config is one vetted and written here, or git would fetch it unchecked."""
    try:
        listing = await git("config", "-z", "--local", "--get-regexp", r"^submodule\..*\.url$", cwd=path)
    except GitError:
        return
    for key, value in _records(listing):
        name = key.removeprefix("submodule.").removesuffix(".url")
        if written.get(name) != value:
            raise RepositoryRefused(
                f"git registered submodule {name!r} at a URL the repository policy did not check", field=field
            )


def _records(listing: str) -> list[tuple[str, str]]:
    """`git config -z` output: NUL-terminated records of a key, a newline and the value (a bare key has none)."""
    records = []
    for record in listing.split("\0"):
        if record:
            key, _, value = record.partition("\n")
            records.append((key, value))
    return records


def _fields(listing: str) -> dict[str, dict[str, str]]:
    """The submodules in `git config -z --get-regexp` output; ValueError for a field given twice or a path
    two submodules claim, where git and vTeam could read different answers."""
    fields: dict[str, dict[str, str]] = {}
    owners: dict[str, str] = {}
    for key, value in _records(listing):
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        entry = fields.setdefault(name, {})
        if field in entry:
            raise ValueError(f"submodule {name!r} sets {field!r} more than once")
        entry[field] = value
        if field == "path":
            where = posixpath.normpath(value)
            if where in owners:
                raise ValueError(f"submodules {owners[where]!r} and {name!r} both claim path {value!r}")
            owners[where] = name
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
        listing = await git(
            "config", "-z", "--blob", f"{base_sha}:.gitmodules", "--get-regexp", r"^submodule\.", cwd=path
        )
        fields = _fields(listing)
    except (GitError, ValueError):
        return []
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
