"""Which forge holds a repo, read from its URL."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from vteam.forges.base import ForgeKind, RepoRef

_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def host_of(url: str) -> str:
    """The host (with port) of a web URL such as `https://github.com` or `http://127.0.0.1:8000`."""
    return urlsplit(url).netloc.lower()


def split(url: str) -> tuple[str, str]:
    """(host, path) of a repo URL in any form git takes; the path has no `.git` and no slashes around it."""
    if "://" in url:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        default = {"http": 80, "https": 443}.get(parts.scheme)
        if parts.port and default and parts.port != default:
            host = f"{host}:{parts.port}"
        path = parts.path
    elif match := _SCP.match(url):
        host, path = match["host"].lower(), match["path"]
    else:
        return "", url
    return host, path.strip("/").removesuffix(".git")


def repo_ref(url: str, *, github_host: str, gitlab_host: str) -> RepoRef:
    host, path = split(url)
    kind: ForgeKind = "git"
    if host and host == github_host and path.count("/") == 1:
        kind = "github"
    elif host and host == gitlab_host and path.count("/") >= 1:
        kind = "gitlab"
    return RepoRef(kind=kind, url=url, host=host, path=path)
