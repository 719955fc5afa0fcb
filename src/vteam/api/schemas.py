"""Request and response bodies that are not resources themselves."""

from __future__ import annotations

from pydantic import Field

from vteam.protocol import RunnerReport
from vteam.resources import CamelModel
from vteam.resources.session import BranchName, RepoUrl
from vteam.services.projects import ProjectCreate
from vteam.services.session_body import (
    SessionCreate,
    SessionCreateFull,
    SessionMetadataIn,
    apply_defaults,
    generate_name,
    parse_session_body,
)

# Session bodies are parsed in the services room; their names stay importable from here.
__all__ = [
    "ProjectCreate",
    "PushTarget",
    "PushTargetsIn",
    "RunnerReport",
    "SessionCreate",
    "SessionCreateFull",
    "SessionMetadataIn",
    "apply_defaults",
    "generate_name",
    "parse_session_body",
]


class PushTarget(CamelModel):
    index: int = Field(ge=0)
    branch: BranchName
    base: BranchName | None = Field(None, description="None: the repo's default branch.")
    submodule: str | None = Field(None, max_length=4096, description="A changed submodule's path in the repo.")
    url: RepoUrl | None = Field(None, description="The submodule's URL, as the base commit's .gitmodules says.")


class PushTargetsIn(CamelModel):
    """The repos a runner is about to push: each one's work branch and the branch it started from."""

    repos: list[PushTarget] = Field(max_length=50)
