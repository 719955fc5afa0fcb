"""The rendered deploy manifests are what kustomize makes, Kubernetes accepts them, and they grant no more than
docs/cluster.md says: non-root pods, least-privilege accounts, and project roles that do what their names say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from vteam.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "openshift")
PROJECT_ROLES = ("vteam-project-view", "vteam-project-edit", "vteam-project-admin")
GROUP = "vteam.ambient-code"
WORKLOADS = ("Deployment", "Job", "StatefulSet", "DaemonSet")


def rendered(overlay: str) -> list[dict[str, Any]]:
    text = (DEPLOY / "rendered" / f"{overlay}.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def nullable_as_null(node: Any) -> Any:
    """Kubernetes' `nullable: true` as draft-4 JSON Schema's `null` type."""
    if isinstance(node, list):
        return [nullable_as_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: nullable_as_null(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    return out


def custom_resource_errors(docs: list[dict[str, Any]], doc: dict[str, Any]) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    for crd in docs:
        spec = crd.get("spec", {})
        if crd["kind"] == "CustomResourceDefinition" and (spec["group"], spec["names"]["kind"]) == (
            group,
            doc["kind"],
        ):
            served = next(v for v in spec["versions"] if v["name"] == version)
            assert ("namespace" in doc["metadata"]) == (spec["scope"] == "Namespaced")
            schema = nullable_as_null(served["schema"]["openAPIV3Schema"])
            return [error.message for error in jsonschema.Draft4Validator(schema).iter_errors(doc)]
    return [f"no CRD in the rendered file defines {doc['apiVersion']} {doc['kind']}"]


def route_errors(docs: list[dict[str, Any]], route: dict[str, Any]) -> list[str]:
    """OpenShift's Route is not in kubernetes_validate's schemas: check by hand what the API server requires."""
    spec = route.get("spec", {})
    target = spec.get("to", {})
    if target.get("kind") != "Service" or not target.get("name"):
        return ["spec.to must name a Service"]
    service = find(docs, "Service", target["name"])
    port_names = {port.get("name") for port in service["spec"]["ports"]}
    errors = []
    if spec.get("port", {}).get("targetPort") not in port_names:
        errors.append(f"spec.port.targetPort is none of the Service's ports {sorted(port_names)}")
    if spec.get("tls", {}).get("termination") not in {"edge", "passthrough", "reencrypt"}:
        errors.append("spec.tls.termination must be edge, passthrough or reencrypt")
    return errors


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in WORKLOADS
    ]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    return (
        (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        and (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


def role_allows(
    docs: list[dict[str, Any]], role: str, verb: str, group: str, resource: str, name: str | None = None
) -> bool:
    rules = find(docs, "ClusterRole", role).get("rules", [])
    return any(rule_allows(rule, verb, group, resource, name) for rule in rules)


def roles_of(docs: list[dict[str, Any]], account: str) -> list[str]:
    """Every role any binding in the manifests gives the service account `account` of namespace vteam."""
    return [
        doc["roleRef"]["name"]
        for doc in docs
        if doc["kind"] in {"ClusterRoleBinding", "RoleBinding"}
        for subject in doc.get("subjects", [])
        if (subject["kind"], subject["name"], subject.get("namespace")) == ("ServiceAccount", account, "vteam")
    ]


def account_allows(
    docs: list[dict[str, Any]], account: str, verb: str, group: str, resource: str, name: str | None = None
) -> bool:
    return any(role_allows(docs, role, verb, group, resource, name) for role in roles_of(docs, account))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(overlay: str) -> list[dict[str, Any]]:
    return rendered(overlay)


def test_rendered_files_are_what_kustomize_makes(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render deploy/overlays with `kubectl kustomize`")
    made = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    assert (DEPLOY / "rendered" / f"{overlay}.yaml").read_text() == made, (
        f"deploy/rendered/{overlay}.yaml is stale; run `make manifests` and commit it"
    )


def test_kubernetes_accepts_every_document(docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    problems: dict[str, list[str]] = {}
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if doc["kind"] == "Route" and doc["apiVersion"] == "route.openshift.io/v1":
                errors = route_errors(docs, doc)
            else:
                errors = custom_resource_errors(docs, doc)
            if errors:
                problems[where] = errors
        except kubernetes_validate.ValidationError as error:
            problems[where] = [str(error.message)]
    assert problems == {}


def test_every_container_runs_unprivileged(docs: list[dict[str, Any]]) -> None:
    problems = []
    for where, pod in pod_specs(docs):
        if pod.get("securityContext", {}).get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        for container in containers(pod):
            context = container.get("securityContext", {})
            label = f"{where}/{container['name']}"
            if not {**pod.get("securityContext", {}), **context}.get("runAsNonRoot"):
                problems.append(f"{label}: may run as root")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{label}: may escalate privileges")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append(f"{label}: keeps capabilities")
            if context.get("privileged"):
                problems.append(f"{label}: privileged")
    assert pod_specs(docs), "no workloads rendered"
    assert problems == []


def test_openshift_pods_leave_the_user_to_the_restricted_scc() -> None:
    fixed = [
        f"{where}: {key}"
        for where, pod in pod_specs(rendered("openshift"))
        for context in [pod.get("securityContext", {}), *(c.get("securityContext", {}) for c in containers(pod))]
        for key in ("runAsUser", "runAsGroup", "fsGroup")
        if key in context
    ]
    assert fixed == []


def test_the_runner_account_can_do_nothing(docs: list[dict[str, Any]]) -> None:
    runner = find(docs, "ServiceAccount", "vteam-runner")
    assert runner.get("automountServiceAccountToken") is False
    assert roles_of(docs, "vteam-runner") == []
    operator = find(docs, "Deployment", "vteam-operator")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "VTEAM_RUNNER_SERVICE_ACCOUNT", "value": "vteam-runner"} in operator["env"]


def test_project_viewers_only_look(docs: list[dict[str, Any]]) -> None:
    for resource in ("agenticsessions", "projectsettings"):
        for verb in ("get", "list", "watch"):
            assert role_allows(docs, "vteam-project-view", verb, GROUP, resource)
    for verb in ("create", "update", "patch", "delete"):
        assert not role_allows(docs, "vteam-project-view", verb, GROUP, "agenticsessions")
    assert not role_allows(docs, "vteam-project-view", "get", "", "secrets")


def test_project_editors_run_sessions_but_do_not_govern_the_project(docs: list[dict[str, Any]]) -> None:
    for verb in ("get", "list", "create", "update", "patch", "delete"):
        assert role_allows(docs, "vteam-project-edit", verb, GROUP, "agenticsessions")
    assert not role_allows(docs, "vteam-project-edit", "patch", GROUP, "agenticsessions/status")
    assert not role_allows(docs, "vteam-project-edit", "update", GROUP, "projectsettings")
    assert not role_allows(docs, "vteam-project-edit", "create", "rbac.authorization.k8s.io", "rolebindings")
    assert not role_allows(docs, "vteam-project-edit", "get", "", "secrets")


def test_project_admins_govern_the_project_and_nothing_beyond(docs: list[dict[str, Any]]) -> None:
    admin = "vteam-project-admin"
    assert role_allows(docs, admin, "create", GROUP, "agenticsessions")
    assert role_allows(docs, admin, "update", GROUP, "projectsettings")
    for verb in ("get", "create", "update", "delete"):
        assert role_allows(docs, admin, verb, "", "secrets")
        assert role_allows(docs, admin, verb, "rbac.authorization.k8s.io", "rolebindings")
    for role in PROJECT_ROLES:
        assert role_allows(docs, admin, "bind", "rbac.authorization.k8s.io", "clusterroles", role)
    assert not role_allows(docs, admin, "bind", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin")
    assert not role_allows(docs, admin, "create", "rbac.authorization.k8s.io", "roles")
    assert not role_allows(docs, admin, "delete", "", "namespaces")
    assert not role_allows(docs, admin, "patch", GROUP, "agenticsessions/status")


def test_project_roles_are_not_bound_by_the_platform(docs: list[dict[str, Any]]) -> None:
    bound = [doc["roleRef"]["name"] for doc in docs if doc["kind"] in {"ClusterRoleBinding", "RoleBinding"}]
    assert not set(bound) & set(PROJECT_ROLES)


def test_the_backend_account_holds_only_what_callers_cannot_do(docs: list[dict[str, Any]]) -> None:
    backend = "vteam-backend"
    assert account_allows(docs, backend, "create", "", "namespaces")
    assert account_allows(docs, backend, "watch", GROUP, "agenticsessions")
    assert account_allows(docs, backend, "patch", GROUP, "agenticsessions/status")
    assert account_allows(docs, backend, "create", GROUP, "projectsettings")
    assert account_allows(docs, backend, "create", "authentication.k8s.io", "tokenreviews")
    assert account_allows(docs, backend, "bind", "rbac.authorization.k8s.io", "clusterroles", "vteam-project-admin")
    assert not account_allows(docs, backend, "bind", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin")
    assert account_allows(docs, backend, "delete", "", "namespaces")
    assert account_allows(docs, backend, "create", GROUP, "agenticsessions")
    assert account_allows(docs, backend, "patch", "", "secrets")
    assert not account_allows(docs, backend, "get", "", "secrets")
    assert not account_allows(docs, backend, "list", "", "secrets")
    assert not account_allows(docs, backend, "create", "batch", "jobs")


def test_the_operator_account_runs_jobs_and_nothing_else(docs: list[dict[str, Any]]) -> None:
    operator = "vteam-operator"
    for verb in ("create", "delete", "watch"):
        assert account_allows(docs, operator, verb, "batch", "jobs")
    assert account_allows(docs, operator, "patch", GROUP, "agenticsessions/status")
    assert account_allows(docs, operator, "create", "", "secrets")
    assert account_allows(docs, operator, "patch", "kopf.dev", "clusterkopfpeerings")
    assert not account_allows(docs, operator, "list", "", "secrets")
    assert not account_allows(docs, operator, "create", GROUP, "agenticsessions")
    assert not account_allows(docs, operator, "create", "rbac.authorization.k8s.io", "rolebindings")
    assert not account_allows(docs, operator, "create", "", "pods")


def test_operator_replicas_share_one_peering(docs: list[dict[str, Any]]) -> None:
    assert find(docs, "Deployment", "vteam-operator")["spec"]["replicas"] == 2
    peering = find(docs, "ClusterKopfPeering", "vteam")
    assert "namespace" not in peering["metadata"]


def test_runners_reach_the_api_and_use_the_operators_image(docs: list[dict[str, Any]]) -> None:
    operator = find(docs, "Deployment", "vteam-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in operator["env"]}
    service = find(docs, "Service", "vteam-backend")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert env["VTEAM_PUBLIC_URL"] == f"http://vteam-backend.vteam.svc:{port}"
    assert env["VTEAM_RUNNER_IMAGE"] == operator["image"] == Settings.model_fields["runner_image"].default


def test_the_backend_runs_in_cluster_mode_with_probes(docs: list[dict[str, Any]]) -> None:
    pod = find(docs, "Deployment", "vteam-backend")["spec"]["template"]["spec"]
    backend = next(c for c in pod["containers"] if c["name"] == "backend")
    env = {item["name"]: item.get("value") for item in backend["env"]}
    assert env["VTEAM_MODE"] == "cluster"
    assert backend["args"][:3] == ["up", "--host", "0.0.0.0"]  # noqa: S104 -- the pod must answer its Service
    assert backend["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert backend["livenessProbe"]["httpGet"]["path"] == "/healthz"
    home = next(v for v in pod["volumes"] if v["name"] == "data")
    assert home["persistentVolumeClaim"]["claimName"] == "vteam-data"
    assert any(env["VTEAM_HOME"].startswith(m["mountPath"]) for m in backend["volumeMounts"] if m["name"] == "data")


def test_no_platform_key_is_committed(docs: list[dict[str, Any]]) -> None:
    secrets = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"}
    assert not any(name.startswith(("vteam-platform-key", "vteam-oauth-proxy")) for name in secrets)


def test_openshift_signs_people_in_through_the_oauth_proxy() -> None:
    docs = rendered("openshift")
    pod = find(docs, "Deployment", "vteam-backend")["spec"]["template"]["spec"]
    proxy = next(c for c in pod["containers"] if c["name"] == "oauth-proxy")
    assert {"--pass-user-headers", "--pass-access-token", "--provider=openshift"} <= set(proxy["args"])
    backend = next(c for c in pod["containers"] if c["name"] == "backend")
    assert {"name": "VTEAM_TRUST_PROXY_HEADERS", "value": "true"} in backend["env"]
    route = find(docs, "Route", "vteam")
    proxy_port = proxy["ports"][0]["name"]
    assert route["spec"]["port"]["targetPort"] == proxy_port
    account = find(docs, "ServiceAccount", "vteam-backend")
    reference = account["metadata"]["annotations"]["serviceaccounts.openshift.io/oauth-redirectreference.primary"]
    assert '"name":"vteam"' in reference


def test_the_oauth_proxy_proves_itself_with_the_secret_the_backend_expects() -> None:
    """Forwarded identity headers count only with VTEAM_PROXY_SECRET: the sidecar sends it as its Basic auth
    password, both read from the same Secret key, never written into the manifest."""
    pod = find(rendered("openshift"), "Deployment", "vteam-backend")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    backend_env = {e["name"]: e for e in containers["backend"]["env"]}
    proxy_env = {e["name"]: e for e in containers["oauth-proxy"].get("env", [])}
    source = backend_env["VTEAM_PROXY_SECRET"]["valueFrom"]["secretKeyRef"]
    assert source == {"name": "vteam-oauth-proxy", "key": "proxy-secret"}
    args = containers["oauth-proxy"]["args"]
    assert "--pass-basic-auth=true" in args
    password = next(a.split("=", 1)[1] for a in args if a.startswith("--basic-auth-password="))
    variable = re.fullmatch(r"\$\((\w+)\)", password)
    assert variable is not None, "the password comes from the Secret through the environment"
    assert proxy_env[variable[1]]["valueFrom"]["secretKeyRef"] == source


def test_dev_overlay_brings_its_own_object_store() -> None:
    docs = rendered("dev")
    find(docs, "Deployment", "minio")
    find(docs, "Job", "minio-bucket")
    s3 = next(doc for doc in docs if doc["kind"] == "Secret" and doc["metadata"]["name"].startswith("vteam-s3-"))
    backend = find(docs, "Deployment", "vteam-backend")["spec"]["template"]["spec"]["containers"][0]
    assert backend["envFrom"] == [{"secretRef": {"name": s3["metadata"]["name"]}}]
    pulls = {c.get("imagePullPolicy") for _, pod in pod_specs(docs) for c in containers(pod)}
    assert pulls == {"IfNotPresent"}


def makefile_pins() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^(\w+_VERSION) := (\S+)$", text, flags=re.MULTILINE))


def test_the_image_installs_what_the_makefile_pins() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+_VERSION)=(\S+)$", text, flags=re.MULTILINE))
    pins = {name: value for name, value in makefile_pins().items() if name != "OCTOKIT_OPENAPI_VERSION"}
    assert set(pins) == {"CODEX_VERSION", "MINI_SWE_VERSION", "GEMINI_VERSION", "HTMX_VERSION", "HTMX_SSE_VERSION"}
    assert args == pins
    for package in (
        "@openai/codex@${CODEX_VERSION}",
        "@google/gemini-cli@${GEMINI_VERSION}",
        "mini-swe-agent==${MINI_SWE_VERSION}",
        "htmx.org@${HTMX_VERSION}",
        "htmx-ext-sse@${HTMX_SSE_VERSION}",
    ):
        assert package in text


def test_the_image_runs_vteam_as_a_numeric_non_root_user() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM \S*python:3\.11-slim", text.replace("${PYTHON_IMAGE}", _arg(text, "PYTHON_IMAGE")), re.M)
    assert re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)[-1] == "1001"
    assert 'ENTRYPOINT ["vteam"]' in text
    assert "VTEAM_WEB_MODULES=/opt/vteam/.web/node_modules" in text
    assert "chmod -R g=u" in text


def _arg(text: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", text, flags=re.MULTILINE)
    assert match, f"no ARG {name} in the Containerfile"
    return match.group(1)
