"""A session's runner as Kubernetes objects: the Job that runs `vteam runner` and the Secret with its token.

Rendering is pure (session and settings in, plain dicts out), so every field can be checked without a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vteam.agents import registry
from vteam.policy import repos
from vteam.protocol import Env
from vteam.resources import API_VERSION, RUNNER_SECRET, AgenticSession, ProjectSettings, ResourceAmounts
from vteam.settings import Settings

SESSION_LABEL = "vteam.ambient-code/session"
PROJECT_LABEL = "vteam.ambient-code/project"
COMPONENT_LABELS = {"app.kubernetes.io/managed-by": "vteam", "app.kubernetes.io/component": "runner"}
CONTAINER = "runner"
TOKEN_KEY = "runner-token"  # noqa: S105 - a key name inside the Secret, not a password
GIT_TOKEN_KEY = "git-token"  # noqa: S105 - a key name inside the Secret, not a password
PROJECT_SECRET_PREFIX = Env.SECRET_PREFIX
AGENT_SETTING_PREFIX = Env.AGENT_ENV_PREFIX
WORKSPACE = "/workspace"
HOME = "/home/runner"
TMP = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not a shared folder
SCOPE_ANNOTATION_PREFIX = "frameworks.vteam.ambient-code/"
"""On a project's runner Secret, one annotation per scoped key: the JSON list of frameworks that get it."""
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ISOLATION = "pod"
"""What the runner is told confines its agents: the pod itself, so it starts them without a sandbox of its own."""


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


def scope_annotation(key: str) -> str:
    """The annotation holding a runner Secret key's scope: the key itself where it makes a valid annotation
    name, else `h.` and its SHA-256 (no secret name starts with a lower-case letter, so the two never meet)."""
    if _ANNOTATION_NAME.match(key):
        return SCOPE_ANNOTATION_PREFIX + key
    return SCOPE_ANNOTATION_PREFIX + "h." + hashlib.sha256(key.encode()).hexdigest()[:56]


def scope_annotations(key: str, frameworks: Sequence[str] | None) -> dict[str, str | None]:
    """The annotation change that records a key's scope (None removes it: every framework)."""
    return {scope_annotation(key): json.dumps(list(frameworks)) if frameworks is not None else None}


def agent_secret_keys(runner_secret: Mapping[str, Any], framework: str) -> list[str] | None:
    """The keys of a project's runner Secret that reach `framework`'s agent, by `registry.reaches`; None when
    that is all of them (the Job then takes the whole Secret, as it did before secrets had scopes).

    A scope that does not parse keeps its key from every agent: it is never widened by accident."""
    annotations: Mapping[str, str] = (runner_secret.get("metadata") or {}).get("annotations") or {}
    keys = sorted(runner_secret.get("data") or {})
    reaching = []
    for key in keys:
        raw = annotations.get(scope_annotation(key))
        try:
            scope = json.loads(raw) if raw is not None else None
        except ValueError:
            scope = []
        if registry.reaches(scope if scope is None or isinstance(scope, list) else [], framework):
            reaching.append(key)
    if reaching == keys:
        return None
    return [key for key in reaching if _ENV_NAME.match(key)]


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
        Env.GIT_USERNAME: settings.git_username,
        Env.GIT_AUTHOR_NAME: settings.git_author_name,
        Env.GIT_AUTHOR_EMAIL: settings.git_author_email,
        Env.IDLE_TIMEOUT_SECONDS: str(settings.idle_timeout_seconds),
        Env.STALL_TIMEOUT_SECONDS: str(settings.stall_timeout_seconds),
    }
    if settings.git_token_hosts:
        env[Env.GIT_TOKEN_HOSTS] = settings.git_token_hosts
    env[Env.REPO_ALLOW_HOSTS] = settings.repo_allow_hosts
    env[Env.REPO_SERVICE_RANGES] = settings.repo_service_ranges
    return env


