"""The runner Job and Secret a session gets in cluster mode: every field an operator or auditor relies on."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from vteam.controller.job import render_job, render_secret, secret_name
from vteam.resources import AgenticSession, ProjectSettings
from vteam.settings import Settings

UID = "3c9f5a8e-2b1d-4f7a-9e0c-6d5b4a3f2e1d"
TOKEN = "vtr_c2VjcmV0LXRva2Vu.bWFj"
GIT_TOKEN = "ghp_notARealTokenButLooksLikeOne1234"
K8S = kubernetes_validate.latest_version()


def session(timeout: int = 900) -> AgenticSession:
    return AgenticSession.model_validate(
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "metadata": {"name": "fix-login-bug", "namespace": "team-a", "uid": UID, "resourceVersion": "7"},
            "spec": {"prompt": "fix the login bug", "timeout": timeout, "framework": "script"},
        }
    )


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"public_url": "http://vteam-backend.vteam.svc:8080", "runner_image": "vteam:9.9.9"}
    return Settings(**{**values, **overrides})


def project_settings(spec: dict[str, Any]) -> ProjectSettings:
    return ProjectSettings.model_validate({"metadata": {"name": "settings", "namespace": "team-a"}, "spec": spec})


def job(**kwargs: Any) -> dict[str, Any]:
    return render_job(
        session(kwargs.pop("timeout", 900)),
        kwargs.pop("settings", None) or settings(),
        kwargs.pop("project_settings", None),
        "fix-login-bug-runner",
        **kwargs,
    )


def container(job_obj: dict[str, Any]) -> dict[str, Any]:
    containers = job_obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(job_obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job_obj)["env"]}


def test_job_and_secret_are_valid_kubernetes_objects() -> None:
    s = settings(git_token=GIT_TOKEN)
    kubernetes_validate.validate(job(settings=s), K8S, strict=True)
    kubernetes_validate.validate(render_secret(session(), s, TOKEN, "fix-login-bug-runner"), K8S, strict=True)
    full = project_settings(
        {
            "runnerResources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
            "runnerSecret": "team-a-keys",
        }
    )
    kubernetes_validate.validate(
        job(project_settings=full, agent_settings={"ANTHROPIC_BASE_URL": "x"}), K8S, strict=True
    )


def test_job_runs_once_within_the_session_timeout_and_is_cleaned_up_later() -> None:
    spec = job(timeout=1234, settings=settings(job_ttl_seconds=600))["spec"]
    assert spec["activeDeadlineSeconds"] == 1234
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_job_and_secret_belong_to_the_session_so_deleting_it_removes_both() -> None:
    expected = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "name": "fix-login-bug",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job()["metadata"]["ownerReferences"] == [expected]
    assert render_secret(session(), settings(), TOKEN, "x")["metadata"]["ownerReferences"] == [expected]


def test_a_session_without_a_uid_is_refused() -> None:
    unsaved = AgenticSession.model_validate({"metadata": {"name": "s", "namespace": "p"}, "spec": {"prompt": "x"}})
    with pytest.raises(ValueError, match="no uid"):
        render_job(unsaved, settings(), None, "s-runner")


def test_job_pods_and_secret_are_labelled_with_session_and_project() -> None:
    rendered = job()
    for labels in (
        rendered["metadata"]["labels"],
        rendered["spec"]["template"]["metadata"]["labels"],
        render_secret(session(), settings(), TOKEN, "x")["metadata"]["labels"],
    ):
        assert labels["vteam.ambient-code/session"] == "fix-login-bug"
        assert labels["vteam.ambient-code/project"] == "team-a"
    assert rendered["metadata"]["name"] == "fix-login-bug"
    assert rendered["metadata"]["namespace"] == "team-a"


def test_pod_runs_unprivileged_with_a_read_only_root_and_writable_emptydirs() -> None:
    rendered = job()
    pod = rendered["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "vteam-runner"
    sc = container(rendered)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(rendered)["volumeMounts"]}
    variables = env(rendered)
    for path in (variables["VTEAM_WORKSPACE"], variables["HOME"], variables["TMPDIR"]):
        assert "emptyDir" in volumes[mounts[path]], path
    assert container(rendered)["workingDir"] == variables["VTEAM_WORKSPACE"]


def test_service_account_comes_from_settings() -> None:
    assert job(settings=settings(runner_service_account="runners"))["spec"]["template"]["spec"][
        "serviceAccountName"
    ] == ("runners")


def test_runner_command_image_and_environment() -> None:
    rendered = job(agent_settings={"ANTHROPIC_BASE_URL": "https://llm.internal"})
    c = container(rendered)
    assert c["command"] == ["vteam", "runner"]
    assert c["image"] == "vteam:9.9.9"
    variables = env(rendered)
    assert variables["VTEAM_SERVER"] == "http://vteam-backend.vteam.svc:8080"
    assert variables["VTEAM_PROJECT"] == "team-a"
    assert variables["VTEAM_SESSION"] == "fix-login-bug"
    assert variables["VTEAM_SESSION_UID"] == UID
    assert variables["VTEAM_AGENT_ENV_ANTHROPIC_BASE_URL"] == "https://llm.internal"
    assert variables["VTEAM_GIT_AUTHOR_NAME"] == "vTeam"


def test_missing_public_url_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="VTEAM_PUBLIC_URL"):
        render_job(session(), Settings(), None, "s-runner")


def test_tokens_reach_the_runner_only_through_the_secret() -> None:
    s = settings(git_token=GIT_TOKEN)
    rendered = job(settings=s)
    text = json.dumps(rendered)
    assert TOKEN not in text
    assert GIT_TOKEN not in text
    variables = env(rendered)
    assert variables["VTEAM_RUNNER_TOKEN"] == {"secretKeyRef": {"name": "fix-login-bug-runner", "key": "runner-token"}}
    assert variables["VTEAM_GIT_TOKEN"] == {"secretKeyRef": {"name": "fix-login-bug-runner", "key": "git-token"}}
    secret = render_secret(session(), s, TOKEN, "fix-login-bug-runner")
    assert secret["metadata"]["name"] == "fix-login-bug-runner"
    assert secret["metadata"]["namespace"] == "team-a"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"runner-token": TOKEN, "git-token": GIT_TOKEN}
    assert secret["immutable"] is True


def test_without_a_git_token_none_is_referenced() -> None:
    assert "VTEAM_GIT_TOKEN" not in env(job())
    assert set(render_secret(session(), settings(), TOKEN, "x")["data"]) == {"runner-token"}


def test_secret_name_is_derived_from_the_session() -> None:
    assert secret_name(session()) == "fix-login-bug-runner"


def test_project_runner_secret_reaches_the_agent_as_optional_prefixed_env() -> None:
    default = container(job())["envFrom"]
    assert default == [{"prefix": "VTEAM_SECRET_", "secretRef": {"name": "vteam-runner-secrets", "optional": True}}]
    named = container(job(project_settings=project_settings({"runnerSecret": "team-a-keys"})))["envFrom"]
    assert named == [{"prefix": "VTEAM_SECRET_", "secretRef": {"name": "team-a-keys", "optional": True}}]


def test_resources_fall_back_to_settings() -> None:
    s = settings(
        runner_cpu_request="100m", runner_memory_request="256Mi", runner_cpu_limit="1", runner_memory_limit="2Gi"
    )
    assert container(job(settings=s))["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_resources_from_project_settings_win_field_by_field() -> None:
    ps = project_settings({"runnerResources": {"requests": {"memory": "1Gi"}, "limits": {"cpu": "3"}}})
    assert container(job(project_settings=ps))["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "3", "memory": "4Gi"},
    }


def test_rendering_is_pure() -> None:
    assert job() == job()
