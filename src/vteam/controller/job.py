"""A session's runner as Kubernetes objects: the Job that runs `vteam runner` and the Secret with its token.

Rendering is pure (session and settings in, plain dicts out), so every field can be checked without a cluster.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from vteam.policy import repos
from vteam.resources import API_VERSION, RUNNER_SECRET, AgenticSession, ProjectSettings, ResourceAmounts
from vteam.settings import Settings

SESSION_LABEL = "vteam.ambient-code/session"
PROJECT_LABEL = "vteam.ambient-code/project"
COMPONENT_LABELS = {"app.kubernetes.io/managed-by": "vteam", "app.kubernetes.io/component": "runner"}
CONTAINER = "runner"
TOKEN_KEY = "runner-token"  # noqa: S105 - a key name inside the Secret, not a password
GIT_TOKEN_KEY = "git-token"  # noqa: S105 - a key name inside the Secret, not a password
PROJECT_SECRET_PREFIX = "VTEAM_SECRET_"  # noqa: S105 - how the runner tells an agent's secrets from the rest
AGENT_SETTING_PREFIX = "VTEAM_AGENT_ENV_"
WORKSPACE = "/workspace"
HOME = "/home/runner"
TMP = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not a shared folder


def job_name(session: AgenticSession) -> str:
    """The Job shares the session's name: a DNS-1123 label of at most 63, as Job names must be."""
    return session.metadata.name


def secret_name(session: AgenticSession) -> str:
    return f"{session.metadata.name}-runner"


def labels(session: AgenticSession) -> dict[str, str]:
    project, name = session.key
    return {SESSION_LABEL: name, PROJECT_LABEL: project, **COMPONENT_LABELS}


def owner_reference(session: AgenticSession) -> dict[str, Any]:
    """Makes the Job and Secret the session's own: deleting the session garbage-collects both."""
    if not session.metadata.uid:
        raise ValueError(f"session {session.metadata.name!r} has no uid; render its runner from the stored object")
    return {
        "apiVersion": API_VERSION,
        "kind": "AgenticSession",
        "name": session.metadata.name,
        "uid": session.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render_secret(session: AgenticSession, settings: Settings, runner_token: str, name: str) -> dict[str, Any]:
    """The per-session Secret: the runner token (and the platform's git token), never in the Job in clear."""
    data = {TOKEN_KEY: runner_token}
    if settings.git_token is not None:
        data[GIT_TOKEN_KEY] = settings.git_token.get_secret_value()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": session.metadata.namespace,
            "labels": labels(session),
            "ownerReferences": [owner_reference(session)],
        },
        "type": "Opaque",
        "immutable": True,
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def resources(settings: Settings, project_settings: ProjectSettings | None) -> dict[str, dict[str, str]]:
    """Requests and limits: the project's where it sets them, the platform's defaults for the rest."""
    spec = project_settings.spec.runner_resources if project_settings is not None else None
    requests = spec.requests if spec is not None else ResourceAmounts()
    limits = spec.limits if spec is not None else ResourceAmounts()
    return {
        "requests": {
            "cpu": requests.cpu or settings.runner_cpu_request,
            "memory": requests.memory or settings.runner_memory_request,
        },
        "limits": {
            "cpu": limits.cpu or settings.runner_cpu_limit,
            "memory": limits.memory or settings.runner_memory_limit,
        },
    }


def runner_env(settings: Settings) -> dict[str, str]:
    """The runner's plain settings, the same for a local runner process and a runner Job."""
    env = {
        "VTEAM_GIT_USERNAME": settings.git_username,
        "VTEAM_GIT_AUTHOR_NAME": settings.git_author_name,
        "VTEAM_GIT_AUTHOR_EMAIL": settings.git_author_email,
        "VTEAM_IDLE_TIMEOUT_SECONDS": str(settings.idle_timeout_seconds),
        "VTEAM_STALL_TIMEOUT_SECONDS": str(settings.stall_timeout_seconds),
    }
    if settings.git_token_hosts:
        env["VTEAM_GIT_TOKEN_HOSTS"] = settings.git_token_hosts
    env["VTEAM_REPO_ALLOW_HOSTS"] = settings.repo_allow_hosts
    env["VTEAM_REPO_SERVICE_RANGES"] = settings.repo_service_ranges
    return env


def forbidden_roots(settings: Settings) -> tuple[str, ...]:
    """Never a repository, whoever asks: vTeam's home (database, keys, every workspace) and the workspaces."""
    return tuple(dict.fromkeys((str(settings.home.resolve()), str(settings.workspaces.resolve()))))


def repo_policy_env(session: AgenticSession, local_roots: tuple[str, ...]) -> dict[str, str]:
    """The session's own part of the repository policy: its project's local roots, and whether a
    platform admin created it (the API marks such sessions; any local path but vTeam's own is then fine)."""
    admin = session.metadata.annotations.get(repos.ANY_LOCAL_ANNOTATION) == "true"
    return {"VTEAM_REPO_LOCAL_ROOTS": json.dumps(list(local_roots)), "VTEAM_REPO_ANY_LOCAL": "1" if admin else "0"}


def render_job(
    session: AgenticSession,
    settings: Settings,
    project_settings: ProjectSettings | None,
    secret: str,
    *,
    agent_settings: Mapping[str, str] | None = None,
    local_roots: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Job that runs a session's `vteam runner`, locked down to what a runner needs.

    The root filesystem is read-only: the workspace, HOME and /tmp are emptyDirs, the only places a
    runner and its agent write. The project's runner Secret reaches the agent under the prefix the
    runner reads agent secrets from; it is optional, so a project without one still runs.
    """
    if not settings.public_url:
        raise ValueError("VTEAM_PUBLIC_URL is not set: runner pods reach the backend API through it")
    project, name = session.key
    plain = {
        **runner_env(settings),
        **repo_policy_env(session, local_roots),
        **{f"{AGENT_SETTING_PREFIX}{key}": value for key, value in (agent_settings or {}).items()},
        "VTEAM_SERVER": settings.public_url,
        "VTEAM_PROJECT": project,
        "VTEAM_SESSION": name,
        "VTEAM_SESSION_UID": session.metadata.uid or "",
        "VTEAM_WORKSPACE": WORKSPACE,
        "HOME": HOME,
        "TMPDIR": TMP,
        "PYTHONUNBUFFERED": "1",
    }
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in plain.items()]
    env.append(_from_secret("VTEAM_RUNNER_TOKEN", secret, TOKEN_KEY))
    if settings.git_token is not None:
        env.append(_from_secret("VTEAM_GIT_TOKEN", secret, GIT_TOKEN_KEY))
    runner_secret = project_settings.spec.runner_secret if project_settings is not None else RUNNER_SECRET
    container = {
        "name": CONTAINER,
        "image": settings.runner_image,
        "command": ["vteam", "runner"],
        "workingDir": WORKSPACE,
        "env": env,
        "envFrom": [{"prefix": PROJECT_SECRET_PREFIX, "secretRef": {"name": runner_secret, "optional": True}}],
        "resources": resources(settings, project_settings),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # On a failure the last lines of the log become the termination message: the session's error.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": TMP},
        ],
    }
    pod_labels = labels(session)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(session),
            "namespace": project,
            "labels": pod_labels,
            "ownerReferences": [owner_reference(session)],
        },
        "spec": {
            "activeDeadlineSeconds": session.spec.timeout,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.runner_service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": max(1, math.ceil(settings.stop_grace_seconds)),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "workspace", "emptyDir": {}},
                        {"name": "home", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
