"""Request and response bodies that are not resources themselves."""

from __future__ import annotations

import secrets
import string
from typing import Any, Literal

from pydantic import Field, field_validator

from vteam.errors import InvalidInput
from vteam.resources import (
    GROUP,
    AgenticSession,
    AgentStatus,
    CamelModel,
    Condition,
    ObjectMeta,
    Project,
    ProjectSpec,
    RepoStatus,
    SessionResult,
    SessionSpec,
)
from vteam.resources.meta import reserved
from vteam.resources.project import ProjectDefaults
from vteam.resources.session import BranchName, RepoUrl

ALPHABET = string.ascii_lowercase + string.digits


def generate_name(prefix: str = "session") -> str:
    return f"{prefix}-{''.join(secrets.choice(ALPHABET) for _ in range(8))}"


class ProjectCreate(CamelModel):
    name: str
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)

    def resource(self) -> Project:
        return Project(
            metadata=ObjectMeta(name=self.name),
            spec=ProjectSpec(display_name=self.display_name, description=self.description),
        )


def _claims(labels: dict[str, str], annotations: dict[str, str], parent: str | None, loc: list[str]) -> None:
    """A create may not claim what only vTeam sets: its reserved labels and annotations, or a parent session
    (a child gets one, and may resume its conversation, only through `POST …/{parent}/continue`)."""
    errors: list[dict[str, Any]] = [
        {"loc": [*loc, field, key], "msg": f"{key!r} is reserved for vTeam ({GROUP}/…); it sets this key itself"}
        for field, keys in (("labels", labels), ("annotations", annotations))
        for key in keys
        if reserved(key)
    ]
    if parent is not None:
        errors.append(
            {"loc": ["spec", "parentSession"] if loc else ["parentSession"], "msg": "is set only by POST …/continue"}
        )
    if errors:
        raise InvalidInput(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors), errors=errors
        )


class SessionMetadataIn(CamelModel):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SessionCreate(SessionSpec):
    """The seeds' flat shape: spec fields at the top level plus optional name and labels."""

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    def resource(self, project: str) -> AgenticSession:
        _claims(self.labels, {}, self.parent_session, [])
        spec = SessionSpec.model_validate(self.model_dump(exclude={"name", "labels"}, exclude_unset=True))
        return AgenticSession(
            metadata=ObjectMeta(name=self.name or generate_name(), namespace=project, labels=self.labels),
            spec=spec,
        )


class SessionCreateFull(CamelModel):
    """The Kubernetes shape: `{metadata, spec}`; a `status` is ignored, as Kubernetes ignores it on create."""

    api_version: Literal["vteam.ambient-code/v1alpha1"] = "vteam.ambient-code/v1alpha1"
    kind: Literal["AgenticSession"] = "AgenticSession"
    metadata: SessionMetadataIn = Field(default_factory=SessionMetadataIn)
    spec: SessionSpec
    status: dict[str, Any] | None = None

    def resource(self, project: str) -> AgenticSession:
        if self.metadata.namespace not in (None, project):
            raise InvalidInput(
                f"metadata.namespace {self.metadata.namespace!r} does not match the project {project!r} of the URL",
                errors=[{"loc": ["metadata", "namespace"], "msg": "does not match the project in the URL"}],
            )
        _claims(self.metadata.labels, self.metadata.annotations, self.spec.parent_session, ["metadata"])
        return AgenticSession(
            metadata=ObjectMeta(
                name=self.metadata.name or generate_name(),
                namespace=project,
                labels=self.metadata.labels,
                annotations=self.metadata.annotations,
            ),
            spec=self.spec,
        )


def parse_session_body(body: Any, project: str, *, defaults: ProjectDefaults | None = None) -> AgenticSession:
    """A session from either body shape; `defaults` (the project's) fill what the request leaves out."""
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    if "spec" in body:
        spec = body["spec"]
        if isinstance(spec, dict):
            body = {**body, "spec": apply_defaults(spec, defaults)}
        return SessionCreateFull.model_validate(body).resource(project)
    return SessionCreate.model_validate(apply_defaults(body, defaults)).resource(project)


def apply_defaults(spec: dict[str, Any], defaults: ProjectDefaults | None) -> dict[str, Any]:
    """Fill framework, model and timeout from the project's defaults where the request has no such key, so
    whatever the request says (a null model included) wins. The default model belongs to the default
    framework: a session that names another framework does not get it."""
    if defaults is None:
        return spec
    filled = dict(spec)
    if defaults.framework is not None and "framework" not in filled:
        filled["framework"] = defaults.framework
    if defaults.model is not None and "model" not in filled and filled.get("framework") == defaults.framework:
        filled["model"] = defaults.model
    if defaults.timeout is not None and "timeout" not in filled:
        filled["timeout"] = defaults.timeout
    return filled


class RunnerReport(CamelModel):
    """What a runner reports about its own session."""

    phase: Literal["Running"] | None = None
    agent_status: AgentStatus | None = None
    message: str | None = Field(None, max_length=20_000)
    result: SessionResult | None = None
    repos: list[RepoStatus] | None = None
    conditions: list[Condition] | None = None
    conversation_id: str | None = Field(None, max_length=200)
    final: bool = False

    @field_validator("repos")
    @classmethod
    def _no_pull_requests(cls, repos: list[RepoStatus] | None) -> list[RepoStatus] | None:
        """Pull requests are the server's own record, from the forge's answer when it opens them: whatever a
        runner says about them is dropped, so a runner cannot plant a link on the session's pages."""
        if repos is None:
            return None
        return [r.model_copy(update={"pull_request": None, "pull_request_url": None}) for r in repos]


class PushTarget(CamelModel):
    index: int = Field(ge=0)
    branch: BranchName
    base: BranchName | None = Field(None, description="None: the repo's default branch.")
    submodule: str | None = Field(None, max_length=4096, description="A changed submodule's path in the repo.")
    url: RepoUrl | None = Field(None, description="The submodule's URL, as the base commit's .gitmodules says.")


class PushTargetsIn(CamelModel):
    """The repos a runner is about to push: each one's work branch and the branch it started from."""

    repos: list[PushTarget] = Field(max_length=50)
