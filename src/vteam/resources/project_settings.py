"""ProjectSettings: how a project's runners run in cluster mode (resources, secrets, concurrency)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vteam.resources.meta import CamelModel, Resource

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
"""A Kubernetes resource quantity as people write them: `500m`, `2`, `1.5Gi`."""

SETTINGS_NAME = "settings"
"""The one ProjectSettings a project holds."""

RUNNER_SECRET = "vteam-runner-secrets"  # noqa: S105 - the name of a Secret, not a password
"""The Secret whose keys a project's runners get as environment variables, unless its settings name another."""


class ResourceAmounts(CamelModel):
    cpu: str | None = Field(None, pattern=QUANTITY, description="CPU, e.g. `500m` or `2`.")
    memory: str | None = Field(None, pattern=QUANTITY, description="Memory, e.g. `512Mi` or `4Gi`.")


class RunnerResources(CamelModel):
    """A runner pod's requests and limits; what is left out comes from the platform's settings."""

    requests: ResourceAmounts = Field(default_factory=ResourceAmounts)
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)


class ProjectSettingsSpec(CamelModel):
    runner_resources: RunnerResources = Field(default_factory=RunnerResources)
    runner_secret: str = Field(
        RUNNER_SECRET,
        min_length=1,
        max_length=253,
        description="Secret in the project whose keys the project's runners get as environment variables.",
    )
    max_running_sessions: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Sessions of this project that may run at once; unset: the platform's default share "
        "(VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT).",
    )


class ProjectSettingsStatus(CamelModel):
    phase: Literal["Ready"] = "Ready"
    observed_generation: int | None = None


class ProjectSettings(Resource):
    KIND: ClassVar[str] = "ProjectSettings"

    kind: Literal["ProjectSettings"] = "ProjectSettings"
    spec: ProjectSettingsSpec = Field(default_factory=ProjectSettingsSpec)
    status: ProjectSettingsStatus = Field(default_factory=ProjectSettingsStatus)
