"""What the API's routes answer, as models, so that the OpenAPI document describes every response body.

Routes keep returning the wire dicts they build; `shaped(Model)` declares the model and has FastAPI check the
answer against it and send back exactly the keys the route set (`response_model_exclude_unset`), so that a
key a route leaves out stays out and an explicit `null` stays in. Each model forbids extra keys: an answer
that drifts from its model fails loudly (a 500 the fuzz and the route tests see) instead of lying in the
document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vteam.auth import Role
from vteam.forges.base import ForgeKind
from vteam.resources import AgenticSession, CamelModel, Project, PullRequestStatus


def shaped(model: Any) -> dict[str, Any]:
    """The route decorator's arguments that declare `model` as the answer, keeping the route's keys as set."""
    return {"response_model": model, "response_model_exclude_unset": True}


def resource(model: Any) -> dict[str, Any]:
    """For a route that returns the stored resource itself: sent in its `wire()` form (no null keys). FastAPI
    passes a model instance through without validating it again, so a session stored under older, looser
    rules (`resources.STORED`) still reads."""
    return {"response_model": model, "response_model_exclude_none": True}


class ListMeta(CamelModel):
    """A Kubernetes list's metadata: where the list was read, and the token of its next page."""

    resource_version: str | None = None
    continue_: str | None = Field(None, alias="continue", description="Pass as `continue` for the next page.")


