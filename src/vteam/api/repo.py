"""The repo browser: branches, folders and files of a GitHub or GitLab repo, through vTeam's credentials."""

from __future__ import annotations

import base64
import posixpath
from typing import Any

from fastapi import APIRouter, Query

from vteam.api.responses import BranchList, RepoBlob, RepoTree, shaped
from vteam.edge.deps import Caller, PlatformDep
from vteam.errors import InvalidInput
from vteam.forges import Credential, Forge, RepoRef, TreeEntry
from vteam.resources import Project
from vteam.resources.validation import check_branch, check_repo_url, resolve_relative_url

router = APIRouter(prefix="/api/projects/{project}/repo", tags=["repo browser"])

RepoQuery = Query(..., description="The repo's URL, e.g. https://github.com/owner/name")
RefQuery = Query(None, description="Branch, tag or commit; default: the repo's default branch")
PathQuery = Query("", max_length=4096, description="Path inside the repo; empty for its root")


async def _open(platform: Any, caller: Any, project: str, repo: str) -> tuple[Forge, RepoRef, Credential | None]:
    await platform.store.get(Project, project)
    try:
        check_repo_url(repo)
    except ValueError as exc:
        raise InvalidInput(f"repo: {exc}") from None
    ref = platform.forges.ref(repo)
    if ref.kind == "git":
        raise InvalidInput(f"the repo browser needs a GitHub or GitLab repo; {repo} is a plain git remote")
    credential = await platform.forges.credential(ref, caller.name, project)
    return platform.forges.forge(ref), ref, credential


def _path(path: str) -> str:
    clean = posixpath.normpath("/" + path).lstrip("/") if path else ""
    if clean != path.strip("/") or "\x00" in path:
        raise InvalidInput(f"path {path!r} must be a plain path inside the repo (no '..', no '//')")
    return clean


def _ref(ref: str | None) -> str | None:
    if ref is not None and not all(c.isalnum() or c in "._-/" for c in ref):
        try:
            check_branch(ref)
        except ValueError as exc:
            raise InvalidInput(f"ref: {exc}") from None
    return ref


@router.get("/branches", **shaped(BranchList))
async def branches(
    project: str,
    platform: PlatformDep,
    caller: Caller,
    repo: str = RepoQuery,
    page: int = Query(1, ge=1, le=10_000),
    per_page: int = Query(30, ge=1, le=100, alias="perPage"),
) -> dict[str, Any]:
    forge, ref, credential = await _open(platform, caller, project, repo)
    found = await forge.branches(credential, ref, page=page, per_page=per_page)
    return {
        "repo": repo,
        "forge": ref.kind,
        "items": [{"name": b.name, "commit": b.commit, "protected": b.protected} for b in found.items],
        "nextPage": found.next_page,
    }


@router.get("/tree", **shaped(RepoTree))
async def tree(
    project: str,
    platform: PlatformDep,
    caller: Caller,
    repo: str = RepoQuery,
    ref: str | None = RefQuery,
    path: str = PathQuery,
) -> dict[str, Any]:
    forge, where, credential = await _open(platform, caller, project, repo)
    entries = await forge.tree(credential, where, ref=_ref(ref), path=_path(path))
    return {
        "repo": repo,
        "forge": where.kind,
        "ref": ref,
        "path": _path(path),
        "items": [_entry(platform, repo, e) for e in entries],
    }


def _entry(platform: Any, parent: str, entry: TreeEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry.name, "path": entry.path, "type": entry.type, "sha": entry.sha}
    if entry.size is not None:
        out["size"] = entry.size
    if entry.submodule is not None:
        url = resolve_relative_url(parent, entry.submodule.url)
        target = platform.forges.ref(url) if url else None
        out["submodule"] = {
            "url": url,
            "commit": entry.submodule.commit,
            "forge": target.kind if target else None,
            "repo": target.path if target else None,
        }
    return out


@router.get("/blob", **shaped(RepoBlob))
async def blob(
    project: str,
    platform: PlatformDep,
    caller: Caller,
    repo: str = RepoQuery,
    ref: str | None = RefQuery,
    path: str = Query(..., min_length=1, max_length=4096, description="The file's path inside the repo"),
) -> dict[str, Any]:
    forge, where, credential = await _open(platform, caller, project, repo)
    found = await forge.blob(credential, where, ref=_ref(ref), path=_path(path))
    try:
        content, encoding = found.content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(found.content).decode(), "base64"
    return {
        "repo": repo,
        "ref": ref,
        "path": found.path,
        "sha": found.sha,
        "size": found.size,
        "encoding": encoding,
        "content": content,
    }
