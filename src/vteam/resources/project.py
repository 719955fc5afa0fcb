"""Project: a tenant that holds sessions (a namespace in cluster mode)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vteam.resources.meta import CamelModel, Resource
from vteam.resources.session import MAX_TIMEOUT


class ProjectDefaults(CamelModel):
    """What a new session of the project gets for the fields its request leaves out, so a team sets its
    framework, model and time limit once instead of in every request. Bounds match `SessionSpec`'s, so a
    default can never make a session invalid by itself."""

    framework: str | None = Field(None, min_length=1, max_length=63)
    model: str | None = Field(None, min_length=1, max_length=200, description="Applies with `framework` only.")
    timeout: int | None = Field(None, ge=1, le=MAX_TIMEOUT, description="Seconds, at most 24 h.")

    @property
    def empty(self) -> bool:
        return self.framework is None and self.model is None and self.timeout is None


class ProjectSpec(CamelModel):
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    defaults: ProjectDefaults | None = None


class ProjectStatus(CamelModel):
    phase: Literal["Active", "Terminating"] = "Active"


class Project(Resource):
    KIND: ClassVar[str] = "Project"
    NAMESPACED: ClassVar[bool] = False

    kind: Literal["Project"] = "Project"
    spec: ProjectSpec = Field(default_factory=ProjectSpec)
    status: ProjectStatus = Field(default_factory=ProjectStatus)
