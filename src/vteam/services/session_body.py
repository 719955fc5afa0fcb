"""The body that creates a session, in either shape the API takes (flat, or `{metadata, spec}`), turned into an
`AgenticSession` with the project's defaults filled in; every door that creates a session parses it here."""

from __future__ import annotations

import secrets
import string
from typing import Any, Literal

from pydantic import Field

from vteam.errors import InvalidInput
from vteam.resources import GROUP, AgenticSession, CamelModel, ObjectMeta, SessionSpec
from vteam.resources.meta import reserved
from vteam.resources.project import ProjectDefaults

ALPHABET = string.ascii_lowercase + string.digits


def generate_name(prefix: str = "session") -> str:
    return f"{prefix}-{''.join(secrets.choice(ALPHABET) for _ in range(8))}"


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


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as `{loc, msg}` entries (the shape of `InvalidInput.errors`), without the `body` prefix."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        out.append({"loc": loc, "msg": msg})
    return out
