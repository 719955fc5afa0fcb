"""Models for every kind of resource, their validation and the session phase rules."""

from vteam.resources.meta import API_VERSION, CREATED_BY, GROUP, VERSION, CamelModel, ObjectMeta, Resource
from vteam.resources.phases import TERMINAL, Phase, check_transition
from vteam.resources.project import Project, ProjectSpec, ProjectStatus
from vteam.resources.session import (
    REPORTED,
    AgenticSession,
    AgentStatus,
    Condition,
    DiffStat,
    FileStat,
    PullRequestStatus,
    RepoInput,
    RepoOutput,
    RepoStatus,
    SessionRepo,
    SessionResult,
    SessionSpec,
    SessionStatus,
    status_patch,
)

__all__ = [
    "API_VERSION",
    "CREATED_BY",
    "GROUP",
    "REPORTED",
    "TERMINAL",
    "VERSION",
    "AgentStatus",
    "AgenticSession",
    "CamelModel",
    "Condition",
    "DiffStat",
    "FileStat",
    "ObjectMeta",
    "Phase",
    "Project",
    "ProjectSpec",
    "ProjectStatus",
    "PullRequestStatus",
    "RepoInput",
    "RepoOutput",
    "RepoStatus",
    "Resource",
    "SessionRepo",
    "SessionResult",
    "SessionSpec",
    "SessionStatus",
    "check_transition",
    "status_patch",
]