class ProjectList(CamelModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ProjectList"] = "ProjectList"
    metadata: ListMeta
    items: list[Project]


class AgenticSessionList(CamelModel):
    """A page of sessions. The route sends it already in wire form: its items are the stored sessions as they
    are, which validating them again against today's rules could refuse (see `resource`)."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["AgenticSessionList"] = "AgenticSessionList"
    metadata: ListMeta
    items: list[AgenticSession]


class MessageSent(CamelModel):
    """A user message stored for the session's runner."""

    seq: int = Field(description="The message's place among the session's events.")
    id: str
    text: str


class ControlSent(CamelModel):
    """An interrupt or end stored for the session's runner."""

    seq: int = Field(description="The control's place among the session's events.")


class PushTarget(CamelModel):
    """Where one repo's (or submodule's) branch goes, and the token to push it with; or why it cannot go."""

    index: int = Field(description="The repo's index in the session's spec.")
    submodule: str | None = None
    url: str | None = None
    head_repo: str | None = Field(None, description="The fork the branch goes to, when not the repo itself.")
    base: str | None = Field(None, description="The pull request's base branch, when the forge had to say.")
    token: str | None = Field(None, description="The credential to push with; absent: push without one.")
    username: str | None = None
    error: str | None = None


class PushTargetList(CamelModel):
    repos: list[PushTarget]


class CallerAccess(CamelModel):
    """The caller's role in one project (null: none)."""

    project: str
    user: str
    role: Role | None


class RoleBinding(CamelModel):
    subject_type: Literal["user", "group"]
    subject_name: str
    role: Role
    created: str
    created_by: str


class RoleBindingList(CamelModel):
    items: list[RoleBinding]


class ApiToken(CamelModel):
    """A personal API token as listed: never its secret."""

    id: str
    name: str
    created: str
    created_by: str
    expires: str | None
    last_used: str | None
    revoked: str | None


class ApiTokenList(CamelModel):
    items: list[ApiToken]


class NewApiToken(ApiToken):
    token: str = Field(description="The token's secret, in this answer only.")


class LoginToken(NewApiToken):
    """A login link traded for an API token (`vteam login`)."""

    user: str | None


class AccessKey(ApiToken):
    """A project's access key as listed: never its secret."""

    project: str | None
    role: Role | None


class AccessKeyList(CamelModel):
    items: list[AccessKey]


class NewAccessKey(AccessKey):
    token: str = Field(description="The key's secret, in this answer only.")


class CallerIdentity(CamelModel):
    """Who the request came from; an access key also says its project and role."""

    name: str
    kind: Literal["user", "key", "runner", "anonymous"]
    admin: bool
    groups: list[str]
    project: str | None = None
    role: Role | None = None


class User(CamelModel):
    name: str
    display_name: str
    admin: bool
    created: str


class UserList(CamelModel):
    items: list[User]


class LoginLink(CamelModel):
    user: str
    login_link: str = Field(description="A one-time link to sign in with, to hand to the user.")


class NewUser(User):
    login_link: str = Field(description="A one-time link to sign in with, to hand to the user.")


class VaultRotation(CamelModel):
    reencrypted: int = Field(description="How many stored secrets were encrypted under the new key.")


class RepositoryPolicy(CamelModel):
    project: str
    local_roots: list[str]


class AuditEntry(CamelModel):
    """One audit record; `hash` chains it to the record before (`prevHash`)."""

    seq: int
    ts: str
    actor: str
    project: str | None
    action: str
    target: str
    outcome: str
    request_id: str | None
    details: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditPage(CamelModel):
    items: list[AuditEntry]
    next: int | None = Field(description="The `after` of the following page; null at the end.")


class AuditVerification(CamelModel):
    ok: bool
    checked: int
    seq: int | None = Field(description="The first record that was changed or is missing.")
    problem: str | None


class StoredToken(CamelModel):
    updated: str


class Installation(CamelModel):
    id: int
    login: str


class ForgeAccount(CamelModel):
    """What the caller linked on one forge; `appConfigured` and `installation` are GitHub's only."""

    forge: Literal["github", "gitlab"]
    url: str
    token: StoredToken | None
    app_configured: bool | None = None
    installation: Installation | None = None


class ForgeAccountList(CamelModel):
    items: list[ForgeAccount]


class ForgeToken(CamelModel):
    forge: Literal["github", "gitlab"]
    login: str
    updated: str


class InstallationLinked(CamelModel):
    installation: Installation
    setup_action: str | None


class PullRequestNote(CamelModel):
    """Why a repo that asked for a pull request has none."""

    repo: int = Field(description="The repo's index in the session's status.")
    url: str
    note: str | None


class PullRequestList(CamelModel):
    items: list[PullRequestStatus]
    not_opened: list[PullRequestNote]


class Branch(CamelModel):
    name: str
    commit: str
    protected: bool


class BranchList(CamelModel):
    repo: str
    forge: ForgeKind
    items: list[Branch]
    next_page: int | None


class SubmoduleLink(CamelModel):
    url: str | None
    commit: str
    forge: ForgeKind | None
    repo: str | None


class TreeItem(CamelModel):
    name: str
    path: str
    type: Literal["file", "dir", "submodule", "symlink"]
    sha: str
    size: int | None = None
    submodule: SubmoduleLink | None = None


class RepoTree(CamelModel):
    repo: str
    forge: ForgeKind
    ref: str | None
    path: str
    items: list[TreeItem]


class RepoBlob(CamelModel):
    repo: str
    ref: str | None
    path: str
    sha: str
    size: int
    encoding: Literal["utf-8", "base64"]
    content: str


class Capabilities(CamelModel):
    interactive: bool
    resume: bool
    streaming: bool


class RunnerType(CamelModel):
    """A framework a session can run: its models, the secrets it needs and what it can do."""

    name: str
    description: str
    models: list[str]
    model_pattern: str | None
    secrets: list[str]
    secret_alternatives: list[str]
    settings: list[str]
    capabilities: Capabilities
    ready: bool = Field(description="Whether its sessions can start here now (its CLI is installed).")
    status: str = Field(description="`ready`, or in a few words why not (e.g. still installing).")


class Secret(CamelModel):
    """A project secret as listed: never its value."""

    name: str
    updated: str
    frameworks: list[str] | None = Field(description="The frameworks whose agents get it; null: every one.")


class SecretList(CamelModel):
    items: list[Secret]


class Health(CamelModel):
    status: Literal["ok"]


class Readiness(CamelModel):
    status: Literal["ready", "not ready"]
    reason: str | None = None
