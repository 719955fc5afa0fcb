"""Checks shared by every resource: names, labels, repository URLs and git branch names.

Each check returns nothing and raises ValueError with a sentence a person can act on,
so pydantic validators and the CLI can use them alike.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit, urlunsplit

from vteam.policy import repos

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_name(value: str, what: str = "name") -> None:
    """A DNS-1123 label: how Kubernetes names namespaces and most objects."""
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > 63:
        raise ValueError(f"{what} {value!r} is longer than 63 characters")
    if not DNS1123_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit (DNS-1123 label)"
        )


def check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            for part in prefix.split("."):
                check_name(part, f"label prefix of {key!r}")
        if not name or len(name) > 63 or not LABEL_NAME.match(name):
            raise ValueError(
                f"label key {key!r} must be 1-63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit, with an optional DNS prefix and '/'"
            )
        if value and (len(value) > 63 or not LABEL_NAME.match(value)):
            raise ValueError(
                f"label value {value!r} of {key!r} must be empty or 1-63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )


def check_repo_url(url: str) -> None:
    """The repository policy's syntax rules (`vteam.policy.repos.parse`): what may be handed to git at all.

    Where a URL may point (local roots, private addresses) needs the project and the caller, and is
    checked by `vteam.policy.repos.vet` at the API and again in the runner."""
    repos.parse(url)


def check_branch(name: str) -> None:
    """git check-ref-format rules for a branch name (refs/heads/<name>)."""
    problem = _branch_problem(name)
    if problem:
        raise ValueError(f"branch name {name!r} is not valid: {problem}")


def _branch_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name in ("@", "HEAD"):
        return f"{name!r} names the current commit, not a branch"
    if BAD_REF_CHARS.search(name):
        return "it contains a space, control character or one of ~ ^ : ? * [ \\"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component ('/' at the start, end or twice)"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"component {part!r} ends with '.lock'"
    return None


def check_env_name(name: str) -> None:
    if not ENV_NAME.match(name):
        raise ValueError(f"environment variable name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    if name.startswith("VTEAM_") or name in {"GIT_ASKPASS", "HOME", "PATH"}:
        raise ValueError(f"environment variable {name!r} is reserved for vTeam's runner")


def check_text(value: str, what: str) -> None:
    """Free text that reaches a process's arguments or environment (a prompt, an environment value):
    no exec can carry a NUL byte, so it is refused here rather than failing the session later."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode (it holds a lone surrogate)") from None


SUBJECT_MAX = 200


def check_subject_name(subject_type: str, value: str, *, local_users: bool = False) -> None:
    """A role binding's subject: printable, without '/', so that a path can name it to revoke it.

    With `local_users` (vTeam's own accounts are the only users) a user must also be a name a user can
    have, a DNS-1123 label (see `check_name`); a proxy or a cluster names its users in its own way."""
    what = f"{subject_type} name"
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > SUBJECT_MAX:
        raise ValueError(f"{what} is longer than {SUBJECT_MAX} characters")
    if not value.isprintable() or "/" in value:
        raise ValueError(f"{what} {value!r} must be printable characters without '/' (no tab or control character)")
    if value != value.strip() or value in (".", ".."):
        raise ValueError(f"{what} {value!r} must not be '.' or '..', nor start or end with a space")
    if subject_type == "user" and local_users:
        check_name(value, what)


def same_repository(a: str, b: str) -> bool:
    """Whether two repository URLs name the same repository, ignoring a trailing '/' or '.git'."""
    return _normal(a) == _normal(b)


def _normal(url: str) -> str:
    return url.rstrip("/").removesuffix(".git").rstrip("/")


def split_repo_arg(value: str) -> tuple[str, str | None]:
    """Split the CLI's `URL[@branch]` while leaving `user@host:path` and `https://user@host/x` whole."""
    head, sep, tail = value.rpartition("@")
    if not sep or not head or ":" in tail:
        return value, None
    try:
        check_repo_url(head)
        check_branch(tail)
    except ValueError:
        return value, None
    if head.endswith("://") or re.match(r"^[a-z]+://[^/]*$", head):
        return value, None
    return head, tail


_SCP_URL = re.compile(r"^(?P<host>(?:[^@/:]+@)?[^:/]+):(?P<path>[^/].*)$")


def resolve_relative_url(parent: str, url: str) -> str:
    """A submodule's URL as git resolves it: `../x.git` is relative to the parent repo's URL."""
    if not url.startswith(("./", "../")):
        return url
    parts = urlsplit(parent)
    if not parts.scheme and (scp := _SCP_URL.match(parent)):
        return f"{scp['host']}:{posixpath.normpath(posixpath.join('/' + scp['path'], url)).lstrip('/')}"
    if not parts.scheme:
        return posixpath.normpath(posixpath.join(parent, url))
    path = posixpath.normpath(posixpath.join(parts.path.rstrip("/"), url))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