def forbidden_roots(settings: Settings) -> tuple[str, ...]:
    """Never a repository, whoever asks: vTeam's home (database, keys, every workspace) and the workspaces."""
    return tuple(dict.fromkeys((str(settings.home.resolve()), str(settings.workspaces.resolve()))))


def repo_policy_env(session: AgenticSession, local_roots: tuple[str, ...]) -> dict[str, str]:
    """The session's own part of the repository policy: its project's local roots, and whether a
    platform admin created it (the API marks such sessions; any local path but vTeam's own is then fine)."""
    admin = session.metadata.annotations.get(repos.ANY_LOCAL_ANNOTATION) == "true"
    return {Env.REPO_LOCAL_ROOTS: json.dumps(list(local_roots)), Env.REPO_ANY_LOCAL: "1" if admin else "0"}


def render_job(
    session: AgenticSession,
    settings: Settings,
    project_settings: ProjectSettings | None,
    secret: str,
    *,
    agent_settings: Mapping[str, str] | None = None,
    local_roots: tuple[str, ...] = (),
    agent_secrets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The Job that runs a session's `vteam runner`, locked down to what a runner needs.

    The pod meets the `restricted` Pod Security Standard, so a namespace may enforce it. The root
    filesystem is read-only: the workspace, HOME and /tmp are emptyDirs, the only places a runner and its
    agent write. The project's runner Secret reaches the agent under the prefix the runner reads agent
    secrets from; it is optional, so a project without one still runs. With `agent_secrets` (see
    `agent_secret_keys`) only those keys of it do: the others are scoped to other frameworks and never
    enter the pod.
    """
    if not settings.public_url:
        raise ValueError("VTEAM_PUBLIC_URL is not set: runner pods reach the backend API through it")
    project, name = session.key
    plain = {
        **runner_env(settings),
        **repo_policy_env(session, local_roots),
        **{f"{AGENT_SETTING_PREFIX}{key}": value for key, value in (agent_settings or {}).items()},
        Env.SERVER: settings.public_url,
        Env.PROJECT: project,
        Env.SESSION: name,
        Env.SESSION_UID: session.metadata.uid or "",
        Env.WORKSPACE: WORKSPACE,
        Env.ISOLATION: ISOLATION,
        "HOME": HOME,
        "TMPDIR": TMP,
        "PYTHONUNBUFFERED": "1",
    }
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in plain.items()]
    env.append(_from_secret(Env.RUNNER_TOKEN, secret, TOKEN_KEY))
    if settings.git_token is not None:
        env.append(_from_secret(Env.GIT_TOKEN, secret, GIT_TOKEN_KEY))
    runner_secret = project_settings.spec.runner_secret if project_settings is not None else RUNNER_SECRET
    env_from: list[dict[str, Any]] = []
    if agent_secrets is None:
        env_from.append({"prefix": PROJECT_SECRET_PREFIX, "secretRef": {"name": runner_secret, "optional": True}})
    else:
        env.extend(
            {
                "name": f"{PROJECT_SECRET_PREFIX}{key}",
                "valueFrom": {"secretKeyRef": {"name": runner_secret, "key": key, "optional": True}},
            }
            for key in agent_secrets
        )
    container = {
        "name": CONTAINER,
        "image": settings.runner_image,
        "command": ["vteam", "runner"],
        "workingDir": WORKSPACE,
        "env": env,
        "envFrom": env_from,
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
                    "securityContext": pod_security_context(settings),
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


def pod_security_context(settings: Settings) -> dict[str, Any]:
    """Non-root with the runtime's seccomp profile, as the `restricted` standard asks, and the ids the image
    runs as, unless the cluster assigns them (`auto`: OpenShift's restricted SCC refuses ids outside its range)."""
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if settings.runner_uid != "auto":
        context |= {"runAsUser": settings.runner_uid, "runAsGroup": settings.runner_uid, "fsGroup": settings.runner_uid}
    return context


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
