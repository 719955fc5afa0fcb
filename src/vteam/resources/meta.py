"""The Kubernetes object shape every vTeam resource shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from vteam.resources import validation

GROUP = "vteam.ambient-code"
VERSION = "v1alpha1"
CREATED_BY = "vteam.ambient-code/created-by"
"""Annotation naming who created a resource; the API sets it, callers cannot."""
API_VERSION = f"{GROUP}/{VERSION}"


def reserved(key: str) -> bool:
    """Whether a label or annotation key is vTeam's own (`vteam.ambient-code/…`, or a subdomain's), which only
    vTeam sets: a parent session, who created it, which project's runner a Job is."""
    prefix, slash, _ = key.rpartition("/")
    return bool(slash) and (prefix == GROUP or prefix.endswith(f".{GROUP}"))


class CamelModel(BaseModel):
    """snake_case in Python, camelCase on the wire, as Kubernetes spells it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OwnerReference(CamelModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None


class ObjectMeta(CamelModel):
    name: str
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        validation.check_name(value)
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        validation.check_labels(value)
        return value


class Resource(CamelModel):
    """Base of every kind: `KIND` names it in the store, `NAMESPACED` says whether a project holds it."""

    KIND: ClassVar[str]
    NAMESPACED: ClassVar[bool] = True

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace
