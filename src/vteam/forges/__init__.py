"""Forges: GitHub, GitLab and plain git remotes, chosen by a repo's URL."""

from vteam.forges.base import (
    Blob,
    Branch,
    Credential,
    Forge,
    ForgeUnavailable,
    Page,
    PullRequestDraft,
    PushTarget,
    RepoRef,
    Submodule,
    TreeEntry,
)
from vteam.forges.service import PROJECT_TOKEN, Forges, Link, project_scope, token_name, user_scope

__all__ = [
    "PROJECT_TOKEN",
    "Blob",
    "Branch",
    "Credential",
    "Forge",
    "ForgeUnavailable",
    "Forges",
    "Link",
    "Page",
    "PullRequestDraft",
    "PushTarget",
    "RepoRef",
    "Submodule",
    "TreeEntry",
    "project_scope",
    "token_name",
    "user_scope",
]
