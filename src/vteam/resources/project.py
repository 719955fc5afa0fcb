"""Project: a tenant that holds sessions (a namespace in cluster mode)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vteam.resources.meta import CamelModel, Resource


class ProjectSpec(CamelModel):
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)


class ProjectStatus(CamelModel):
    phase: Literal["Active", "Terminating"] = "Active"


class Project(Resource):
    KIND: ClassVar[str] = "Project"
    NAMESPACED: ClassVar[bool] = False

    kind: Literal["Project"] = "Project"
    spec: ProjectSpec = Field(default_factory=ProjectSpec)
    status: ProjectStatus = Field(default_factory=ProjectStatus)
