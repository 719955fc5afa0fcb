"""Runner pods and the platform's own pods meet the `restricted` Pod Security Standard, so a cluster may enforce it.

The checker is tests/support/pod_security.py, written from the published standard (its docstring lists every
control with the standard's fields and allowed values). It is shown here to catch each kind of violation, to
word its refusal as the API server does, and, inside the fake API server, to refuse pods in a namespace labelled
`pod-security.kubernetes.io/enforce` as PodSecurity admission would.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import pod_security
from tests.support.fake_kube import FakeKube, fake_kube
from tests.support.pod_security import containers, pod_templates, violations
from vteam.controller.job import render_job
from vteam.resources import AgenticSession, ProjectSettings
from vteam.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UID = "3c9f5a8e-2b1d-4f7a-9e0c-6d5b4a3f2e1d"
Obj = dict[str, Any]


def session() -> AgenticSession:
    return AgenticSession.model_validate(
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "metadata": {"name": "fix-login-bug", "namespace": "team-a", "uid": UID, "resourceVersion": "7"},
            "spec": {"prompt": "fix the login bug", "timeout": 900, "framework": "script"},
        }
    )


def runner_job(project: dict[str, Any] | None = None, **settings: Any) -> Obj:
    values: dict[str, Any] = {"public_url": "http://vteam-backend.vteam.svc:8080", "runner_image": "vteam:9.9.9"}
    project_settings = (
        ProjectSettings.model_validate({"metadata": {"name": "settings", "namespace": "team-a"}, "spec": project})
        if project is not None
        else None
    )
    return render_job(
        session(),
        Settings(**{**values, **settings}),
        project_settings,
        "fix-login-bug-runner",
        agent_settings={"ANTHROPIC_BASE_URL": "https://llm.internal"},
    )


def runner_pod(job: Obj) -> Obj:
    [(_, spec)] = pod_templates(job)
    found: Obj = spec
    return found


def env_of(container: Obj) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def image_user() -> int:
    """The numeric USER the runner image ends with (deploy/Containerfile)."""
    users = re.findall(r"^USER (\S+)$", (DEPLOY / "Containerfile").read_text(), flags=re.MULTILINE)
    return int(users[-1])


def rendered(overlay: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "rendered" / f"{overlay}.yaml").read_text()) if doc]


# --------------------------------------------------------------------------------------------------------------------
# The runner Job
# --------------------------------------------------------------------------------------------------------------------

RUNNER_VARIANTS = {
    "defaults": ({}, None),
    "cluster-assigned user (OpenShift)": ({"runner_uid": "auto"}, None),
    "another user id": ({"runner_uid": 4242}, None),
    "git token and project settings": (
        {"git_token": "ghp_notARealTokenButLooksLikeOne1234"},
        {"runnerResources": {"limits": {"memory": "8Gi"}}, "runnerSecret": "team-a-keys"},
    ),
}


@pytest.mark.parametrize(("settings", "project"), RUNNER_VARIANTS.values(), ids=RUNNER_VARIANTS.keys())
def test_the_runner_pod_meets_the_restricted_standard(settings: dict[str, Any], project: dict[str, Any] | None) -> None:
    job = runner_job(project, **settings)
    templates = pod_templates(job)
    assert len(templates) == 1
    metadata, spec = templates[0]
    assert [c["name"] for c in containers(spec)] == ["runner"]
    assert [str(v) for v in violations(spec, metadata)] == []


def test_the_runner_runs_as_the_images_user_unless_the_cluster_assigns_one() -> None:
    context = runner_pod(runner_job())["securityContext"]
    user = image_user()
    assert user != 0
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (user, user, user)
    assigned = runner_pod(runner_job(runner_uid="auto"))["securityContext"]
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(assigned)
    assert assigned["runAsNonRoot"] is True


def test_a_root_runner_user_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="runner_uid"):
        Settings(runner_uid=0)


def test_the_runner_is_told_its_pod_is_the_isolation() -> None:
    [container] = runner_pod(runner_job())["containers"]
    assert env_of(container)["VTEAM_ISOLATION"] == "pod"


def test_the_runner_has_no_api_token_nor_host_access() -> None:
    pod = runner_pod(runner_job())
    assert pod["automountServiceAccountToken"] is False
    assert not any(pod.get(field) for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"))
    assert {next(k for k in v if k != "name") for v in pod["volumes"]} == {"emptyDir"}


def test_everywhere_the_runner_and_its_agents_write_is_a_writable_emptydir() -> None:
    """The root filesystem is read-only, so each folder the runner writes (the workspace with its repos and the
    agents' HOME under it, the runner's HOME, its temp folder) must lie inside an emptyDir mounted read-write."""
    pod = runner_pod(runner_job())
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [
        Path(m["mountPath"])
        for m in container["volumeMounts"]
        if m["name"] in empty_dirs and not m.get("readOnly", False)
    ]
    env = env_of(container)
    workspace = Path(env["VTEAM_WORKSPACE"])
    for path in (workspace, workspace / "home", Path(env["HOME"]), Path(env["TMPDIR"]), Path(container["workingDir"])):
        assert any(path == mount or mount in path.parents for mount in writable), path


# --------------------------------------------------------------------------------------------------------------------
# The platform's own manifests
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "openshift"])
def test_every_pod_the_manifests_define_meets_the_restricted_standard(overlay: str) -> None:
    found: dict[str, list[str]] = {}
    checked = 0
    for doc in rendered(overlay):
        for metadata, spec in pod_templates(doc):
            checked += 1
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = [str(v) for v in violations(spec, metadata)]
    assert checked >= 2, "the manifests define no pods"
    assert {where: problems for where, problems in found.items() if problems} == {}


@pytest.mark.parametrize("overlay", ["dev", "openshift"])
def test_vteams_namespace_enforces_the_restricted_standard(overlay: str) -> None:
    [namespace] = [
        doc for doc in rendered(overlay) if doc["kind"] == "Namespace" and doc["metadata"]["name"] == "vteam"
    ]
    labels = namespace["metadata"]["labels"]
    assert labels[pod_security.ENFORCE_LABEL] == "restricted"
    assert labels.get(pod_security.ENFORCE_VERSION_LABEL, "latest") == "latest"


@pytest.mark.parametrize("overlay", ["dev", "openshift"])
def test_vteams_own_containers_have_read_only_roots_and_a_writable_tmp(overlay: str) -> None:
    for doc in rendered(overlay):
        for _, spec in pod_templates(doc):
            for container in containers(spec):
                if not container["image"].startswith("vteam:"):
                    continue
                where = f"{doc['metadata']['name']}/{container['name']}"
                assert container["securityContext"].get("readOnlyRootFilesystem") is True, where
                if container.get("args", [None])[0] in ("up", "operator"):
                    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
                    volume = next(v for v in spec["volumes"] if v["name"] == tmp["name"])
                    assert "emptyDir" in volume, where


def operator_settings(overlay: str) -> Settings:
    """The Settings the operator Deployment of an overlay runs with (its plain env values)."""
    doc = next(d for d in rendered(overlay) if (d["kind"], d["metadata"]["name"]) == ("Deployment", "vteam-operator"))
    [container] = doc["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    return Settings(**{k.removeprefix("VTEAM_").lower(): v for k, v in env.items() if k.startswith("VTEAM_")})


def test_runners_on_openshift_take_the_user_the_scc_assigns_and_elsewhere_the_images() -> None:
    on_openshift = operator_settings("openshift")
    assert on_openshift.runner_uid == "auto"
    job = render_job(session(), on_openshift, None, "s-runner")
    contexts = [runner_pod(job)["securityContext"], *(c["securityContext"] for c in containers(runner_pod(job)))]
    assert not [key for context in contexts for key in ("runAsUser", "runAsGroup", "fsGroup") if key in context]
    on_kind = operator_settings("dev")
    assert runner_pod(render_job(session(), on_kind, None, "s-runner"))["securityContext"]["runAsUser"] == image_user()


# --------------------------------------------------------------------------------------------------------------------
# The checker catches what the standard forbids
# --------------------------------------------------------------------------------------------------------------------


def compliant() -> Obj:
    """A pod that meets `restricted` while using what it allows: every allowed volume type, an init container, a
    probe, NET_BIND_SERVICE, a safe sysctl, a Localhost seccomp profile on one container."""
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "metadata": {
            "name": "good",
            "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"},
        },
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1001,
                "seccompProfile": {"type": "RuntimeDefault"},
                "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
                "seLinuxOptions": {"type": "container_t"},
            },
            "initContainers": [{"name": "init", "image": "busybox:1", "securityContext": copy.deepcopy(locked)}],
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1",
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "securityContext": {
                        **copy.deepcopy(locked),
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/app.json"},
                        "appArmorProfile": {"type": "RuntimeDefault"},
                        "procMount": "Default",
                    },
                }
            ],
            "volumes": [
                {"name": "cm", "configMap": {"name": "c"}},
                {"name": "csi", "csi": {"driver": "d"}},
                {"name": "down", "downwardAPI": {"items": []}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
                {"name": "proj", "projected": {"sources": []}},
                {"name": "sec", "secret": {"secretName": "s"}},
            ],
        },
    }


def app(pod: Obj) -> Obj:
    found: Obj = pod["spec"]["containers"][0]
    return found


def app_context(pod: Obj) -> Obj:
    found: Obj = app(pod)["securityContext"]
    return found


def pod_context(pod: Obj) -> Obj:
    found: Obj = pod["spec"]["securityContext"]
    return found


def init_context(pod: Obj) -> Obj:
    found: Obj = pod["spec"]["initContainers"][0]["securityContext"]
    return found


Mutation = Callable[[Obj], object]
VIOLATIONS: dict[str, tuple[Mutation, str, str]] = {
    "privileged container": (
        lambda p: app_context(p).update(privileged=True),
        "privileged",
        'container "app" must not set securityContext.privileged=true',
    ),
    "hostPath volume": (
        lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "restrictedVolumes",
        'volume "host" uses restricted volume type "hostPath"',
    ),
    "nfs volume": (
        lambda p: p["spec"]["volumes"].append({"name": "share", "nfs": {"server": "nfs", "path": "/"}}),
        "restrictedVolumes",
        'volume "share" uses restricted volume type "nfs"',
    ),
    "no seccomp profile anywhere": (
        lambda p: (pod_context(p).pop("seccompProfile"), app_context(p).pop("seccompProfile")),
        "seccompProfile_restricted",
        'pod or containers "init", "app" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost"',
    ),
    "an unconfined container": (
        lambda p: app_context(p).update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile_restricted",
        'container "app" must not set securityContext.seccompProfile.type to "Unconfined"',
    ),
    "runAsNonRoot false on the pod": (
        lambda p: pod_context(p).update(runAsNonRoot=False),
        "runAsNonRoot",
        "pod must not set securityContext.runAsNonRoot=false",
    ),
    "runAsNonRoot unset": (
        lambda p: pod_context(p).pop("runAsNonRoot"),
        "runAsNonRoot",
        'pod or containers "init", "app" must set securityContext.runAsNonRoot=true',
    ),
    "runAsNonRoot false on an init container": (
        lambda p: init_context(p).update(runAsNonRoot=False),
        "runAsNonRoot",
        'container "init" must not set securityContext.runAsNonRoot=false',
    ),
    "runAsUser 0": (
        lambda p: app_context(p).update(runAsUser=0),
        "runAsUser",
        'container "app" must not set runAsUser=0',
    ),
    "privilege escalation left open": (
        lambda p: init_context(p).pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
        'container "init" must set securityContext.allowPrivilegeEscalation=false',
    ),
    "capabilities kept": (
        lambda p: init_context(p).pop("capabilities"),
        "capabilities_restricted",
        'container "init" must set securityContext.capabilities.drop=["ALL"]',
    ),
    "a capability added": (
        lambda p: app_context(p)["capabilities"]["add"].append("SYS_ADMIN"),
        "capabilities_restricted",
        'container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add',
    ),
    "host network": (lambda p: p["spec"].update(hostNetwork=True), "hostNamespaces", "hostNetwork=true"),
    "host pid and ipc": (
        lambda p: p["spec"].update(hostPID=True, hostIPC=True),
        "hostNamespaces",
        "hostPID=true, hostIPC=true",
    ),
    "host port": (
        lambda p: app(p)["ports"][0].update(hostPort=8080),
        "hostPorts",
        'container "app" uses hostPort 8080',
    ),
    "probe of another host": (
        lambda p: app(p)["readinessProbe"]["httpGet"].update(host="10.0.0.1"),
        "hostProbesAndHostLifecycle",
        'container "app" uses probe or lifecycle host "10.0.0.1"',
    ),
    "unmasked /proc": (
        lambda p: app_context(p).update(procMount="Unmasked"),
        "procMount_restricted",
        'container "app" must not set securityContext.procMount to "Unmasked"',
    ),
    "SELinux type spc_t": (
        lambda p: pod_context(p).update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions",
        'pod set forbidden securityContext.seLinuxOptions: type "spc_t"',
    ),
    "SELinux user": (
        lambda p: app_context(p).update(seLinuxOptions={"user": "system_u"}),
        "seLinuxOptions",
        'container "app" set forbidden securityContext.seLinuxOptions: user may not be set',
    ),
    "AppArmor unconfined": (
        lambda p: app_context(p).update(appArmorProfile={"type": "Unconfined"}),
        "appArmorProfile",
        'container "app" must not set AppArmor profile type to "Unconfined"',
    ),
    "AppArmor unconfined by annotation": (
        lambda p: p["metadata"]["annotations"].update(
            {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}
        ),
        "appArmorProfile",
        "annotation must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/app="unconfined""',
    ),
    "unsafe sysctl": (
        lambda p: sysctls_of(p).append({"name": "kernel.msgmax", "value": "65536"}),
        "sysctls",
        "kernel.msgmax",
    ),
    "windows host process": (
        lambda p: pod_context(p).update(windowsOptions={"hostProcess": True}),
        "windowsHostProcess",
        "pod must not set securityContext.windowsOptions.hostProcess=true",
    ),
    "a privileged ephemeral container": (
        lambda p: p["spec"].update(
            ephemeralContainers=[
                {
                    "name": "debug",
                    "image": "busybox:1",
                    "securityContext": {
                        "privileged": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ]
        ),
        "privileged",
        'container "debug" must not set securityContext.privileged=true',
    ),
}


def sysctls_of(pod: Obj) -> list[Obj]:
    sysctls: list[Obj] = pod_context(pod)["sysctls"]
    return sysctls


def test_the_compliant_example_passes_both_levels() -> None:
    pod = compliant()
    assert violations(pod["spec"], pod["metadata"]) == []
    assert violations(pod["spec"], pod["metadata"], "baseline") == []


@pytest.mark.parametrize(("mutate", "check", "detail"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_each_violation_is_caught_and_named(mutate: Mutation, check: str, detail: str) -> None:
    pod = compliant()
    mutate(pod)
    found = violations(pod["spec"], pod["metadata"])
    assert [(v.check, v.detail) for v in found] == [(check, detail)]


def test_a_default_pod_passes_baseline_and_fails_restricted_as_the_api_server_words_it() -> None:
    """The refusal a pod with no security context gets in a `restricted` namespace, as Kubernetes' own
    "Enforce Pod Security Standards with namespace labels" walk-through shows it."""
    spec = {"containers": [{"name": "nginx", "image": "nginx"}]}
    assert violations(spec, level="baseline") == []
    assert pod_security.admission_message("restricted", violations(spec)) == (
        'violates PodSecurity "restricted:latest": '
        "allowPrivilegeEscalation != false "
        '(container "nginx" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")'
    )


def test_baseline_refuses_what_breaks_out_but_not_what_restricted_adds() -> None:
    pod = compliant()
    pod["spec"]["volumes"].append({"name": "share", "nfs": {"server": "nfs", "path": "/"}})
    pod_context(pod)["runAsNonRoot"] = False
    assert violations(pod["spec"], pod["metadata"], "baseline") == []
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    app_context(pod)["capabilities"]["add"].append("SYS_ADMIN")
    found = violations(pod["spec"], pod["metadata"], "baseline")
    assert [(v.check, v.detail) for v in found] == [
        ("capabilities_baseline", 'container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add'),
        ("hostPathVolumes", 'volume "host"'),
    ]


def test_what_the_standard_relaxes_passes() -> None:
    """A pod in its own user namespace may run as uid 0 inside it; a Windows pod has no Linux capabilities,
    seccomp or privilege escalation to set; an unmasked /proc is then baseline, never restricted."""
    userns = compliant()
    userns["spec"]["hostUsers"] = False
    pod_context(userns).update(runAsNonRoot=False, runAsUser=0)
    assert violations(userns["spec"], userns["metadata"]) == []
    app_context(userns)["procMount"] = "Unmasked"
    assert violations(userns["spec"], userns["metadata"], "baseline") == []
    assert [v.check for v in violations(userns["spec"], userns["metadata"])] == ["procMount_restricted"]
    windows = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}, "containers": [{"name": "w"}]}
    assert violations(windows) == []


# --------------------------------------------------------------------------------------------------------------------
# The fake API server enforces a namespace's level, as PodSecurity admission does
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKube]:
    with fake_kube(tmp_path) as server:
        yield server


def namespace(api: httpx.Client, name: str, level: str | None) -> None:
    labels = {pod_security.ENFORCE_LABEL: level} if level else {}
    answer = api.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": labels}})
    assert answer.status_code == 201, answer.text


def pod(name: str, spec: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_a_restricted_namespace_runs_the_runner_and_refuses_a_privileged_pod(fake: FakeKube) -> None:
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}) as api:
        namespace(api, "team-a", "restricted")
        made = api.post("/api/v1/namespaces/team-a/serviceaccounts", json={"metadata": {"name": "vteam-runner"}})
        assert made.status_code == 201, made.text
        job = runner_job()
        job["metadata"].pop("ownerReferences")
        assert api.post("/apis/batch/v1/namespaces/team-a/jobs", json=job).status_code == 201
        runner = fake.run_job_pod("team-a", "fix-login-bug")
        assert runner["spec"]["containers"][0]["name"] == "runner"

        bad = pod(
            "root-shell",
            {"containers": [{"name": "sh", "image": "busybox:1", "securityContext": {"privileged": True}}]},
        )
        refused = api.post("/api/v1/namespaces/team-a/pods", json=bad)
        assert refused.status_code == 403
        status = refused.json()
        assert status["reason"] == "Forbidden"
        assert status["message"].startswith(
            'pods "root-shell" is forbidden: violates PodSecurity "restricted:latest": '
        )
        assert 'privileged (container "sh" must not set securityContext.privileged=true)' in status["message"]
        assert api.get("/api/v1/namespaces/team-a/pods/root-shell").status_code == 404

        namespace(api, "open", None)
        assert api.post("/api/v1/namespaces/open/pods", json=bad).status_code == 201


def test_a_baseline_namespace_takes_a_default_pod_but_not_a_host_one(fake: FakeKube) -> None:
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}) as api:
        namespace(api, "team-b", "baseline")
        plain = pod("plain", {"containers": [{"name": "web", "image": "nginx:1"}]})
        assert api.post("/api/v1/namespaces/team-b/pods", json=plain).status_code == 201
        host = pod("host", {"hostNetwork": True, "containers": [{"name": "web", "image": "nginx:1"}]})
        refused = api.post("/api/v1/namespaces/team-b/pods", json=host)
        assert refused.status_code == 403
        assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in refused.json()["message"]
